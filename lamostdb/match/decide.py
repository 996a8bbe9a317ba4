"""The STAR / GALAXY / QSO decision: compared at equal freedom, not won by flexibility.

The chi-square search ranks candidates by reduced chi-square, each class with its own model:
a star template times a few continuum vectors, a galaxy eigen-basis with additive and
multiplicative terms, a QSO eigen-basis. On real LAMOST spectra that ranking is fooled in
two ways (issue 10):

- *arm-join and calibration artefacts* (a flux step of up to 5x where the blue and red arms
  meet, a spike at the join, a broad bump in the red arm) that the star model, with one
  red-arm scale, cannot follow while the galaxy basis with its additive polynomial can;
- *template mismatch*: a bright star's lines fit by no template to within the noise, so a
  flexible combination of galaxy eigenvectors at some redshift wins by a few per cent of a
  large chi-square, while the star's own Balmer lines at rest stay unfitted.

The decision therefore re-scores the best candidate of each class on the same footing:

1. every class's best model ``m_c`` is refitted as ``f ~ m_c * sum_k a_k L_k`` with the same
   smooth continuum freedom for every class: Legendre terms on each arm separately (the arms
   are separate spectrographs), the join region given no weight; the chi-square differences
   are then divided by the best reduced chi-square (a model that misses by 5 sigma everywhere
   makes every difference 25 times larger than its evidence). This scaled chi-square is the
   *margin* of the decision;
2. a galaxy at |z| < ``lowz_galaxy`` (an F/A star imitated by a galaxy basis at rest) only
   counts when it shows emission lines at that redshift; a galaxy or QSO minimum at the edge
   of its redshift grid is no evidence;
3. a non-star that the ranking put first, but that leaves absorption at the star's rest
   wavelengths (Ca II, Balmer, Mg b, Ca triplet) deeper than the star model leaves there
   by more than ``rest_line_snr`` sigma in all and ``rest_line_each`` sigma in at least
   ``rest_line_count`` lines, loses to the star (lines blue of a QSO's Lyman alpha are not
   used: the forest absorbs anything there, and a broad absorption trough is one line).
   A non-star kept with more than ``rest_line_hint`` sigma of such absorption is marginal.
   A QSO whose Lyman-alpha break falls within ``lya_join_angstrom`` of the arm join (a join
   step looks like that break) loses to a star that beats it on the common footing.
4. a QSO is an object with broad lines: a QSO answer at z < ``broad_line_max_z`` whose
   H alpha, H beta and Mg II (those observed) show no broad component beyond
   ``broad_line_snr`` sigma, once the narrow lines and a local continuum are free, is a
   narrow-line galaxy (a Seyfert 2 or starburst whose line ratios the galaxy basis cannot
   follow) when the galaxy's best candidate has the same redshift. Such a galaxy is marginal.

The margin of the chosen class is the smaller of its lead on the common footing and its lead
in the ranking's own chi-square (both scaled). The pipeline caps the confidence of answers
whose margin is below ``marginal`` and sets
ZWARNING bit CLASS_MARGINAL; measured choices of every setting are in ``benchmarks``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from lamostdb.constants import C_KMS
from lamostdb.match.engine import Engine
from lamostdb.match.fit import CLASS_CODES, FitResult
from lamostdb.match.linalg import solve_normal_equations
from lamostdb.match.models import fit_models, legendre_rows
from lamostdb.templates.grid import LogGrid

F64 = npt.NDArray[np.float64]
STAR, GALAXY, QSO = (CLASS_CODES.index(c) for c in ("STAR", "GALAXY", "QSO"))

#: Rest-frame (vacuum Angstrom) emission lines of galaxies for the low-redshift check.
GALAXY_EMISSION_ANGSTROM = (3727.1, 4862.7, 4960.3, 5008.2, 6564.6, 6585.3, 6718.3)
#: Strong stellar absorption lines (vacuum Angstrom): Ca II K and H, H delta, H gamma,
#: H beta, Mg b, H alpha, the Ca II triplet. Sky and telluric ranges are masked anyway.
#: Blue of Lyman alpha (rest 1215.7 A, with a margin) a QSO's spectrum is forest.
LYA_EDGE_ANGSTROM = 1230.0
STELLAR_REST_ANGSTROM = (
    3934.8,
    3969.6,
    4102.9,
    4341.7,
    4862.7,
    5174.1,
    6564.6,
    8500.4,
    8544.4,
    8664.5,
)
#: QSO broad lines (vacuum Angstrom) and the narrow lines within +-9,000 km/s of each:
#: H beta with [O III] 4960/5008, H alpha with [N II] 6550/6585 and [S II] 6718/6733.
BROAD_LINES_ANGSTROM = {
    2799.1: (),
    4862.7: (4862.7, 4960.3, 5008.2),
    6564.6: (6549.9, 6564.6, 6585.3, 6718.3, 6732.7),
}


@dataclass(frozen=True)
class DecisionParams:
    """Settings of the class decision (chosen by measurement, see ``benchmarks``)."""

    arm_terms: int = 5
    join_angstrom: float = 5800.0
    join_mask_angstrom: tuple[float, float] = (5650.0, 5950.0)
    marginal: float = 50.0
    lowz_galaxy: float = 0.002
    emission_snr: float = 5.0
    rest_line_kms: float = 250.0
    rest_line_snr: float = 5.0
    rest_line_count: int = 3
    rest_line_each: float = 2.0
    rest_line_hint: float = 2.5
    lya_red_margin_angstrom: float = 1000.0
    lya_join_angstrom: float = 300.0
    broad_line_snr: float = 3.0
    broad_line_max_z: float = 1.0
    broad_line_kms: float = 1800.0  # Gaussian sigma of the broad component
    narrow_line_kms: float = 250.0  # Gaussian sigma of the narrow lines (instrument + NLR)
    line_window_kms: float = 9000.0


@dataclass(frozen=True)
class Decision:
    """Per spectrum: the candidate column chosen, and why."""

    choice: npt.NDArray[np.int64]  # (S,) index into the candidate axis
    scaled_chi2: F64  # (S, 3) common-footing chi2 / best rchi2 per class (inf: none)
    margin: F64  # (S,) scaled chi2 of the next class minus that of the chosen one
    changed: npt.NDArray[np.bool_]  # the chosen class differs from the rchi2 ranking's
    rest_lines: F64  # (S,) S/N of stellar absorption at rest left by the best non-star
    #: (3, S, P) best-fit model of each class's best candidate (``best_of_class``), 0 where
    #: the class has none; the pipeline reuses the chosen class's instead of refitting it
    models: F64 | None = None


def arm_basis(engine: Engine, n_terms: int, join_angstrom: float) -> F64:
    """Legendre P0..P(n-1) on the blue arm and again on the red arm: (2n, P)."""
    return _arm_rows(engine.grid.wave_angstrom, n_terms, join_angstrom)


def _arm_rows(wave: F64, n_terms: int, join_angstrom: float) -> F64:
    red = wave >= join_angstrom
    rows = []
    for side in (~red, red):
        idx = np.flatnonzero(side)
        block = np.zeros((n_terms, wave.size))
        block[:, idx] = legendre_rows(idx.size, n_terms - 1)
        rows.append(block)
    return np.concatenate(rows)


@lru_cache(maxsize=8)
def _arm_products(grid: LogGrid, n_terms: int, join_angstrom: float) -> tuple[F64, F64]:
    """``arm_basis`` and the (P, K(K+1)/2) products of its pairs k <= l, kept per grid."""
    basis = _arm_rows(grid.wave_angstrom, n_terms, join_angstrom)
    return basis, _pair_products_t(basis)


def _pair_products_t(basis: F64) -> F64:
    upper = np.triu_indices(basis.shape[0])
    return np.ascontiguousarray((basis[upper[0]] * basis[upper[1]]).T)


def common_chi2(model: F64, flux: F64, weight: F64, basis: F64, pairs_t: F64 | None = None) -> F64:
    """chi2 of ``flux ~ model * sum_k a_k basis_k`` for each spectrum (batched solve).

    ``pairs_t`` is the caller's kept (P, K(K+1)/2) products of the basis rows k <= l.
    """
    wm = weight * model
    k = basis.shape[0]
    # BLAS products against the basis products of each pair k <= l (the matrix is
    # symmetric): 10x the three-operand einsum, half the product of all K*K pairs
    pairs = (wm * model) @ (_pair_products_t(basis) if pairs_t is None else pairs_t)
    upper = np.triu_indices(k)
    m = np.empty((model.shape[0], k, k))
    m[:, upper[0], upper[1]] = pairs
    m[:, upper[1], upper[0]] = pairs
    b = (wm * flux) @ basis.T
    a = solve_normal_equations(m, b)
    fitted = model * (a @ basis)
    return np.einsum("sp,sp->s", weight, (flux - fitted) ** 2)


def best_of_class(fit: FitResult) -> npt.NDArray[np.int64]:
    """(S, 3) candidate column of each class's best, -1 where a class has none."""
    out = np.full((fit.z.shape[0], len(CLASS_CODES)), -1, dtype=np.int64)
    for code in range(len(CLASS_CODES)):
        r = np.where((fit.objclass == code) & np.isfinite(fit.rchi2), fit.rchi2, np.inf)
        j = np.argmin(r, axis=1)
        has = np.isfinite(r[np.arange(r.shape[0]), j])
        out[has, code] = j[has]
    return out


