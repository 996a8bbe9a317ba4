"""Empirical confidence of a classification from the residuals at both ends of the spectrum.

``Conf = C(type) * f(B) + (1 - C(type)) * f(R)``

- B and R are the residuals of the best fit, relative to the model's level, in a blue-end and a
  red-end window (:data:`BLUE_WINDOW`, :data:`RED_WINDOW`; pixels without weight, sky and
  telluric bands excluded). A flux-calibration error or a wrong template shows up first at the
  ends of the spectrum, where a wrong model and the data part ways.
- A Gaussian is fitted to each residual distribution (:func:`gaussian_fit`): the histogram of
  the residuals, in units of their robust scale, is fitted by a parabola in log(counts)
  weighted by the counts, which gives the centre ``mu`` and width ``sigma``.
- A scoring function per end maps the fitted parameters to [0, 1]:
  ``f = 1 / (1 + exp(-(b0 + b1 ln sigma + b2 |mu|)))``. A narrow distribution centred on zero
  (the model follows the data to within the noise) scores near 1.
- The weight C depends on the type group of the best fit (:data:`GROUPS`): an M star's blue end
  carries little flux and should count less than its red end; an OB star's the reverse.

The eight numbers per end and the seven weights are fitted on labelled spectra by
:func:`fit_params` (``lamostdb calibrate-confidence``), maximising the likelihood of "the class
is right" under Conf; the shipped values (``templates/data/confidence.json``) were made by
``benchmarks/make_confidence.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

from lamostdb.templates.subclass import spectral_letter

F64 = npt.NDArray[np.float64]

#: Observed-frame windows (Angstrom): the blue end and the red end of a LAMOST spectrum.
BLUE_WINDOW = (3850.0, 4700.0)
RED_WINDOW = (7400.0, 8950.0)
#: Fewer weighted pixels than this in a window: that end is not scored.
MIN_WINDOW_PIXELS = 40
#: Histogram of residuals / robust scale used for the Gaussian fit.
HIST_EDGES = np.linspace(-5.0, 5.0, 41)

#: Spectral-type groups with their own weight C.
GROUPS = ("OB", "AF", "GK", "M", "WD/Carbon", "GALAXY", "QSO")
_LETTER_GROUP = {
    "O": "OB",
    "B": "OB",
    "A": "AF",
    "F": "AF",
    "G": "GK",
    "K": "GK",
    "M": "M",
    "L": "M",
    "WD": "WD/Carbon",
    "Carbon": "WD/Carbon",
}


def type_group(objclass: str, subclass: str) -> str:
    """The weight group of a fit.

    >>> type_group("STAR", "dM2"), type_group("STAR", "A7"), type_group("QSO", "Non")
    ('M', 'AF', 'QSO')
    """
    if objclass != "STAR":
        return objclass
    return _LETTER_GROUP.get(spectral_letter(subclass) or "", "GK")


@dataclass(frozen=True)
class ConfidenceParams:
    """Scoring parameters (b0, b1, b2) per end and the weight C per type group."""

    blue: tuple[float, float, float]
    red: tuple[float, float, float]
    weight: dict[str, float]
    provenance: dict[str, object] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(
                {
                    "blue": list(self.blue),
                    "red": list(self.red),
                    "weight": self.weight,
                    "windows_angstrom": {"blue": BLUE_WINDOW, "red": RED_WINDOW},
                    "provenance": self.provenance,
                },
                indent=1,
                sort_keys=True,
            )
            + "\n"
        )

    @classmethod
    def load(cls, path: str | Path) -> ConfidenceParams:
        try:
            d = json.loads(Path(path).read_text())
            weight = {g: float(d["weight"][g]) for g in GROUPS}
            return cls(tuple(d["blue"]), tuple(d["red"]), weight, d.get("provenance", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{path}: not a confidence parameter file ({exc!r}); make one "
                "with `lamostdb calibrate-confidence`"
            ) from exc


def default_params_path() -> Path:
    from lamostdb.templates.library import default_template_dir

    return default_template_dir() / "confidence.json"


def load_params(path: str | None = None) -> ConfidenceParams:
    """The parameters in ``path``, else the shipped ones, else neutral ones (C = 0.5)."""
    if path:
        return _load_cached(str(path))
    shipped = default_params_path()
    if shipped.exists():
        return _load_cached(str(shipped))
    return ConfidenceParams(
        (0.0, -1.0, -1.0),
        (0.0, -1.0, -1.0),
        dict.fromkeys(GROUPS, 0.5),
        {"source": "neutral fallback (no confidence.json shipped)"},
    )


def default_params() -> ConfidenceParams:
    """The shipped parameters (:func:`load_params` with no file)."""
    return load_params()


@lru_cache(maxsize=4)
def _load_cached(path: str) -> ConfidenceParams:
    return ConfidenceParams.load(path)


@dataclass(frozen=True)
class EndStats:
    """Gaussian fitted to one end's relative residuals (NaN where the end is not scored)."""

    mu: F64
    sigma: F64
    n_pix: npt.NDArray[np.int64]


