"""Data-driven star templates: stack labelled spectra per subclass (pure kernel).

`build_templates` takes spectra already on the working grid (observed frame), their labels,
redshifts and S/N, and returns one template per label on a rest-frame log10 grid. Nothing
here reads or writes files; `build_from_records` is a convenience for in-memory records and
``lamostdb.catalog.build_templates`` is the catalogue driver.

Method, per label:

1. **Rest frame.** The working grid is log-linear, so the shift by ``z`` is a fractional pixel
   offset. Flux is interpolated with the 4-tap Keys cubic (a = -1/2), and the inverse variance
   propagated as ``1 / sum(c_k^2 / ivar_k)``; where one of the four taps is masked the
   2-tap linear interpolation is used, and where a central tap is masked the pixel gets no
   weight.
2. **First normalisation.** Each spectrum is divided by its median in a wide window
   (`BuildConfig.norm_window_angstrom`).
3. **Iterations.** Stack (below); per spectrum fit ``spectrum ~ stack * c(lambda)`` with
   ``c = sum_k a_k P_k(x) + b * red(lambda)``: Legendre P_0..P_deg over the rest grid plus a
   free scale of the red arm (observed wavelength beyond `BuildConfig.arm_split_angstrom`),
   because LAMOST's flux calibration and the join of the two arms vary per spectrum. Pixels
   more than 5 sigma from the first fit are left out of a second one. The corrections are
   divided by their geometric mean over the label's spectra, so the stack keeps the average
   observed continuum shape and does not drift from one iteration to the next. Spectra are
   divided by their correction and stacked again.
4. **Stack.** Weighted mean per pixel with weights ``1 / (1/ivar + intrinsic_scatter^2)``
   (so no single very bright spectrum dominates) after per-pixel clipping: values further
   than ``clip_sigma * max(robust scatter, own noise)`` from the pixel median are left out.
5. **Outlier spectra.** A spectrum's excess relative residual about the stack (robust rms
   of ``spectrum/stack - 1`` with its own noise removed in quadrature) above
   ``max(outlier_factor * label median, outlier_floor)`` is dropped, counted, and the stack
   made again without it.

The rest grid is the working grid widened by `BuildConfig.max_abs_z` on both sides, so a
template shifted by any ``|z| <= max_abs_z`` covers the whole working grid. Rest pixels no
spectrum covers (the widened edges, and any gap) take a value from the covered pixels:
the nearest covered value beyond the ends, linear interpolation across interior gaps.
The template is normalised to median 1 in the normalisation window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lamostdb.templates.grid import WORKING_GRID, LogGrid
from lamostdb.templates.subclass import spectral_letter
from lamostdb.templates.templateset import TemplateSet

F64 = npt.NDArray[np.float64]
MAD_TO_SIGMA = 1.4826

__all__ = [
    "BuildConfig",
    "BuildResult",
    "BuiltTemplate",
    "ReportedLabel",
    "build_from_records",
    "build_templates",
    "rest_grid",
    "shift_to_rest",
]


@dataclass(frozen=True)
class BuildConfig:
    """Options of `build_templates` (frozen: built once at the edge, passed down).

    Attributes
    ----------
    min_spectra
        Fewest spectra a label needs after the S/N cut and outlier rejection.
    min_snr
        Spectra with S/N (g band) below this are not used.
    clip_sigma
        Per-pixel clipping threshold of the stack, in robust sigmas.
    iterations
        Continuum-correction iterations (stack, fit corrections, restack).
    legendre_degree
        Degree of the smooth multiplicative correction fitted per spectrum.
    arm_split_angstrom
        Observed wavelength where the red arm starts (its free scale).
    norm_window_angstrom
        Rest-wavelength window of the first (median) normalisation and of the final scale.
    intrinsic_scatter
        Relative scatter added to each pixel's variance in the stack weights.
    outlier_factor, outlier_floor
        A spectrum is an outlier when its excess residual exceeds
        ``max(outlier_factor * median over the label, outlier_floor)``.
    max_abs_z
        The rest grid is wide enough for templates shifted by up to this ``|z|``; spectra
        with a larger ``|z|`` (or none) are not used.
    """

    min_spectra: int = 5
    min_snr: float = 10.0
    clip_sigma: float = 4.0
    iterations: int = 3
    legendre_degree: int = 3
    arm_split_angstrom: float = 5800.0
    norm_window_angstrom: tuple[float, float] = (4200.0, 8500.0)
    intrinsic_scatter: float = 0.02
    outlier_factor: float = 3.0
    outlier_floor: float = 0.05
    max_abs_z: float = 0.01

    def __post_init__(self) -> None:
        if self.min_spectra < 1:
            raise ValueError(f"min_spectra must be >= 1, got {self.min_spectra}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.clip_sigma <= 0 or self.outlier_factor <= 0:
            raise ValueError("clip_sigma and outlier_factor must be positive")
        if not 0 <= self.max_abs_z < 0.1:
            raise ValueError(f"max_abs_z must be in [0, 0.1), got {self.max_abs_z}")


@dataclass(frozen=True)
class BuiltTemplate:
    """One stacked template and what went into it."""

    label: str
    flux: F64 = field(repr=False)  # (n_rest,), normalised to median 1
    n_spectra: int
    median_snr: float
    scatter: float
    n_outliers: int
    n_low_snr: int
    coverage: float  # fraction of rest pixels with data (before filling)


@dataclass(frozen=True)
class ReportedLabel:
    """A label that gave no template, or spectra that were left out, and why."""

    label: str | None
    count: int
    reason: str


@dataclass(frozen=True)
class BuildResult:
    """Templates on the rest grid ``log10(lambda) = loglam0 + dloglam * i``, and reports."""

    loglam0: float
    dloglam: float
    templates: tuple[BuiltTemplate, ...]
    reported: tuple[ReportedLabel, ...]
    config: BuildConfig

    def template_set(self, *, source: str = "lamostdb templates build") -> TemplateSet:
        """The templates as a single-kind STAR `TemplateSet`, one row per label."""
        if not self.templates:
            raise ValueError("no template was built; see BuildResult.reported for why")
        vectors = np.stack([t.flux for t in self.templates])
        notes = tuple(
            f"stack of {t.n_spectra} spectra, median S/N {t.median_snr:.1f}, "
            f"scatter {t.scatter:.4f}, {t.n_outliers} outliers dropped"
            for t in self.templates
        )
        labels = tuple(t.label for t in self.templates)
        names = tuple(f"{t.label} (stack of {t.n_spectra})" for t in self.templates)
        return TemplateSet(
            "STAR",
            "single",
            names,
            self.loglam0,
            self.dloglam,
            vectors,
            source,
            subclasses=labels,
            notes=notes,
        )


def rest_grid(grid: LogGrid = WORKING_GRID, max_abs_z: float = 0.01) -> tuple[float, int, int]:
    """``(loglam0, npix, pad)`` of the rest grid: ``grid`` widened by ``pad`` pixels each side.

    >>> rest_grid(max_abs_z=0.01)[1:]
    (3997, 44)
    """
    pad = math.ceil(math.log10(1.0 + max_abs_z) / grid.dloglam)
    return grid.loglam0 - pad * grid.dloglam, grid.npix + 2 * pad, pad


def _keys_weights(t: F64) -> F64:
    """Keys cubic-convolution weights (a = -1/2) of taps -1, 0, 1, 2 at fraction ``t``."""
    t2, t3 = t * t, t * t * t
    return np.stack(
        [
            -0.5 * t3 + t2 - 0.5 * t,
            1.5 * t3 - 2.5 * t2 + 1.0,
            -1.5 * t3 + 2.0 * t2 + 0.5 * t,
            0.5 * t3 - 0.5 * t2,
        ],
        axis=-1,
    )


def shift_to_rest(
    flux: F64,
    ivar: F64,
    z: F64,
    *,
    grid: LogGrid = WORKING_GRID,
    rest_loglam0: float,
    rest_npix: int,
) -> tuple[F64, F64]:
    """Spectra on ``grid`` (observed frame) resampled onto a rest grid of the same step.

    Parameters
    ----------
    flux, ivar : ndarray, shape (S, grid.npix)
    z : ndarray, shape (S,)
    rest_loglam0, rest_npix
        The rest grid ``rest_loglam0 + grid.dloglam * j``, j < rest_npix.

    Returns
    -------
    flux, ivar : ndarray, shape (S, rest_npix); ivar 0 where the spectrum gives no data.

    Examples
    --------
    A constant spectrum stays constant; a redshift of one whole pixel moves it one pixel
    blue, so the last rest pixel has no data.

    >>> g = LogGrid(3.5, 1e-4, 6)
    >>> f, iv = shift_to_rest(np.ones((1, 6)), np.ones((1, 6)), np.array([10**1e-4 - 1]),
    ...                       grid=g, rest_loglam0=3.5, rest_npix=6)
    >>> np.round(f, 12).tolist(), np.round(iv, 12).tolist()
    ([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]], [[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]])
    """
    n_s, n_obs = flux.shape
    rest = rest_loglam0 + grid.dloglam * np.arange(rest_npix)
    x = (rest[None, :] + np.log10(1.0 + z)[:, None] - grid.loglam0) / grid.dloglam
    i0 = np.floor(x).astype(np.int64)
    t = x - i0
    small = t < 1e-9  # on a pixel: no interpolation, no lost weight
    big = t > 1.0 - 1e-9
    i0 = np.where(big, i0 + 1, i0)
    t = np.where(small | big, 0.0, t)
    pad = np.zeros((n_s, 1))
    fp = np.concatenate([pad, flux, pad, pad, pad], axis=1)  # index i -> column i + 1
    wp = np.concatenate([pad, ivar, pad, pad, pad], axis=1)
    taps = np.clip(i0[:, :, None] + np.arange(-1, 3)[None, None, :] + 1, 0, n_obs + 1)
    rows = np.arange(n_s)[:, None, None]
    f4, w4 = fp[rows, taps], wp[rows, taps]
    good4 = w4 > 0
    inv4 = np.where(good4, 1.0 / np.where(good4, w4, 1.0), 0.0)
    c = _keys_weights(t)
    cubic_ok = good4.all(axis=2)
    lin_ok = good4[:, :, 1] & (good4[:, :, 2] | (t == 0.0))
    c_lin = np.stack([np.zeros_like(t), 1.0 - t, t, np.zeros_like(t)], axis=-1)
    coef = np.where(cubic_ok[:, :, None], c, c_lin)
    out_f = np.einsum("srk,srk->sr", coef, f4)
    var = np.einsum("srk,srk->sr", coef**2, inv4)
    ok = (cubic_ok | lin_ok) & (var > 0)
    out_w = np.where(ok, 1.0 / np.where(ok, var, 1.0), 0.0)
    return np.where(ok, out_f, 0.0), out_w


def _median_norm(flux: F64, ivar: F64, in_window: npt.NDArray[np.bool_]) -> F64:
    """Median of each row's good pixels inside the window (NaN when it has none)."""
    vals = np.where((ivar > 0) & in_window[None, :], flux, np.nan)
    out = np.full(flux.shape[0], np.nan)
    has = np.isfinite(vals).any(axis=1)
    if has.any():
        out[has] = np.nanmedian(vals[has], axis=1)
    return out