def line_sums(
    flux: F64,
    weight: F64,
    model: F64,
    wave: F64,
    z: F64,
    rest_angstrom: tuple[float, ...],
    half_kms: float,
    *,
    sign: float = 1.0,
    use: npt.NDArray[np.bool_] | None = None,
) -> tuple[F64, F64]:
    """Per line, the sums of ``sign * (flux - model)`` and of the variance ``1 / weight``
    over the weighted pixels within +-half_kms of the line at z: two (S, n_lines) arrays.

    Only the columns that some spectrum's window can reach are read (a few pixels per
    line, not the whole grid); the window test is the same as on the whole grid.
    ``use`` (S, n_lines) leaves lines out per spectrum.
    """
    n_s, n_p = flux.shape
    num = np.zeros((n_s, len(rest_angstrom)))
    var = np.zeros((n_s, len(rest_angstrom)))
    z = np.asarray(z, dtype=np.float64)
    if n_s == 0 or not np.isfinite(z).any():
        return num, var
    reach = 2.0 * half_kms / C_KMS  # twice the window: a margin for rounding
    for k, lam in enumerate(rest_angstrom):  # a handful of lines
        centre = lam * (1.0 + z)[:, None]
        lo = int(np.searchsorted(wave, np.nanmin(centre) * (1.0 - reach))) - 1
        hi = int(np.searchsorted(wave, np.nanmax(centre) * (1.0 + reach))) + 1
        cols = slice(max(lo, 0), min(hi, n_p))
        inside = np.abs(wave[None, cols] - centre) <= centre * half_kms / C_KMS
        if use is not None:
            inside &= use[:, k : k + 1]
        w = np.where(inside, weight[:, cols], 0.0)
        good = w > 0
        resid = sign * (flux[:, cols] - model[:, cols])
        num[:, k] = np.where(good, resid, 0.0).sum(axis=1)
        var[:, k] = np.where(good, 1.0 / np.where(good, w, 1.0), 0.0).sum(axis=1)
    return num, var


