"""The whole per-spectrum method on a batch: fit, reorder, confidence, re-match, ZWARNING.

``classify_arrays`` runs DESIGN.md section 5 items 3-8 on (S, P) arrays:

1. chi-square over templates x redshifts (``fit_spectra``);
2. candidate reordering (``reorder``): degenerate neighbours to the end;
3. the best fit's model and its confidence ``Conf = C f(B) + (1 - C) f(R)`` (``confidence``);
4. for Conf < threshold, the polynomial re-match of the leading candidates (``refine``), which
   may replace the first match; Conf is then computed again for the new best fit;
5. for STAR best fits, the velocity fitted again pixel by pixel (``velocity``);
6. the ZWARNING bits (``zwarning``).

Each step can be switched off (``PipelineOptions``) for the ablation study of
``lamostdb validate --ablation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache

import numpy as np
import numpy.typing as npt

from lamostdb.constants import C_KMS
from lamostdb.match.confidence import (
    Confidence,
    ConfidenceParams,
    confidence,
    default_params,
    type_group,
)
from lamostdb.match.decide import DecisionParams, best_of_class, decide_class
from lamostdb.match.engine import Engine, get_engine
from lamostdb.match.fit import CLASS_CODES, FitResult, fit_spectra, weighted_inputs
from lamostdb.match.indices import line_indices
from lamostdb.match.models import fit_models
from lamostdb.match.refine import RefineChecks, rematch
from lamostdb.match.reorder import best_chain_spans_letters, letters_of, reorder
from lamostdb.match.spectype import IndexTyper, type_subclasses
from lamostdb.match.velocity import VelocityOptions, refine_best_star
from lamostdb.match.zwarning import ZWarning, negative_emission

F64 = npt.NDArray[np.float64]
#: SMALL_DELTA_CHI2 (SDSS definition): the next different answer within this reduced chi2.
SMALL_DELTA_RCHI2 = 0.01
DIFFERENT_Z_KMS = 1000.0
ARM_STEP_LIMIT = 0.10
ARM_JOIN_ANGSTROM = 5800.0


@dataclass(frozen=True)
class PipelineOptions:
    """Which steps run, and their settings."""

    reorder: bool = True
    decide: bool = True
    decision: DecisionParams = field(default_factory=DecisionParams)
    confidence: bool = True
    refine: bool = True
    conf_threshold: float = 0.8
    n_rematch: int = 3
    checks: RefineChecks = field(default_factory=RefineChecks)
    params: ConfidenceParams | None = None
    #: full-resolution velocity of STAR best fits (``velocity``); None keeps the kernel's z
    velocity: VelocityOptions | None = field(default_factory=VelocityOptions)
    #: star subclasses read from line indices when the engine has a typing table (``spectype``)
    index_typing: bool = True


@dataclass(frozen=True)
class Classified:
    """Final candidates and the per-spectrum quality figures of a batch."""

    fit: FitResult
    subclass: npt.NDArray[np.str_]  # (S, N) subclass of every candidate
    degenerate: npt.NDArray[np.bool_]  # (S, N) moved to the end by the reordering
    conf: F64  # (S,) NaN when the confidence step is off
    conf_blue: F64
    conf_red: F64
    refined: npt.NDArray[np.bool_]
    zwarning: npt.NDArray[np.int64]
    model: F64  # (S, P) best-fit model on the working grid
    quality: Confidence | None  # the fitted residual Gaussians (for calibration)
    groups: npt.NDArray[np.str_]


@cache
def _template_labels(
    sets: tuple[tuple[str | None, tuple[str, ...], tuple[str, ...] | None], ...],
) -> tuple[tuple[str, ...], tuple[float, ...]]:
    from lamostdb.templates.subclass import parse_subclass, subclass_of_template

    subs: list[str] = []
    for set_subclass, names, per_template in sets:
        if per_template is not None:  # the library file says each template's subclass
            subs.extend(per_template)
            continue
        for name in names:
            try:
                subs.append(subclass_of_template(name))
                continue
            except KeyError:
                pass
            label = set_subclass or name
            letter, _ = parse_subclass(label)
            subs.append(label if letter is not None else "Non")
    ords = []
    for s in subs:
        _, o = parse_subclass(s)
        ords.append(float(o) if o is not None else np.nan)
    return tuple(subs), tuple(ords)


def template_subclasses(engine: Engine) -> tuple[tuple[str, ...], F64]:
    """Subclass and ordinal of every star template (SDSS table, else the set's label)."""
    subs, ords = _template_labels(
        tuple((ts.subclass, ts.names, ts.subclasses) for ts in engine.star.rest)
    )
    return subs, np.array(ords, dtype=np.float64)


def _subclass_matrix(fit: FitResult, subs: tuple[str, ...]) -> npt.NDArray[np.str_]:
    table = np.array([*subs, "Non"], dtype=object)
    return table[np.where(fit.template >= 0, fit.template, len(subs))].astype(str)


def _promote(
    fit: FitResult,
    choice: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    z: F64,
    z_err: F64,
    chi2: F64,
    n_params: npt.NDArray[np.int64],
) -> FitResult:
    """Move candidate ``choice[i]`` of spectrum ``rows[i]`` to the front with re-match values."""
    n_s = fit.z.shape[0]
    order = _promote_order(fit.z.shape, rows, choice)
    take = lambda a: np.take_along_axis(a, order, 1).copy()  # noqa: E731
    out = {
        k: take(getattr(fit, k))
        for k in ("objclass", "template", "z", "z_err", "chi2", "dof", "rchi2", "z_edge")
    }
    out["z"][rows, 0] = z
    out["z_err"][rows, 0] = z_err
    out["chi2"][rows, 0] = chi2
    out["dof"][rows, 0] = fit.n_good[rows] - n_params
    out["rchi2"][rows, 0] = chi2 / np.maximum(out["dof"][rows, 0], 1)
    out["z_edge"][rows, 0] = False
    coeffs = np.take_along_axis(fit.coeffs, order[:, :, None], 1).copy()
    coeffs[rows, 0, :] = np.nan  # the re-match's coefficients are of another basis
    r = out["rchi2"]
    with np.errstate(invalid="ignore"):  # inf - inf where a spectrum has no weight
        delta = np.concatenate([r[:, 1:] - r[:, :-1], np.full((n_s, 1), np.nan)], axis=1)
    return replace(fit, **out, delta_rchi2=delta, coeffs=coeffs)


def _small_delta(
    fit: FitResult, degenerate: npt.NDArray[np.bool_], subclass: npt.NDArray[np.str_]
) -> npt.NDArray[np.bool_]:
    """Next non-degenerate different answer within SMALL_DELTA_RCHI2 of the best."""
    letters = letters_of(subclass)
    dv = np.abs(fit.z - fit.z[:, :1]) / (1 + fit.z[:, :1]) * C_KMS
    different = (
        (fit.objclass != fit.objclass[:, :1]) | (dv > DIFFERENT_Z_KMS) | (letters != letters[:, :1])
    )
    different[:, 0] = False
    cand = different & ~degenerate & np.isfinite(fit.rchi2)
    first = np.argmax(cand, axis=1)
    has = cand.any(axis=1)
    with np.errstate(invalid="ignore"):
        gap = fit.rchi2[np.arange(fit.z.shape[0]), first] - fit.rchi2[:, 0]
        return has & (gap < SMALL_DELTA_RCHI2)


def _arm_step(engine: Engine, fit: FitResult, flux: F64, ivar: F64, model: F64) -> F64:
    """Relative jump of the fitted continuum across the arm join (NaN when not measurable)."""
    wave = engine.grid.wave_angstrom
    join = int(np.searchsorted(wave, ARM_JOIN_ANGSTROM))
    n_s = flux.shape[0]
    step = np.full(n_s, np.nan)
    cls = fit.objclass[:, 0]
    coef = fit.coeffs[:, 0, :]
    star = (cls == 0) & np.isfinite(coef[:, 0])
    if star.any():  # stars: the continuum staircase on both sides of the join
        vec = engine.basis.per_pixel()[:, [join - 1, join]]  # (K, 2)
        k = vec.shape[0]
        c = coef[star, :k] @ vec
        with np.errstate(divide="ignore", invalid="ignore"):
            step[star] = c[:, 1] / c[:, 0] - 1.0
    # other classes, and re-matched fits: weighted data / model on either side of the join
    rest = np.isnan(step)
    if rest.any():
        width = 60
        sides = []
        for lo, hi in ((join - width, join), (join, join + width)):
            m, f, w = model[rest, lo:hi], flux[rest, lo:hi], ivar[rest, lo:hi]
            with np.errstate(divide="ignore", invalid="ignore"):
                sides.append((w * f * m).sum(axis=1) / (w * m * m).sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            step[rest] = sides[1] / sides[0] - 1.0
    return step


def _inverted_best(engine: Engine, fit: FitResult) -> npt.NDArray[np.bool_]:
    """The best fit's continuum level is negative (stars: anywhere on the grid)."""
    cls = fit.objclass[:, 0]
    coef = fit.coeffs[:, 0, :]
    out = np.zeros(cls.size, dtype=bool)
    star = (cls == 0) & np.isfinite(coef[:, 0])
    if star.any():
        k = engine.basis.n_vectors
        cont = coef[star, :k] @ engine.basis.vectors
        out[star] = cont.min(axis=1) <= 0
    eig = (cls != 0) & np.isfinite(coef[:, 0])
    out[eig] = coef[eig, 0] <= 0
    return out


def classify_arrays(
    flux: npt.ArrayLike,
    ivar: npt.ArrayLike,
    *,
    engine: Engine | None = None,
    options: PipelineOptions | None = None,
    fibertype: npt.ArrayLike | None = None,
) -> Classified:
    """Classify a batch of spectra on the engine's working grid (arrays in, arrays out)."""
    engine = engine or get_engine()
    opt = options or PipelineOptions()
    f, w = weighted_inputs(engine, flux, ivar)
    n_s = f.shape[0]
    fit = fit_spectra(f, w, engine=engine)
    subs, ords = template_subclasses(engine)
    if opt.reorder:
        ambiguous_letter = best_chain_spans_letters(fit, ords, _subclass_matrix(fit, subs))
        fit, degenerate = reorder(fit, ords)
    else:
        degenerate = np.zeros(fit.z.shape, dtype=bool)
    if not opt.reorder:
        ambiguous_letter = np.zeros(n_s, dtype=bool)
    margin = np.full(n_s, np.inf)
    # best-fit models already fitted by the class decision: (S,) row taken, (S, P) values
    reused = np.zeros(n_s, dtype=bool)
    reused_model = np.zeros_like(f)
    if opt.decide:
        dec = decide_class(engine, fit, f, w, params=opt.decision)
        if dec.models is not None:  # the chosen candidate is its class's best: same model
            rows = np.arange(n_s)
            code = fit.objclass[rows, dec.choice].astype(np.int64)
            reused = best_of_class(fit)[rows, code] == dec.choice
            reused_model = dec.models[code, rows]
        margin = dec.margin
        moved = np.flatnonzero(dec.choice > 0)
        if moved.size:
            order = _promote_order(fit.z.shape, moved, dec.choice[moved])
            fit = _reordered(fit, order)
            degenerate = np.take_along_axis(degenerate, order, 1)
    cls_names = np.array(CLASS_CODES)
    subclass = _subclass_matrix(fit, subs)
    best_cls = cls_names[fit.objclass[:, 0]]
    model = reused_model
    todo = np.flatnonzero(~reused)
    if todo.size:
        model[todo] = fit_models(
            engine,
            f[todo],
            w[todo],
            best_cls[todo],
            fit.template[todo, 0].astype(np.int64),
            fit.z[todo, 0],
        ).model
    wave = engine.grid.wave_angstrom
    groups = np.array(
        [type_group(c, s) for c, s in zip(best_cls, subclass[:, 0], strict=True)], dtype="U9"
    )
    params = opt.params or engine.confidence or default_params()
    refined = np.zeros(n_s, dtype=bool)
    inverted = _inverted_best(engine, fit)
    quality = None
    conf = conf_b = conf_r = np.full(n_s, np.nan)
    if opt.confidence:
        quality = confidence(f, w, model, wave, groups, params)
        conf, conf_b, conf_r = quality.conf, quality.conf_blue, quality.conf_red
        low = np.flatnonzero((conf < opt.conf_threshold) & (fit.n_good > 0))
        if opt.refine and low.size:
            n_l = min(opt.n_rematch, fit.z.shape[1])
            rm = rematch(
                engine,
                f[low],
                w[low],
                fit.objclass[low, :n_l],
                fit.template[low, :n_l].astype(np.int64),
                fit.z[low, :n_l],
                opt.checks,
            )
            inverted[low] |= rm.inverted_lowest
            took = rm.choice >= 0
            if took.any():
                rows = low[took]
                ch = rm.choice[took]
                fit = _promote(
                    fit,
                    ch,
                    rows,
                    rm.z[took, ch],
                    rm.z_err[took, ch],
                    rm.chi2[took, ch],
                    rm.n_params[took, ch],
                )
                degenerate = np.take_along_axis(
                    degenerate, _promote_order(degenerate.shape, rows, ch), 1
                )
                refined[rows] = True
                model[rows] = rm.model[took]
                subclass = _subclass_matrix(fit, subs)
                best_cls = cls_names[fit.objclass[:, 0]]
                groups[rows] = [
                    type_group(c, s) for c, s in zip(best_cls[rows], subclass[rows, 0], strict=True)
                ]
                again = confidence(f[rows], w[rows], model[rows], wave, groups[rows], params)
                conf, conf_b, conf_r = conf.copy(), conf_b.copy(), conf_r.copy()
                conf[rows], conf_b[rows], conf_r[rows] = (
                    again.conf,
                    again.conf_blue,
                    again.conf_red,
                )
    marginal = margin < opt.decision.marginal
    if opt.confidence and opt.decide and marginal.any():
        # an answer the class decision itself finds marginal is not a confident one
        cap = 0.8 * np.clip(margin, 0.0, None) / opt.decision.marginal
        conf = np.where(marginal, np.minimum(conf, cap), conf)
    # -- star velocities at full resolution (lamostdb.match.velocity); only z/z_err of the
    # first candidate of STAR best fits change, after the class is decided.
    if opt.velocity is not None:
        fit = refine_best_star(engine, fit, f, w, refined, opt.velocity, opt.checks.poly_order)
    zw = np.zeros(n_s, dtype=np.int64)

    def setbit(flag: ZWarning, where: npt.NDArray[np.bool_]) -> None:
        zw[where] |= int(flag)

    if fibertype is not None:
        ft = np.asarray(fibertype, dtype=object)
        setbit(ZWarning.SKY, np.array([str(t).strip().lower() == "sky" for t in ft]))
    usable = int((engine.pixel_weight > 0).sum())
    setbit(ZWarning.LITTLE_COVERAGE, fit.n_good < 0.5 * usable)
    setbit(ZWarning.SMALL_DELTA_CHI2, _small_delta(fit, degenerate, subclass))
    good = w > 0
    n_good = np.maximum(good.sum(axis=1), 1)
    setbit(ZWarning.NEGATIVE_MODEL, (good & (model < 0)).sum(axis=1) > 0.01 * n_good)
    pull = np.abs(f - model) * np.sqrt(w)
    setbit(ZWarning.MANY_OUTLIERS, (good & (pull > 5)).sum(axis=1) > 0.05 * n_good)
    setbit(ZWarning.Z_FITLIMIT, fit.z_edge[:, 0])
    qso = fit.objclass[:, 0] == CLASS_CODES.index("QSO")
    if qso.any():
        neg = np.zeros(n_s, dtype=bool)
        neg[qso] = negative_emission(f[qso], w[qso], wave, fit.z[qso, 0])
        setbit(ZWarning.NEGATIVE_EMISSION, neg)
    setbit(ZWarning.UNPLUGGED, fit.n_good == 0)
    if opt.confidence:
        setbit(ZWarning.LOW_CONFIDENCE, conf < opt.conf_threshold)
    setbit(ZWarning.POLY_REFINED, refined)
    setbit(ZWarning.INVERTED_CONTINUUM, inverted)
    setbit(ZWarning.DEGENERATE_CANDIDATES, ambiguous_letter)
    step = _arm_step(engine, fit, f, w, model)
    setbit(ZWarning.ARM_MISMATCH, np.abs(np.nan_to_num(step)) > ARM_STEP_LIMIT)
    if opt.decide:
        setbit(ZWarning.CLASS_MARGINAL, marginal)
    if opt.index_typing and engine.typer is not None:
        subclass = typed_subclass(engine, engine.typer, fit, f, w, subclass)
    return Classified(
        fit, subclass, degenerate, conf, conf_b, conf_r, refined, zw, model, quality, groups
    )


def typed_subclass(
    engine: Engine,
    typer: IndexTyper,
    fit: FitResult,
    flux: F64,
    weight: F64,
    subclass: npt.NDArray[np.str_],
) -> npt.NDArray[np.str_]:
    """``subclass`` with the best candidate of STAR answers typed from line indices.

    Only stars whose template letter the typing table covers (``typer.letters``) are typed;
    the others (O, B, M, L, WD, carbon, ...) keep their template's subclass.
    """
    star = fit.objclass[:, 0] == CLASS_CODES.index("STAR")
    covered = np.isin(letters_of(subclass[:, 0]), list(typer.letters))
    rows = np.flatnonzero(star & covered)
    if not rows.size:
        return subclass
    idx = line_indices(engine.grid.wave_angstrom, flux[rows], weight[rows], fit.z[rows, 0])
    typed = type_subclasses(typer, idx)
    out = subclass.astype(f"U{max(subclass.dtype.itemsize // 4, typed.dtype.itemsize // 4)}")
    out[rows, 0] = typed
    return out


def _reordered(fit: FitResult, order: npt.NDArray[np.int64]) -> FitResult:
    """The candidates of ``fit`` in the given column order, ``delta_rchi2`` recomputed."""
    take = lambda a: np.take_along_axis(a, order, 1)  # noqa: E731
    out = {
        k: take(getattr(fit, k))
        for k in ("objclass", "template", "z", "z_err", "chi2", "dof", "rchi2", "z_edge")
    }
    r = out["rchi2"]
    with np.errstate(invalid="ignore"):
        delta = np.concatenate([r[:, 1:] - r[:, :-1], np.full((r.shape[0], 1), np.nan)], axis=1)
    return replace(
        fit, **out, delta_rchi2=delta, coeffs=np.take_along_axis(fit.coeffs, order[:, :, None], 1)
    )


def _promote_order(
    shape: tuple[int, int], rows: npt.NDArray[np.int64], choice: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    n_s, n_c = shape
    order = np.tile(np.arange(n_c), (n_s, 1))
    pos = np.arange(n_c)[None, :]
    c = choice[:, None]
    order[rows] = np.where(pos == 0, c, np.where(pos <= c, pos - 1, pos))
    return order