def _column_median_mad(vals: F64, good: npt.NDArray[np.bool_]) -> tuple[F64, F64]:
    """Per-column median and robust sigma over the good rows (0 where a column has none)."""
    med = np.zeros(vals.shape[1])
    sig = np.zeros(vals.shape[1])
    cols = good.any(axis=0)
    if cols.any():
        v = np.where(good[:, cols], vals[:, cols], np.nan)
        med[cols] = np.nanmedian(v, axis=0)
        sig[cols] = MAD_TO_SIGMA * np.nanmedian(np.abs(v - med[cols]), axis=0)
    return med, sig


def _stack(flux: F64, ivar: F64, cfg: BuildConfig) -> tuple[F64, F64, F64]:
    """Clipped weighted mean, its total weight and the per-pixel robust scatter."""
    good = ivar > 0
    med, sig = _column_median_mad(flux, good)
    noise = np.where(good, 1.0 / np.sqrt(np.where(good, ivar, 1.0)), np.inf)
    keep = good & (np.abs(flux - med) <= cfg.clip_sigma * np.maximum(sig, noise))
    w = np.where(
        keep,
        1.0 / (np.where(keep, 1.0 / np.where(good, ivar, 1.0), 1.0) + cfg.intrinsic_scatter**2),
        0.0,
    )
    wsum = w.sum(axis=0)
    mean = np.where(wsum > 0, (w * flux).sum(axis=0) / np.where(wsum > 0, wsum, 1.0), 0.0)
    return mean, wsum, sig