def _snr(num: F64, var: F64) -> F64:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, num / np.sqrt(var), 0.0)


def _combined(per_line: F64) -> F64:
    """Sum over lines (S, L) -> (S,), line by line in order."""
    out = np.zeros(per_line.shape[0])
    for k in range(per_line.shape[1]):
        out += per_line[:, k]
    return out


def line_snr(
    flux: F64,
    weight: F64,
    model: F64,
    wave: F64,
    z: F64,
    rest_angstrom: tuple[float, ...],
    half_kms: float,
    *,
    sign: float = 1.0,
    use: npt.NDArray[np.bool_] | None = None,
) -> F64:
    """Combined S/N of ``sign * (flux - model)`` within +-half_kms of the lines at z: (S,).

    ``use`` (S, n_lines) leaves lines out per spectrum.
    """
    num, var = line_sums(flux, weight, model, wave, z, rest_angstrom, half_kms, sign=sign, use=use)
    return _snr(_combined(num), _combined(var))


def _gaussian(wave: F64, centre: float, sigma_kms: float) -> F64:
    return np.exp(-0.5 * ((wave - centre) / (centre * sigma_kms / C_KMS)) ** 2)


def broad_line_snr(flux: F64, weight: F64, wave: F64, z: float, p: DecisionParams) -> float:
    """Largest S/N of a broad Gaussian at H alpha, H beta or Mg II at ``z`` (NaN: none seen).

    Around each observed line, a quadratic continuum plus Gaussians at the narrow lines
    (sigma ``narrow_line_kms``) is fitted with and without a broad Gaussian (sigma
    ``broad_line_kms``) at the line; the S/N is sqrt(delta chi2) over the reduced chi2 (at
    least 1), signed by the broad amplitude.
    """
    best = np.nan
    for rest, narrow in BROAD_LINES_ANGSTROM.items():
        centre = rest * (1.0 + z)
        win = (np.abs(wave - centre) < centre * p.line_window_kms / C_KMS) & (weight > 0)
        if centre < wave[0] or centre > wave[-1] or win.sum() < 60:
            continue
        x = (wave[win] - centre) / centre
        rows = [np.ones_like(x), x, x * x]
        rows += [_gaussian(wave[win], lam * (1.0 + z), p.narrow_line_kms) for lam in narrow]
        design = np.array(rows + [_gaussian(wave[win], centre, p.broad_line_kms)]).T
        sw = np.sqrt(weight[win])
        y = flux[win]
        chi2 = []
        for cols in (design[:, :-1], design):
            a = np.linalg.lstsq(cols * sw[:, None], y * sw, rcond=None)[0]
            chi2.append(float(np.sum(weight[win] * (y - cols @ a) ** 2)))
        r = max(chi2[1] / max(int(win.sum()) - design.shape[1], 1), 1.0)
        snr = float(np.sign(a[-1]) * np.sqrt(max(chi2[0] - chi2[1], 0.0) / r))
        best = snr if not np.isfinite(best) else max(best, snr)
    return best