def _masked_median(x: F64, ok: npt.NDArray[np.bool_]) -> F64:
    """Row-wise median of ``x`` over ``ok`` (NaN values ignored; 0 where no pixel is ok).

    The same values as ``np.nanmedian`` of the ok pixels, by one sort of the (S, P) array:
    ``nanmedian`` along rows of this length loops over the rows in Python (10x slower).
    NaN where every ok pixel is NaN, as ``nanmedian``.

    >>> x = np.array([[3.0, 1.0, np.nan, 2.0], [5.0, 4.0, 7.0, 6.0], [1.0, 2.0, 3.0, 4.0]])
    >>> ok = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    >>> _masked_median(x, ok).tolist()
    [2.0, 5.5, 0.0]
    """
    valid = ok & ~np.isnan(x)
    v = np.where(valid, x, np.inf)  # left out pixels sort to the end of each row
    v.sort(axis=1)
    count = valid.sum(axis=1)
    rows = np.arange(v.shape[0])
    lo = v[rows, np.maximum(count - 1, 0) // 2]
    hi = v[rows, np.minimum(count // 2, v.shape[1] - 1)]
    with np.errstate(invalid="ignore"):
        med = (lo + hi) / 2
    return np.where(count > 0, med, np.where(ok.any(axis=1), np.nan, 0.0))


def gaussian_fit(x: F64, ok: npt.NDArray[np.bool_]) -> tuple[F64, F64]:
    """Centre and width of a Gaussian fitted to each row's values (where ``ok``).

    The values are scaled by their robust centre and scale (median, 1.4826 MAD), binned on
    :data:`HIST_EDGES`, and ``log(counts)`` is fitted by a parabola weighted by the counts
    (the maximum-likelihood fit of a Gaussian to Poisson counts, to first order). Rows whose
    histogram is not peaked fall back to the robust centre and scale.

    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(0.3, 2.0, size=(2, 4000))
    >>> mu, sigma = gaussian_fit(x, np.ones_like(x, dtype=bool))
    >>> np.round(mu, 1).tolist(), np.round(sigma, 1).tolist()
    ([0.3, 0.3], [2.0, 2.0])
    """
    med = _masked_median(x, ok)
    mad = _masked_median(np.abs(x - med[:, None]), ok)
    scale = np.where(mad > 0, 1.4826 * mad, 1.0)
    u = (x - med[:, None]) / scale[:, None]
    nb = HIST_EDGES.size - 1
    b = np.floor((u - HIST_EDGES[0]) / (HIST_EDGES[1] - HIST_EDGES[0])).astype(np.int64)
    use = ok & (b >= 0) & (b < nb)
    rows = np.broadcast_to(np.arange(x.shape[0])[:, None], x.shape)
    counts = np.bincount((rows[use] * nb + b[use]), minlength=x.shape[0] * nb)
    counts = counts.reshape(x.shape[0], nb).astype(np.float64)
    c = 0.5 * (HIST_EDGES[1:] + HIST_EDGES[:-1])
    lc = np.log(np.maximum(counts, 1.0))
    w = counts  # empty bins get no weight
    design = np.stack([np.ones_like(c), c, c * c], axis=1)  # (B, 3)
    m = np.einsum("sb,bi,bj->sij", w, design, design)
    rhs = np.einsum("sb,bi,sb->si", w, design, lc)
    good = (counts > 0).sum(axis=1) >= 3
    m = m + 1e-9 * np.eye(3)[None] * np.maximum(np.einsum("sii->s", m), 1.0)[:, None, None]
    coef = np.linalg.solve(m, rhs[..., None])[..., 0]
    a2 = coef[:, 2]
    peaked = good & (a2 < 0)
    safe = np.where(peaked, a2, -1.0)
    mu_u = np.where(peaked, -coef[:, 1] / (2 * safe), 0.0)
    sig_u = np.where(peaked, np.sqrt(-1.0 / (2 * safe)), 1.0)
    peaked &= np.abs(mu_u) < 5.0
    mu = med + scale * np.where(peaked, mu_u, 0.0)
    sigma = scale * np.where(peaked, sig_u, 1.0)
    none = ~ok.any(axis=1)
    return np.where(none, np.nan, mu), np.where(none, np.nan, sigma)


def window_pixels(wave: F64, window: tuple[float, float]) -> npt.NDArray[np.bool_]:
    return (wave >= window[0]) & (wave <= window[1])


def end_stats(flux: F64, ivar: F64, model: F64, wave: F64, window: tuple[float, float]) -> EndStats:
    """Gaussian fit of (flux - model) / level over one window, level = median |model| there."""
    in_win = window_pixels(wave, window)
    f, w, m = flux[:, in_win], ivar[:, in_win], model[:, in_win]
    ok = w > 0
    level = _masked_median(np.abs(m), ok)
    level = np.where(np.isfinite(level) & (level > 0), level, np.nan)
    rel = (f - m) / level[:, None]
    ok &= np.isfinite(rel)
    n_pix = ok.sum(axis=1)
    mu, sigma = gaussian_fit(np.where(ok, rel, 0.0), ok)
    scored = (n_pix >= MIN_WINDOW_PIXELS) & np.isfinite(level)
    return EndStats(np.where(scored, mu, np.nan), np.where(scored, sigma, np.nan), n_pix)


def score(params: tuple[float, float, float], stats: EndStats) -> F64:
    """f(end) in [0, 1]; NaN where the end is not scored."""
    b0, b1, b2 = params
    with np.errstate(all="ignore"):
        t = b0 + b1 * np.log(np.maximum(stats.sigma, 1e-6)) + b2 * np.abs(stats.mu)
        return np.where(np.isfinite(stats.sigma), 1.0 / (1.0 + np.exp(-t)), np.nan)


def combine(f_blue: F64, f_red: F64, c: F64) -> F64:
    """C f(B) + (1 - C) f(R); an end that is not scored gives its weight to the other; 0 if none."""
    fb_ok, fr_ok = np.isfinite(f_blue), np.isfinite(f_red)
    conf = np.where(
        fb_ok & fr_ok,
        c * np.nan_to_num(f_blue) + (1 - c) * np.nan_to_num(f_red),
        np.where(fb_ok, f_blue, np.where(fr_ok, f_red, 0.0)),
    )
    return np.clip(conf, 0.0, 1.0)


@dataclass(frozen=True)
class Confidence:
    conf: F64
    conf_blue: F64  # f(B)
    conf_red: F64  # f(R)
    blue: EndStats
    red: EndStats


def confidence(
    flux: F64,
    ivar: F64,
    model: F64,
    wave: F64,
    groups: npt.NDArray[np.str_],
    params: ConfidenceParams | None = None,
) -> Confidence:
    """Confidence of each spectrum's best fit (flux, ivar, model on the working grid)."""
    params = params or default_params()
    blue = end_stats(flux, ivar, model, wave, BLUE_WINDOW)
    red = end_stats(flux, ivar, model, wave, RED_WINDOW)
    fb, fr = score(params.blue, blue), score(params.red, red)
    c = np.array([params.weight.get(str(g), 0.5) for g in groups], dtype=np.float64)
    return Confidence(combine(fb, fr, c), fb, fr, blue, red)


def _conf_from_vector(
    theta: F64, blue: EndStats, red: EndStats, gidx: npt.NDArray[np.int64]
) -> F64:
    c = theta[6:][gidx]
    fb = score(tuple(theta[0:3]), blue)
    fr = score(tuple(theta[3:6]), red)
    return combine(fb, fr, c)


def fit_params(
    blue: EndStats,
    red: EndStats,
    groups: npt.ArrayLike,
    correct: npt.ArrayLike,
    *,
    provenance: Mapping[str, object] | None = None,
    l2: float = 1e-3,
) -> ConfidenceParams:
    """Fit the scoring parameters and the weights C to labelled fits.

    Maximises the Bernoulli likelihood of ``correct`` (the fit's class is right) under Conf,
    with a small L2 penalty on the scoring parameters; C is bounded to [0, 1]. Groups with no
    training spectrum keep C = 0.5.
    """
    groups = np.asarray(groups).astype(str)
    y = np.asarray(correct, dtype=np.float64)
    gidx = np.array([GROUPS.index(g) for g in groups], dtype=np.int64)

    def loss(theta: F64) -> float:
        p = np.clip(_conf_from_vector(theta, blue, red, gidx), 1e-6, 1 - 1e-6)
        nll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        return float(nll + l2 * np.sum(theta[:6] ** 2))

    bounds = [(-50, 50)] * 6 + [(0.0, 1.0)] * len(GROUPS)
    best = None
    for start in ((0.0, -1.0, -1.0), (-5.0, -2.0, -5.0), (2.0, -0.5, -10.0)):
        theta0 = np.array([*start, *start, *([0.5] * len(GROUPS))])
        res = minimize(loss, theta0, method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    theta = best.x
    present = np.bincount(gidx, minlength=len(GROUPS)) > 0
    weight = {g: float(theta[6 + i]) if present[i] else 0.5 for i, g in enumerate(GROUPS)}
    prov: dict[str, object] = dict(provenance or {})
    prov.update(
        {
            "n_spectra": int(y.size),
            "n_correct": int(y.sum()),
            "neg_log_likelihood": round(float(best.fun), 6),
            "n_per_group": {
                g: int(n)
                for g, n in zip(GROUPS, np.bincount(gidx, minlength=len(GROUPS)), strict=True)
            },
        }
    )
    return ConfidenceParams(
        (float(theta[0]), float(theta[1]), float(theta[2])),
        (float(theta[3]), float(theta[4]), float(theta[5])),
        weight,
        prov,
    )