def _legendre(x: F64, degree: int) -> F64:
    """Legendre P_0..P_degree at ``x`` in [-1, 1], shape (degree + 1, n)."""
    return np.asarray(np.polynomial.legendre.legvander(x, degree).T, dtype=np.float64)


def _fit_corrections(
    flux: F64, ivar: F64, stack: F64, legendre: F64, red: npt.NDArray[np.bool_]
) -> F64:
    """Per-spectrum smooth multiplicative corrections ``c`` with ``flux ~ stack * c``."""
    n_k = legendre.shape[0]
    weight = ivar * (stack > 0)[None, :]
    corr = np.ones_like(flux)
    for _ in range(2):  # the second pass leaves out pixels far from the first fit
        ws2 = weight * stack**2
        ws2r = ws2 * red
        wfs = weight * flux * stack
        pp = np.einsum("kr,lr->klr", legendre, legendre).reshape(n_k * n_k, -1)
        m = np.zeros((flux.shape[0], n_k + 1, n_k + 1))
        m[:, :n_k, :n_k] = (ws2 @ pp.T).reshape(-1, n_k, n_k)
        m[:, :n_k, n_k] = m[:, n_k, :n_k] = ws2r @ legendre.T
        m[:, n_k, n_k] = ws2r.sum(axis=1)
        rhs = np.concatenate([wfs @ legendre.T, (wfs * red).sum(axis=1)[:, None]], axis=1)
        # No red-arm pixel (or no pixel at all): keep the equations solvable, term at zero.
        m[:, n_k, n_k] += np.where(m[:, n_k, n_k] > 0, 0.0, 1.0)
        scale = np.maximum(np.abs(np.diagonal(m, axis1=1, axis2=2)).max(axis=1), 1e-300)
        m += 1e-12 * scale[:, None, None] * np.eye(n_k + 1)
        coef = np.linalg.solve(m, rhs[:, :, None])[:, :, 0]
        corr = coef[:, :n_k] @ legendre + coef[:, n_k:] * red
        resid = (flux - stack * corr) * np.sqrt(weight)
        weight = np.where(np.abs(resid) <= 5.0, weight, 0.0)
    return corr