def decide_class(
    engine: Engine, fit: FitResult, flux: F64, weight: F64, *, params: DecisionParams | None = None
) -> Decision:
    """Choose each spectrum's class on a common footing (see the module docstring)."""
    p = params or DecisionParams()
    n_s = flux.shape[0]
    wave = engine.grid.wave_angstrom
    best = best_of_class(fit)
    rows = np.arange(n_s)
    basis, pairs_t = _arm_products(engine.grid, p.arm_terms, p.join_angstrom)
    wj = weight * ((wave < p.join_mask_angstrom[0]) | (wave > p.join_mask_angstrom[1]))
    n_good = np.maximum((wj > 0).sum(axis=1) - basis.shape[0], 1)
    chi2 = np.full((n_s, 3), np.inf)
    models = np.zeros((3, n_s, flux.shape[1]))
    for code in range(3):
        has = np.flatnonzero(best[:, code] >= 0)
        if not has.size:
            continue
        j = best[has, code]
        cls = np.full(has.size, CLASS_CODES[code])
        m = fit_models(
            engine,
            flux[has],
            weight[has],
            cls,
            fit.template[has, j].astype(np.int64),
            fit.z[has, j],
        ).model
        models[code, has] = m
        chi2[has, code] = common_chi2(m, flux[has], wj[has], basis, pairs_t)
    r_best = np.min(chi2, axis=1) / n_good
    scale = np.maximum(np.where(np.isfinite(r_best), r_best, 1.0), 1.0)
    scaled = chi2 / scale[:, None]
    z_of = np.where(best >= 0, fit.z[rows[:, None], np.maximum(best, 0)], np.nan)

    # 3. a galaxy at rest without emission lines is not evidence against a star
    gal_lowz = np.abs(np.nan_to_num(z_of[:, GALAXY], nan=1.0)) < p.lowz_galaxy
    if gal_lowz.any():
        low = np.flatnonzero(gal_lowz)  # only these rows are read (and their few pixels)
        em = line_snr(
            flux[low],
            weight[low],
            models[STAR, low],
            wave,
            np.nan_to_num(z_of[low, GALAXY]),
            GALAXY_EMISSION_ANGSTROM,
            300.0,
        )
        scaled[low[em < p.emission_snr], GALAXY] = np.inf

    # edge-of-grid minima (a QSO at z = 6 fitting a star's continuum) are no evidence
    for code in (GALAXY, QSO):
        j = np.maximum(best[:, code], 0)
        at_edge = (best[:, code] >= 0) & fit.z_edge[rows, j]
        scaled[at_edge, code] = np.inf
    # a QSO whose Lyman alpha lands near the red end is a featureless step: no evidence
    lya_obs = LYA_EDGE_ANGSTROM * (1 + np.nan_to_num(z_of[:, QSO], nan=0.0))
    scaled[lya_obs > wave[-1] - p.lya_red_margin_angstrom, QSO] = np.inf

    # 2. a non-star that the ranking put first loses to the star when it leaves the star's
    #    own absorption lines at rest unfitted (and the star model fits them)
    # a star at the edge of its velocity grid (|v| = 1200 km/s) is no star to fall back to
    j_star = np.maximum(best[:, STAR], 0)
    star_ok = np.isfinite(scaled[:, STAR]) & ~((best[:, STAR] >= 0) & fit.z_edge[rows, j_star])
    other = np.where(scaled[:, GALAXY] <= scaled[:, QSO], GALAXY, QSO)
    first = fit.objclass[:, 0].astype(np.int64)
    rest_lines = np.zeros(n_s)
    line_count = np.zeros(n_s, dtype=np.int64)
    check = star_ok & (first != STAR)
    if check.any():
        i = np.flatnonzero(check)
        # a QSO's Lyman-alpha forest absorbs anything blue of its Lyman alpha: lines there
        # say nothing
        z_q = np.where(other[i] == QSO, np.nan_to_num(z_of[i, QSO]), -1.0)
        usable = np.array(STELLAR_REST_ANGSTROM)[None, :] > LYA_EDGE_ANGSTROM * (1 + z_q[:, None])
        f_i, w_i, zero = flux[i], weight[i], np.zeros(i.size)
        sums = [
            line_sums(
                f_i,
                w_i,
                m,
                wave,
                zero,
                STELLAR_REST_ANGSTROM,
                p.rest_line_kms,
                sign=-1.0,
                use=usable,
            )
            for m in (models[other[i], i], models[STAR, i])
        ]
        a_other, a_star = (_snr(_combined(num), _combined(var)) for num, var in sums)
        rest_lines[i] = a_other - np.maximum(a_star, 0.0)
        # per line: is it there on its own?
        e_o, e_s = (_snr(num, var) for num, var in sums)
        n_lines = ((e_o - np.maximum(e_s, 0.0)) > p.rest_line_each).sum(axis=1)
        line_count[i] = n_lines
    rescued = check & (rest_lines > p.rest_line_snr) & (line_count >= p.rest_line_count)
    # a QSO whose Lyman-alpha break lands on the arm join imitates a join step: it must beat
    # the star on the common footing, where the step is free for every class
    lya_join = (
        np.abs(LYA_EDGE_ANGSTROM * (1 + np.nan_to_num(z_of[:, QSO], nan=-1.0)) - p.join_angstrom)
        < p.lya_join_angstrom
    )
    rescued |= (
        check
        & (first == QSO)
        & lya_join
        & (scaled[:, STAR] < scaled[:, QSO])
        & (scaled[:, STAR] <= scaled[:, GALAXY])
    )
    pick = np.where(first == STAR, STAR, np.where(rescued, STAR, other))
    # the ranking's non-star was no evidence (a galaxy at rest, a grid-edge minimum): the
    # best class on the common footing, the star included
    void = (
        (first != STAR)
        & ~np.isfinite(scaled[rows, first])
        & np.isfinite(scaled).any(axis=1)
        & ~rescued
    )
    pick = np.where(void, np.argmin(np.where(np.isfinite(scaled), scaled, np.inf), axis=1), pick)
    pick = np.where(np.isfinite(scaled[rows, pick]), pick, first)
    # the common footing only arbitrates between the non-star classes: a non-star it swaps in
    # for the ranking's first must also beat the star in the ranking itself
    ranked = np.full((n_s, 3), np.inf)
    for code in range(3):
        with_best = best[:, code] >= 0
        ranked[with_best, code] = (
            fit.chi2[rows[with_best], best[with_best, code]] / scale[with_best]
        )
    # 4. a QSO without broad lines at the galaxy's own redshift is a narrow-line galaxy
    z_g = np.nan_to_num(z_of[:, GALAXY], nan=-9.0)
    z_q = np.nan_to_num(z_of[:, QSO], nan=-9.0)
    narrow = np.zeros(n_s, dtype=bool)
    for s in np.flatnonzero(
        (pick == QSO)
        & (best[:, GALAXY] >= 0)
        & (z_q < p.broad_line_max_z)
        & (np.abs(z_g - z_q) < 3e-3 * (1 + np.abs(z_q)))
    ):
        # only QSO answers at low z with a galaxy at the same z: a handful per night
        snr = broad_line_snr(flux[s], weight[s], wave, float(z_q[s]), p)
        narrow[s] = np.isfinite(snr) and snr < p.broad_line_snr
    pick = np.where(narrow, GALAXY, pick)
    swapped = (first != STAR) & (pick != STAR) & (pick != first) & star_ok
    pick = np.where(swapped & (ranked[:, STAR] < ranked[rows, pick]), STAR, pick)

    # unchanged when the rchi2 ranking's best class is the chosen one
    choice = np.where(pick == first, 0, best[rows, pick])
    choice = np.where(choice < 0, 0, choice)
    chosen = fit.objclass[rows, choice].astype(np.int64)
    others = scaled.copy()
    others[rows, chosen] = np.inf
    # the ranking's own chi-square gap, on the same scale: both footings must agree that the
    # chosen class is ahead for the answer to be clear
    ranked_others = np.where(np.isfinite(others), ranked, np.inf)
    with np.errstate(invalid="ignore"):
        margin = np.minimum(
            np.min(others, axis=1) - scaled[rows, chosen],
            np.min(ranked_others, axis=1) - ranked[rows, chosen],
        )
    # a star kept on its lines alone: the evidence is the lines' chi-square beyond the cut
    margin = np.where(rescued & (chosen == STAR), rest_lines**2 - p.rest_line_snr**2, margin)
    # a non-star kept although the star's lines are half there: not a confident answer
    hint = check & ~rescued & (chosen != STAR) & (rest_lines > p.rest_line_hint)
    margin = np.where(hint, np.minimum(margin, 0.0), margin)
    # a galaxy kept for want of broad lines, against the QSO's better chi-square
    margin = np.where(narrow & (chosen == GALAXY), np.minimum(margin, 0.0), margin)
    return Decision(choice.astype(np.int64), scaled, margin, chosen != first, rest_lines, models)
