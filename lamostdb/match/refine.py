"""Polynomial re-match of low-confidence fits (DESIGN.md section 5 item 7).

When a fit's confidence is below the threshold, its leading candidates (after reordering, so
they are different answers) are fitted again with a smooth polynomial continuum correction
instead of the binned continuum vectors:

- STAR: ``t(lambda / (1+z)) * (sum_k a_k P_k + a_arm * red_arm)``, Legendre P0..P5 across the
  grid, pixel by pixel;
- GALAXY / QSO: ``e_0(lambda / (1+z)) * (sum_k a_k P_k + a_arm * red_arm)`` plus the other
  eigenvectors (and, for galaxies, the additive quadratic of the main fit);

at the candidate's redshift and 3 steps either side (stars 0.0001 = 30 km/s, eigen classes
one pixel lag), refined by a parabola. The *leading coefficient* is ``a_0``, the level of the
continuum correction.

Checks, per re-matched candidate (all documented in ``RefineChecks``):

1. inverted continuum: ``a_0 <= 0``, or the correction ``sum a_k P_k + a_arm red_arm`` is
   negative on any weighted pixel: the match is rejected (INVERTED_CONTINUUM);
2. a plausible correction: ``|a_k| / a_0 <= max_poly_ratio`` for k >= 1 and
   ``|a_arm| / a_0 <= max_arm_ratio``; otherwise rejected;
3. the best surviving re-match replaces the first match only if it is another candidate and
   its chi-square is lower than the first candidate's re-match by at least
   ``max(min_delta_chi2, min_delta_fraction * chi2)``, or if the first candidate's own
   re-match was rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lamostdb.match.engine import EigenBlock, Engine
from lamostdb.match.fit import CLASS_CODES
from lamostdb.match.models import (
    Fitted,
    legendre_rows,
    shifted_eigens,
    shifted_stars,
    solve_design_t,
    solve_scaled,
)

F64 = npt.NDArray[np.float64]
STAR_STEP = 1e-4
N_STEPS = 3
ROWS_PER_CHUNK = 48  # eigen design rows (spectrum x candidate x redshift) solved together
STAR_ROWS_PER_CHUNK = 192  # star rows (no design: a few (R, P) arrays) solved together


@dataclass(frozen=True)
class RefineChecks:
    poly_order: int = 5
    max_poly_ratio: float = 1.0
    max_arm_ratio: float = 0.5
    min_delta_chi2: float = 9.0
    min_delta_fraction: float = 0.002


@dataclass(frozen=True)
class Rematch:
    """Re-match of the leading candidates of some spectra: arrays (S, L) unless noted."""

    z: F64
    z_err: F64
    chi2: F64
    n_params: npt.NDArray[np.int64]  # fitted terms of each re-match
    leading: F64
    inverted: npt.NDArray[np.bool_]
    inverted_lowest: npt.NDArray[np.bool_]  # (S,) the lowest-chi2 re-match was inverted
    accepted: npt.NDArray[np.bool_]  # passed checks 1 and 2
    choice: npt.NDArray[np.int64]  # (S,) candidate index replacing the first, -1 for none
    model: F64  # (S, P) model of the chosen re-match (0 where choice == -1)


def _continuum_rows(engine: Engine, order: int) -> F64:
    """(order + 2, P): Legendre P0..P_order and the red-arm indicator."""
    return np.vstack([legendre_rows(engine.grid.npix, order), engine.obs_funcs[3][None, :]])


def _eigen_rows_t(engine: Engine, block: EigenBlock, z: F64, cont: F64) -> F64:
    """(R, K, P) design of eigen-class rows: e_0 times the continuum rows, the other
    eigenvectors, and the additive terms of the main fit (galaxies)."""
    n_c = cont.shape[0]
    e = shifted_eigens(engine, block, list(range(block.n_vectors)), z)  # (J, R, P)
    n_add = sum(1 for r in block.design.rest if r < 0)
    x = np.empty((z.size, _eigen_extra(block) + n_c, engine.grid.npix))
    np.multiply(e[0][:, None, :], cont[None, :, :], out=x[:, :n_c])
    x[:, n_c : n_c + block.n_vectors - 1] = e[1:].transpose(1, 0, 2)
    for q in range(n_add):
        x[:, n_c + block.n_vectors - 1 + q] = engine.obs_funcs[q] if q < 3 else 1.0
    return x


def _fit_rows(
    engine: Engine,
    cls: npt.NDArray[np.int8],
    tpl: npt.NDArray[np.int64],
    z: F64,
    spectrum: npt.NDArray[np.int64],
    flux: F64,
    ivar: F64,
    cont: F64,
    *,
    with_model: bool,
) -> Fitted:
    """Fit design rows of mixed classes to their spectra ``flux[spectrum[r]]``.

    Each class is solved with its own terms (stars: template times continuum, without
    building the design; eigen classes: ``_eigen_rows_t`` in chunks of ``ROWS_PER_CHUNK``).
    Coefficients (R, K) are zero-padded to the largest class's K; rows of a class the engine
    has no templates for fit nothing (chi2 = sum w f^2, model 0).
    """
    n_r, n_c = cls.size, cont.shape[0]
    k_max = n_c + max([0] + [_eigen_extra(b) for b in engine.eigen])
    chi2 = np.empty(n_r)
    coeffs = np.zeros((n_r, k_max))
    model = np.zeros((n_r if with_model else 0, engine.grid.npix))
    blocks = {b.objclass: b for b in engine.eigen}
    for code in (0, 1, 2):  # STAR, GALAXY, QSO
        block = blocks.get(CLASS_CODES[code])
        rows = np.flatnonzero(cls == code)
        chunk = STAR_ROWS_PER_CHUNK if code == 0 else ROWS_PER_CHUNK
        for a in range(0, rows.size, chunk):  # memory chunks of design rows
            r = rows[a : a + chunk]
            f, w = flux[spectrum[r]], ivar[spectrum[r]]
            if code == 0:  # a template times the continuum: no design needed
                fitted = solve_scaled(shifted_stars(engine, tpl[r], z[r]), f, w, cont)
            elif block is not None:
                fitted = solve_design_t(_eigen_rows_t(engine, block, z[r], cont), f, w)
            else:  # no templates of this class: nothing fitted
                chi2[r] = np.einsum("rp,rp->r", w, f * f)
                continue
            chi2[r], coeffs[r, : fitted.coeffs.shape[1]] = fitted.chi2, fitted.coeffs
            if with_model:
                model[r] = fitted.model
    return Fitted(model, coeffs, chi2)


def _eigen_extra(block: EigenBlock) -> int:
    return block.n_vectors - 1 + sum(1 for r in block.design.rest if r < 0)


def rematch(
    engine: Engine,
    flux: F64,
    ivar: F64,
    cls: npt.NDArray[np.int8],
    tpl: npt.NDArray[np.int64],
    z: F64,
    checks: RefineChecks = RefineChecks(),
) -> Rematch:
    """Re-match candidates (S, L) of spectra (S, P) with the polynomial continuum."""
    n_s, n_l = cls.shape
    cont = _continuum_rows(engine, checks.poly_order)
    n_c = cont.shape[0]
    steps = np.arange(-N_STEPS, N_STEPS + 1)
    dl = engine.grid.dloglam
    z_try = np.where(
        cls[:, :, None] == 0,
        z[:, :, None] + STAR_STEP * steps,
        (1 + z[:, :, None]) * 10.0 ** (steps * dl) - 1,
    )  # (S, L, T)
    n_t = steps.size
    flat_s = np.repeat(np.arange(n_s), n_l * n_t)
    flat_c = np.repeat(cls.ravel(), n_t)
    flat_t = np.repeat(tpl.ravel(), n_t)
    chi2 = _fit_rows(
        engine, flat_c, flat_t, z_try.ravel(), flat_s, flux, ivar, cont, with_model=False
    ).chi2
    chi2 = chi2.reshape(n_s, n_l, n_t)
    j = np.clip(np.argmin(chi2, axis=2), 1, n_t - 2)
    s_i, l_i = np.arange(n_s)[:, None], np.arange(n_l)[None, :]
    cm, c0, cp = chi2[s_i, l_i, j - 1], chi2[s_i, l_i, j], chi2[s_i, l_i, j + 1]
    curv = cm - 2 * c0 + cp
    ok = curv > 0
    dx = np.clip(np.where(ok, 0.5 * (cm - cp) / np.where(ok, curv, 1.0), 0.0), -0.5, 0.5)
    z_at = z_try[s_i, l_i, j]
    step_z = np.where(cls == 0, STAR_STEP, (1 + z_at) * np.log(10) * dl)
    z_best = z_at + dx * step_z
    z_err = np.where(ok, np.sqrt(2.0 / np.where(ok, curv, 1.0)) * step_z, np.nan)
    # final fit at the refined redshift
    fitted = _fit_rows(
        engine,
        cls.ravel(),
        tpl.ravel(),
        z_best.ravel(),
        np.repeat(np.arange(n_s), n_l),
        flux,
        ivar,
        cont,
        with_model=True,
    )
    coef = fitted.coeffs.reshape(n_s, n_l, -1)
    chi2_best = fitted.chi2.reshape(n_s, n_l)
    a0 = coef[:, :, 0]
    corr = np.einsum("slk,kp->slp", coef[:, :, :n_c], cont)
    weighted = (ivar > 0)[:, None, :]
    cmin = np.where(weighted, corr, np.inf).min(axis=2)
    inverted = (a0 <= 0) | (cmin <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        poly_ratio = np.max(np.abs(coef[:, :, 1 : n_c - 1]), axis=2) / a0
        arm_ratio = np.abs(coef[:, :, n_c - 1]) / a0
    plausible = (poly_ratio <= checks.max_poly_ratio) & (arm_ratio <= checks.max_arm_ratio)
    accepted = ~inverted & plausible
    masked = np.where(accepted, chi2_best, np.inf)
    best = np.argmin(masked, axis=1)
    best_chi2 = masked[np.arange(n_s), best]
    first = chi2_best[:, 0]
    gap = np.maximum(checks.min_delta_chi2, checks.min_delta_fraction * first)
    replace_ok = (
        np.isfinite(best_chi2) & (best != 0) & (~accepted[:, 0] | (first - best_chi2 >= gap))
    )
    choice = np.where(replace_ok, best, -1)
    # the lowest-chi2 re-match needed an inverted continuum (and was rejected)
    lowest = np.argmin(chi2_best, axis=1)
    inverted_lowest = inverted[np.arange(n_s), lowest]
    models = fitted.model.reshape(n_s, n_l, -1)
    model = np.where(replace_ok[:, None], models[np.arange(n_s), np.maximum(choice, 0)], 0.0)
    extra = {1: 0, 2: 0}
    for block in engine.eigen:
        extra[CLASS_CODES.index(block.objclass)] = _eigen_extra(block)
    n_params = n_c + np.where(cls == 1, extra[1], np.where(cls == 2, extra[2], 0))
    return Rematch(
        z_best,
        z_err,
        chi2_best,
        n_params.astype(np.int64),
        a0,
        inverted,
        inverted_lowest,
        accepted,
        choice,
        model,
    )