def _excess_residual(flux: F64, ivar: F64, stack: F64) -> F64:
    """Robust relative rms of each spectrum about the stack, its own noise removed."""
    good = (ivar > 0) & (stack > 0)[None, :]
    safe_stack = np.where(stack > 0, stack, 1.0)
    rel = np.where(good, flux / safe_stack - 1.0, np.nan)
    noise = np.where(good, 1.0 / (np.sqrt(np.where(good, ivar, 1.0)) * safe_stack), np.nan)
    out = np.full(flux.shape[0], np.inf)
    has = good.any(axis=1)
    if has.any():
        rms = MAD_TO_SIGMA * np.nanmedian(np.abs(rel[has]), axis=1)
        out[has] = np.sqrt(np.maximum(rms**2 - np.nanmedian(noise[has], axis=1) ** 2, 0.0))
    return out


def _fill(values: F64, covered: npt.NDArray[np.bool_]) -> F64:
    """Uncovered pixels from the covered ones: nearest beyond the ends, linear inside."""
    idx = np.arange(values.size)
    return np.interp(idx, idx[covered], values[covered])


def _build_one(
    flux: F64,
    ivar: F64,
    red: npt.NDArray[np.bool_],
    in_window: npt.NDArray[np.bool_],
    legendre: F64,
    cfg: BuildConfig,
) -> tuple[F64 | None, npt.NDArray[np.bool_], float, float]:
    """Stack one label's rest-frame spectra; returns (template, used rows, scatter, coverage)."""
    norm = _median_norm(flux, ivar, in_window)
    used = np.isfinite(norm) & (norm > 0)
    safe = np.where(used, norm, 1.0)
    flux = flux / safe[:, None]
    ivar = np.where(used[:, None], ivar * safe[:, None] ** 2, 0.0)
    corr = np.ones_like(flux)
    for _ in range(cfg.iterations):
        stack, _, _ = _stack(flux / corr, ivar * corr**2 * used[:, None], cfg)
        new = _fit_corrections(flux, ivar * used[:, None], stack, legendre, red)
        # a correction that reaches zero where the spectrum has data is no continuum
        used &= np.where(ivar > 0, new > 0.05, True).all(axis=1)
        new = np.where(new > 0.05, new, 1.0)
        logc = np.where(used[:, None], np.log(new), 0.0)
        corr = new / np.exp(logc.sum(axis=0) / max(int(used.sum()), 1))[None, :]
        # outliers are judged after the correction, so a distorted continuum is no outlier
        excess = _excess_residual(flux / corr, ivar * corr**2, stack)
        if used.sum() >= 2:
            limit = max(cfg.outlier_factor * float(np.median(excess[used])), cfg.outlier_floor)
            used &= excess <= limit
        if not used.any():
            return None, used, math.nan, 0.0
    cf = flux / corr
    cw = ivar * corr**2 * used[:, None]
    stack, wsum, _ = _stack(cf, cw, cfg)
    covered = wsum > 0
    if not covered.any():
        return None, used, math.nan, 0.0
    good = cw > 0
    _, rel_sig = _column_median_mad(cf / np.where(stack > 0, stack, 1.0), good)
    enough = covered & (good.sum(axis=0) >= 3)
    scatter = float(np.median(rel_sig[enough])) if enough.any() else math.nan
    template = _fill(stack, covered)
    scale = float(np.median(template[in_window]))
    if not scale > 0:
        return None, used, math.nan, 0.0
    return template / scale, used, scatter, float(covered.mean())


def build_templates(
    flux: npt.ArrayLike,
    ivar: npt.ArrayLike,
    labels: Sequence[str | None],
    z: npt.ArrayLike,
    snr: npt.ArrayLike,
    *,
    grid: LogGrid = WORKING_GRID,
    config: BuildConfig | None = None,
) -> BuildResult:
    """Stack spectra per label into star templates.

    Parameters
    ----------
    flux, ivar : array_like, shape (S, grid.npix)
        Spectra on ``grid`` in the observed frame (ivar 0: no data).
    labels : sequence of str or None, length S
        Stellar subclass of each spectrum (LAMOST spelling: ``'G5'``, ``'A1IV'``, ``'dM2'``).
    z, snr : array_like, shape (S,)
        Redshift of each spectrum (the one its label came with) and its S/N (g band).
    grid : LogGrid
    config : BuildConfig, optional

    Returns
    -------
    BuildResult
        One template per label that had at least ``config.min_spectra`` usable spectra, in
        label order; every other label in ``reported`` with its count and the reason, as are
        spectra left out of a built template (low S/N, no redshift, outliers).
    """
    cfg = config or BuildConfig()
    flux_a = np.asarray(flux, dtype=np.float64)
    ivar_a = np.asarray(ivar, dtype=np.float64)
    z_a = np.asarray(z, dtype=np.float64).reshape(-1)
    snr_a = np.asarray(snr, dtype=np.float64).reshape(-1)
    n_s = len(labels)
    if flux_a.shape != (n_s, grid.npix) or ivar_a.shape != flux_a.shape:
        raise ValueError(
            f"flux and ivar must have shape ({n_s}, {grid.npix}) for {n_s} labels, "
            f"got {flux_a.shape} and {ivar_a.shape}"
        )
    if z_a.shape[0] != n_s or snr_a.shape[0] != n_s:
        raise ValueError(f"z and snr need one value per spectrum ({n_s})")
    ivar_a = np.where(np.isfinite(ivar_a) & np.isfinite(flux_a) & (ivar_a > 0), ivar_a, 0.0)
    flux_a = np.where(ivar_a > 0, flux_a, 0.0)
    loglam0, npix, _ = rest_grid(grid, cfg.max_abs_z)
    rest_wave = 10.0 ** (loglam0 + grid.dloglam * np.arange(npix))
    in_window = (rest_wave >= cfg.norm_window_angstrom[0]) & (
        rest_wave <= cfg.norm_window_angstrom[1]
    )
    x = np.linspace(-1.0, 1.0, npix)
    legendre = _legendre(x, cfg.legendre_degree)

    groups: dict[str, list[int]] = {}
    reported: list[ReportedLabel] = []
    not_stellar: dict[str | None, int] = {}
    for i, lab in enumerate(labels):
        key = None if lab is None else str(lab).strip()
        if not key or spectral_letter(key) is None:
            not_stellar[lab if lab is None else str(lab)] = (
                not_stellar.get(lab if lab is None else str(lab), 0) + 1
            )
        else:
            groups.setdefault(key, []).append(i)
    for lab, count in not_stellar.items():
        reported.append(ReportedLabel(lab, count, "not a stellar subclass"))

    built: list[BuiltTemplate] = []
    for lab in sorted(groups):
        rows = np.array(groups[lab])
        z_ok = np.isfinite(z_a[rows]) & (np.abs(z_a[rows]) <= cfg.max_abs_z)
        snr_ok = np.isfinite(snr_a[rows]) & (snr_a[rows] >= cfg.min_snr)
        n_low = int((~snr_ok).sum())
        if (~z_ok).any():
            reported.append(
                ReportedLabel(
                    lab,
                    int((~z_ok).sum()),
                    f"spectra without a redshift within +-{cfg.max_abs_z} left out",
                )
            )
        sel = rows[z_ok & snr_ok]
        if sel.size < cfg.min_spectra:
            below = f"; {n_low} below the S/N cut" if n_low else ""
            reported.append(
                ReportedLabel(
                    lab,
                    int(sel.size),
                    f"too few spectra with S/N >= {cfg.min_snr} "
                    f"({sel.size} < {cfg.min_spectra}{below})",
                )
            )
            continue
        rf, rw = shift_to_rest(
            flux_a[sel], ivar_a[sel], z_a[sel], grid=grid, rest_loglam0=loglam0, rest_npix=npix
        )
        obs_wave = rest_wave[None, :] * (1.0 + z_a[sel])[:, None]
        red = obs_wave >= cfg.arm_split_angstrom
        template, used, scatter, coverage = _build_one(rf, rw, red, in_window, legendre, cfg)
        n_used = int(used.sum())
        n_out = int(sel.size - n_used)
        if n_out:
            reported.append(
                ReportedLabel(
                    lab,
                    n_out,
                    "outlier spectra dropped (residual far "
                    "above the label's median, or no usable continuum)",
                )
            )
        if template is None or n_used < cfg.min_spectra:
            reported.append(
                ReportedLabel(
                    lab,
                    n_used,
                    f"too few spectra after outlier rejection ({n_used} < {cfg.min_spectra})",
                )
            )
            continue
        built.append(
            BuiltTemplate(
                lab,
                template,
                n_used,
                float(np.median(snr_a[sel][used])),
                scatter,
                n_out,
                n_low,
                coverage,
            )
        )
    return BuildResult(loglam0, grid.dloglam, tuple(built), tuple(reported), cfg)


def build_from_records(
    records: Sequence[object], *, grid: LogGrid = WORKING_GRID, config: BuildConfig | None = None
) -> BuildResult:
    """`build_templates` on `lamostdb.io.SpectrumRecord` objects, without a catalogue.

    Uses each record's ``lasp_subclass`` (label), ``lasp_z`` and ``snrg``; records without
    a redshift or S/N are reported, not dropped silently.
    """
    from lamostdb.io.record import SpectrumRecord
    from lamostdb.templates.grid import batch_to_working_grid

    recs = [r for r in records if isinstance(r, SpectrumRecord)]
    if len(recs) != len(records):
        raise TypeError("build_from_records takes lamostdb.io.SpectrumRecord objects")
    flux, ivar = batch_to_working_grid(recs, grid=grid)
    z = np.array([np.nan if r.lasp_z is None else r.lasp_z for r in recs])
    snr = np.array([np.nan if r.snrg is None else r.snrg for r in recs])
    return build_templates(
        flux, ivar, [r.lasp_subclass for r in recs], z, snr, grid=grid, config=config
    )
