"""``fit_spectra``: classify and measure redshifts for a batch of spectra (arrays in, arrays out).

For every spectrum: chi-square against the star templates on the star redshift grid (matrix
products; the default pruned search ranks every template on a coarse redshift step with a
cheap bound and solves the exact chi-square only for the best few, around their minimum),
and against the galaxy and QSO eigen-bases at every pixel lag (the default pruned search
takes a binned first pass over every lag and the exact chi-square only on windows of lags
around its lowest minima, ``_eigen_candidates_pruned``). ``SearchConfig(exhaustive=True)``
solves the star chi-square at every template and redshift and takes the eigen-bases' FFT
correlations at every pixel lag, solved on a coarse lag step then refined at full
resolution around the best minima. Each minimum is refined by a
parabola through its neighbours, with ``z_err`` from the curvature (delta chi2 = 1).
Candidates are sorted by reduced chi-square; the top ``n_candidates`` are returned with
``delta_rchi2`` to the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lamostdb.match.eigen_kernel import (
    ObservedProducts,
    _eigen_chi2_at,
    coarse_chi2,
    eigen_chi2_all,
    normal_at,
    observed_products,
)
from lamostdb.match.engine import EigenBlock, Engine, get_engine
from lamostdb.match.linalg import solve_normal_equations
from lamostdb.match.star_kernel import _star_chi2, star_chi2_at, star_chi2_coarse

CLASS_CODES = ("STAR", "GALAXY", "QSO")
N_EIGEN_MINIMA = 3
COARSE_STEP = {"GALAXY": 2, "QSO": 4}


@dataclass(frozen=True)
class FitResult:
    """Top candidates per spectrum, best first (all arrays (S, N) unless noted)."""

    objclass: npt.NDArray[np.int8]  # index into CLASS_CODES
    template: npt.NDArray[np.int32]  # star template index, -1 for eigen classes
    z: npt.NDArray[np.float64]
    z_err: npt.NDArray[np.float64]
    chi2: npt.NDArray[np.float64]
    dof: npt.NDArray[np.int32]
    rchi2: npt.NDArray[np.float64]
    delta_rchi2: npt.NDArray[np.float64]  # rchi2 of the next candidate minus this one
    z_edge: npt.NDArray[np.bool_]  # minimum on the edge of the redshift grid
    coeffs: npt.NDArray[np.float64]  # (S, N, max_params), NaN padded
    n_good: npt.NDArray[np.int32]  # (S,) pixels with weight


def _parabola(
    cm: npt.NDArray[np.float64], c0: npt.NDArray[np.float64], cp: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], ...]:
    """Vertex offset (in steps), vertex value and 1-sigma (delta chi2 = 1) in steps."""
    curv = cm - 2 * c0 + cp
    ok = curv > 0
    safe = np.where(ok, curv, 1.0)
    dx = np.where(ok, 0.5 * (cm - cp) / safe, 0.0)
    dx = np.clip(dx, -0.5, 0.5)
    vertex = np.where(ok, c0 - 0.25 * (cm - cp) * dx, c0)
    sigma = np.where(ok, np.sqrt(2.0 / safe), np.nan)
    return dx, vertex, sigma


def _star_candidates(engine: Engine, flux: np.ndarray, ivar: np.ndarray, n_keep: int = 0):
    """Per spectrum and star template: chi2 at the best redshift (parabola vertex), z, z_err,
    edge flag and coefficients, all (S, NT) (coefficients (S, NT, K)).

    The pruned search (``engine.search.exhaustive`` False) fills only its kept templates (at
    least ``n_keep`` per spectrum); the others have chi2 = inf and NaN values.
    """
    return _star_search(engine, flux, ivar, n_keep)[0]


def _star_search(
    engine: Engine, flux: np.ndarray, ivar: np.ndarray, n_keep: int = 0
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """:func:`_star_candidates` and, per spectrum, whether it is noise-like: the pruned
    search's first pass could not tell its best templates apart (all False when exhaustive).
    """
    if not engine.search.exhaustive:
        return _star_candidates_pruned(engine, flux, ivar, n_keep)
    return _star_candidates_all(engine, flux, ivar), np.zeros(flux.shape[0], dtype=bool)


def _star_candidates_all(engine: Engine, flux: np.ndarray, ivar: np.ndarray):
    """The exhaustive star search: the exact chi-square at every template and redshift."""
    star = engine.star
    chi2, coeffs = _star_chi2(
        flux, ivar, star.tpl_bins, star.tpl2_bins, star.bin_index, engine.basis.vectors
    )
    n_s = flux.shape[0]
    nz = star.z.size
    nt = len(star.names)
    chi2 = chi2.reshape(n_s, nt, nz)
    coeffs = coeffs.reshape(n_s, nt, nz, -1)
    iz = np.argmin(chi2, axis=2)  # (S, NT)
    s_i = np.arange(n_s)[:, None]
    t_i = np.arange(nt)[None, :]
    c0 = chi2[s_i, t_i, iz]
    edge = (iz == 0) | (iz == nz - 1)
    izc = np.clip(iz, 1, nz - 2)
    dx, vertex, sigma = _parabola(
        chi2[s_i, t_i, izc - 1], chi2[s_i, t_i, izc], chi2[s_i, t_i, izc + 1]
    )
    step = star.z[1] - star.z[0]
    z = np.where(edge, star.z[iz], star.z[izc] + dx * step)
    z_err = np.where(edge, np.nan, sigma * step)
    best_chi2 = np.where(edge, c0, vertex)
    return best_chi2, z, z_err, edge, coeffs[s_i, t_i, iz]


def _star_candidates_pruned(engine: Engine, flux: np.ndarray, ivar: np.ndarray, n_keep: int):
    """The pruned star search: a cheap first pass over every template on a coarse redshift
    step (``star_kernel.star_chi2_coarse``), then the exact chi-square only for the
    ``star_top_k`` best templates of each spectrum, on a window of the full redshift grid
    around their first-pass minimum that follows the minimum while it is on the window's
    edge, so the parabola uses the same three grid points as the exhaustive search."""
    star, cfg = engine.star, engine.search
    vectors = engine.basis.vectors
    n_s = flux.shape[0]
    nz = star.z.size
    nt = len(star.names)
    groups = star.coarse(cfg.star_coarse_step, cfg.star_anchors)
    iz_c = np.concatenate([g.iz for g in groups])
    approx = star_chi2_coarse(
        flux,
        ivar,
        [(g.tpl_bins, g.tpl2_bins, g.anchor) for g in groups],
        star.bin_index,
        vectors,
        nt,
    )  # (S, NT, NZc)
    j_c = np.argmin(approx, axis=2)
    t_min = np.take_along_axis(approx, j_c[..., None], 2)[..., 0]
    k = min(nt, max(cfg.star_top_k, n_keep))
    top = np.argsort(t_min, axis=1, kind="stable")[:, :k]  # (S, K)
    # where the first pass cannot tell its K best templates apart (noise-like spectra,
    # spectra without weight), the exact chi-square everywhere, as the exhaustive search
    kept = np.take_along_axis(t_min, top, 1)
    with np.errstate(invalid="ignore"):
        full = np.flatnonzero(~(kept[:, -1] - kept[:, 0] >= cfg.star_full_gap))
    center = iz_c[np.take_along_axis(j_c, top, 1)]  # (S, K) full-grid redshift index
    offsets = np.arange(-cfg.star_half_window, cfg.star_half_window + 1)
    n_w = offsets.size

    def exact(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        win = np.clip(center[rows][..., None] + offsets, 0, nz - 1)  # (R, K, W)
        cols = (top[rows][..., None] * nz + win).reshape(rows.size, -1)
        chi2, coef = star_chi2_at(
            flux[rows], ivar[rows], star.tpl_jtb, star.bin_index, vectors, cols
        )
        return win, chi2.reshape(win.shape), coef.reshape(*win.shape, -1)

    win = np.clip(center[..., None] + offsets, 0, nz - 1)
    w_chi2 = np.zeros(win.shape)
    w_coef = np.zeros((*win.shape, vectors.shape[0]))
    pruned = np.ones(n_s, dtype=bool)
    pruned[full] = False
    rows = np.flatnonzero(pruned)
    if rows.size:
        win[rows], w_chi2[rows], w_coef[rows] = exact(rows)
    for _ in range(nz):  # walk steps (rare), not spectra: chi2 falls at every step
        jm = np.argmin(w_chi2, axis=2)
        izm = np.take_along_axis(win, jm[..., None], 2)[..., 0]
        walk = ((jm == 0) | (jm == n_w - 1)) & (izm > 0) & (izm < nz - 1) & pruned[:, None]
        if not walk.any():
            break
        rows = np.flatnonzero(walk.any(axis=1))
        center[rows] = np.where(walk[rows], izm[rows], center[rows])
        win[rows], w_chi2[rows], w_coef[rows] = exact(rows)
    jm = np.argmin(w_chi2, axis=2)[..., None]
    iz = np.take_along_axis(win, jm, 2)[..., 0]
    c0 = np.take_along_axis(w_chi2, jm, 2)[..., 0]
    edge = (iz == 0) | (iz == nz - 1)
    jc = np.clip(jm, 1, n_w - 2)
    dx, vertex, sigma = _parabola(
        np.take_along_axis(w_chi2, jc - 1, 2)[..., 0],
        np.take_along_axis(w_chi2, jc, 2)[..., 0],
        np.take_along_axis(w_chi2, jc + 1, 2)[..., 0],
    )
    step = star.z[1] - star.z[0]
    izc = np.take_along_axis(win, jc, 2)[..., 0]
    s_i = np.arange(n_s)[:, None]
    out_chi2 = np.full((n_s, nt), np.inf)
    out_z = np.full((n_s, nt), np.nan)
    out_zerr = np.full((n_s, nt), np.nan)
    out_edge = np.zeros((n_s, nt), dtype=bool)
    out_coef = np.full((n_s, nt, vectors.shape[0]), np.nan)
    out_chi2[s_i, top] = np.where(edge, c0, vertex)
    out_z[s_i, top] = np.where(edge, star.z[iz], star.z[izc] + dx * step)
    out_zerr[s_i, top] = np.where(edge, np.nan, sigma * step)
    out_edge[s_i, top] = edge
    out_coef[s_i, top] = np.take_along_axis(w_coef, jm[..., None], 2)[:, :, 0]
    out = (out_chi2, out_z, out_zerr, out_edge, out_coef)
    if full.size:
        for o, f_o in zip(out, _star_candidates_all(engine, flux[full], ivar[full]), strict=True):
            o[full] = f_o
    return out, ~pruned


def _local_minima(chi2: np.ndarray, n_min: int) -> np.ndarray:
    """Indices (S, n_min) of the lowest local minima of each row (ties broken by position)."""
    left = np.concatenate([np.full((chi2.shape[0], 1), np.inf), chi2[:, :-1]], axis=1)
    right = np.concatenate([chi2[:, 1:], np.full((chi2.shape[0], 1), np.inf)], axis=1)
    is_min = (chi2 <= left) & (chi2 <= right)
    masked = np.where(is_min, chi2, np.inf)
    return np.argsort(masked, axis=1, kind="stable")[:, :n_min]


def _eigen_candidates(
    engine: Engine, block: EigenBlock, flux: np.ndarray, ivar: np.ndarray, wff: np.ndarray
):
    m_all, b_all = eigen_chi2_all(
        flux, ivar, engine.obs_funcs, block.design, block.rest_fft, block.nfft, block.m_range
    )
    n_s, n_l = m_all.shape[:2]
    # m index l -> rest offset m = m_lo + l -> lag k = offset - m (descending in l)
    step = COARSE_STEP.get(block.objclass, 1)
    coarse = np.arange(0, n_l, step)
    c_chi2, _ = _eigen_chi2_at(np.broadcast_to(coarse, (n_s, coarse.size)), m_all, b_all, wff)
    minima = coarse[_local_minima(c_chi2, N_EIGEN_MINIMA)]  # (S, M) in l units
    half = step + 1
    offsets = np.arange(-half, half + 1)
    fine = np.clip(minima[:, :, None] + offsets[None, None, :], 0, n_l - 1)
    n_m = minima.shape[1]
    f_chi2, f_coef = _eigen_chi2_at(fine.reshape(n_s, -1), m_all, b_all, wff)
    f_chi2 = f_chi2.reshape(n_s, n_m, offsets.size)
    f_coef = f_coef.reshape(n_s, n_m, offsets.size, -1)
    j = np.argmin(f_chi2, axis=2)
    s_i = np.arange(n_s)[:, None]
    m_i = np.arange(n_m)[None, :]
    l_best = fine[s_i, m_i, j]
    edge = (l_best == 0) | (l_best == n_l - 1)
    jc = np.clip(j, 1, offsets.size - 2)
    dx, vertex, sigma = _parabola(
        f_chi2[s_i, m_i, jc - 1], f_chi2[s_i, m_i, jc], f_chi2[s_i, m_i, jc + 1]
    )
    l_ref = fine[s_i, m_i, jc]
    inner = ~edge & (j >= 1) & (j <= offsets.size - 2)
    m_lo = block.m_range[0]
    lag = block.offset - (m_lo + np.where(inner, l_ref + dx, l_best))
    dl = engine.grid.dloglam
    z = block.z_of_lag(lag, dl)
    z_err = np.where(inner, (1 + z) * np.log(10) * dl * sigma, np.nan)
    chi2 = np.where(inner, vertex, f_chi2[s_i, m_i, j])
    # duplicate minima (coarse minima that refined to the same lag) keep the first only
    chi2 = _drop_duplicates(lag, chi2)
    return chi2, z, z_err, edge, f_coef[s_i, m_i, j]


def _drop_duplicates(lag: np.ndarray, chi2: np.ndarray) -> np.ndarray:
    """chi2 with inf where a minimum sits within one pixel lag of an earlier slot's."""
    dup = np.zeros(lag.shape, dtype=bool)
    for a in range(1, lag.shape[1]):  # loop over the few minima slots, not spectra or lags
        dup[:, a] = np.any(np.abs(lag[:, a : a + 1] - lag[:, :a]) < 1.0, axis=1)
    return np.where(dup, np.inf, chi2)


def _exact_windows(
    obs: ObservedProducts,
    block: EigenBlock,
    wff: np.ndarray,
    start: np.ndarray,
    n_lag: int,
    spectra: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's chi-square (S, C, K) and coefficients on windows of K offsets."""
    m, b = normal_at(obs, block.rest, start, n_lag, spectra)
    coeffs = solve_normal_equations(m, b)
    w = wff if spectra is None else wff[spectra]
    return w[:, None, None] - np.einsum("sclk,sclk->scl", coeffs, b), coeffs


#: re-centring rounds of a window whose minimum falls on its edge (then on the next lag)
MAX_RECENTRE = 4


def _eigen_candidates_pruned(
    engine: Engine, block: EigenBlock, flux: np.ndarray, ivar: np.ndarray, wff: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The pruned search: a binned first pass over every lag, the exact chi-square of the
    full design only on windows of lags around its lowest minima (``engine.search``)."""
    cfg = engine.search
    factor = cfg.galaxy_factor if block.objclass == "GALAXY" else cfg.qso_factor
    cb = block.coarse(factor, cfg.coarse_full_design)
    c_chi2 = coarse_chi2(flux, ivar, engine.obs_funcs, cb, wff)  # (S, Lc)
    n_s, n_lc = c_chi2.shape
    top = _local_minima(c_chi2, min(cfg.eigen_top_n, n_lc))  # (S, N) coarse indices
    s_i = np.arange(n_s)[:, None]
    dx, _, _ = _parabola(
        c_chi2[s_i, np.clip(top - 1, 0, n_lc - 1)],
        c_chi2[s_i, top],
        c_chi2[s_i, np.clip(top + 1, 0, n_lc - 1)],
    )
    m_lo, m_hi = block.m_range
    n_l = m_hi - m_lo + 1
    k = 2 * cfg.eigen_half_window + 1  # SearchConfig: half window >= 1; n_l is thousands
    centre = np.rint(factor * (cb.m_range[0] + top + dx)).astype(np.int64)
    start = np.clip(centre - k // 2, m_lo, m_hi - k + 1)
    obs = observed_products(flux, ivar, engine.obs_funcs, block.design)
    w_chi2, w_coef = _exact_windows(obs, block, wff, start, k)
    for _ in range(MAX_RECENTRE):  # rounds, each batched over the windows that need it
        j = np.argmin(w_chi2, axis=2)
        low = w_chi2.min(axis=2)
        # only each spectrum's best window follows its minimum out of the window (the others
        # report their edge value, as the exhaustive search does for a refinement window)
        best = low == low.min(axis=1, keepdims=True)
        moved = best & (((j == 0) & (start > m_lo)) | ((j == k - 1) & (start < m_hi - k + 1)))
        if not moved.any():
            break
        ss, cc = np.nonzero(moved)
        new = np.clip(start[ss, cc] + j[ss, cc] - k // 2, m_lo, m_hi - k + 1)
        start[ss, cc] = new
        w_chi2[ss, cc], w_coef[ss, cc] = (
            a[:, 0] for a in _exact_windows(obs, block, wff, new[:, None], k, ss)
        )
    n_m = start.shape[1]
    m_i = np.arange(n_m)[None, :]
    j = np.argmin(w_chi2, axis=2)
    l_best = start - m_lo + j
    edge = (l_best == 0) | (l_best == n_l - 1)
    jc = np.clip(j, 1, k - 2)
    dx, vertex, sigma = _parabola(
        w_chi2[s_i, m_i, jc - 1], w_chi2[s_i, m_i, jc], w_chi2[s_i, m_i, jc + 1]
    )
    inner = ~edge & (j >= 1) & (j <= k - 2)
    lag = block.offset - (m_lo + np.where(inner, start - m_lo + jc + dx, l_best))
    dl = engine.grid.dloglam
    z = block.z_of_lag(lag, dl)
    z_err = np.where(inner, (1 + z) * np.log(10) * dl * sigma, np.nan)
    chi2 = np.where(inner, vertex, w_chi2[s_i, m_i, j])
    coef = w_coef[s_i, m_i, j]
    # best first, then duplicates (windows that found the same minimum) keep the best only
    order = np.argsort(chi2, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order if a.ndim == 2 else order[:, :, None], 1)  # noqa: E731
    chi2, z, z_err, edge, coef, lag = (take(a) for a in (chi2, z, z_err, edge, coef, lag))
    chi2 = _drop_duplicates(lag, chi2)
    order = np.argsort(chi2, axis=1, kind="stable")[:, :N_EIGEN_MINIMA]
    return tuple(take(a) for a in (chi2, z, z_err, edge, coef))


def _eigen_search(
    engine: Engine,
    block: EigenBlock,
    flux: np.ndarray,
    ivar: np.ndarray,
    wff: np.ndarray,
    noise: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The eigen class's candidates: exhaustive for every spectrum when the engine says so,
    and for the noise-like spectra of the pruned star search (``noise``) when
    ``SearchConfig.eigen_noise_exhaustive``; pruned for the others."""
    cfg = engine.search
    if cfg.exhaustive:
        return _eigen_candidates(engine, block, flux, ivar, wff)
    full = np.flatnonzero(noise) if cfg.eigen_noise_exhaustive else np.zeros(0, dtype=np.int64)
    if not full.size:
        return _eigen_candidates_pruned(engine, block, flux, ivar, wff)
    rest = np.flatnonzero(~noise)
    parts = [(full, _eigen_candidates(engine, block, flux[full], ivar[full], wff[full]))]
    if rest.size:
        parts.append(
            (rest, _eigen_candidates_pruned(engine, block, flux[rest], ivar[rest], wff[rest]))
        )
    # the two searches may keep different numbers of minima (eigen_top_n < N_EIGEN_MINIMA):
    # the missing ones are empty candidates (chi2 inf, z NaN), as a duplicate minimum is
    width = max(res[0].shape[1] for _, res in parts)
    fill = (np.inf, np.nan, np.nan, False, np.nan)
    out = []
    for k, value in enumerate(fill):
        first = parts[0][1][k]
        arr = np.full((flux.shape[0], width, *first.shape[2:]), value, dtype=first.dtype)
        for rows, res in parts:
            arr[rows, : res[k].shape[1]] = res[k]
        out.append(arr)
    return tuple(out)


def _keep_order(rchi2: np.ndarray, cls: np.ndarray, n_keep: int) -> np.ndarray:
    """Indices of the ``n_keep`` candidates to keep, sorted by rchi2: the best of each class
    is always kept (the class decision compares classes), the rest by rchi2."""
    rank = np.argsort(np.argsort(rchi2, axis=1, kind="stable"), axis=1).astype(np.float64)
    key = rank.copy()
    for code in np.unique(cls):  # three classes
        r = np.where(cls == code, rchi2, np.inf)
        best = np.argmin(r, axis=1)
        rows = np.flatnonzero(np.isfinite(r[np.arange(r.shape[0]), best]))
        key[rows, best[rows]] = -1.0
    chosen = np.argsort(key, axis=1, kind="stable")[:, :n_keep]
    again = np.take_along_axis(rank, chosen, 1)
    return np.take_along_axis(chosen, np.argsort(again, axis=1, kind="stable"), 1)


def weighted_inputs(
    engine: Engine, flux: npt.ArrayLike, ivar: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Flux and the weights every fit uses: ivar, 0 where not finite or in a masked range."""
    f = np.ascontiguousarray(flux, dtype=np.float64)
    w = np.ascontiguousarray(ivar, dtype=np.float64)
    if f.ndim != 2 or f.shape != w.shape or f.shape[1] != engine.grid.npix:
        raise ValueError(
            f"flux and ivar must both be (n_spectra, {engine.grid.npix}); got "
            f"{f.shape} and {w.shape}"
        )
    w = np.where(np.isfinite(w) & np.isfinite(f) & (w > 0), w, 0.0) * engine.pixel_weight
    return np.where(w > 0, f, 0.0), w


def fit_spectra(
    flux: npt.ArrayLike,
    ivar: npt.ArrayLike,
    *,
    engine: Engine | None = None,
    n_candidates: int = 10,
    n_star_templates: int = 6,
) -> FitResult:
    """Fit a batch of spectra on the working grid.

    Parameters
    ----------
    flux, ivar
        (S, P) arrays on ``engine.grid`` (see ``lamostdb.templates.grid.to_working_grid``);
        ivar = 0 marks pixels without weight.
    engine
        Prepared templates (default: the shipped ones).
    n_candidates
        Candidates kept per spectrum.
    n_star_templates
        Best star templates entering the candidate list (one redshift each).
    """
    engine = engine or get_engine()
    f, w = weighted_inputs(engine, flux, ivar)
    n_s = f.shape[0]
    n_good = (w > 0).sum(axis=1).astype(np.int32)
    wff = np.einsum("sp,sp->s", w * f, f)

    parts = []  # (class code, template idx, chi2, z, z_err, edge, coeffs, n_params)
    (s_chi2, s_z, s_zerr, s_edge, s_coef), noise = _star_search(engine, f, w, n_star_templates)
    k_star = min(n_star_templates, s_chi2.shape[1])
    order = np.argsort(s_chi2, axis=1)[:, :k_star]
    take = np.take_along_axis
    parts.append(
        (
            0,
            order,
            take(s_chi2, order, 1),
            take(s_z, order, 1),
            take(s_zerr, order, 1),
            take(s_edge, order, 1),
            take(s_coef, order[:, :, None], 1),
            engine.basis.n_vectors,
        )
    )
    for block in engine.eigen:
        code = CLASS_CODES.index(block.objclass)
        e_chi2, e_z, e_zerr, e_edge, e_coef = _eigen_search(engine, block, f, w, wff, noise)
        parts.append(
            (code, np.full(e_chi2.shape, -1), e_chi2, e_z, e_zerr, e_edge, e_coef, block.n_params)
        )

    max_params = max(p[7] for p in parts)
    cls = np.concatenate([np.full(p[2].shape, p[0], dtype=np.int8) for p in parts], axis=1)
    tpl = np.concatenate([p[1] for p in parts], axis=1).astype(np.int32)
    chi2 = np.concatenate([p[2] for p in parts], axis=1)
    z = np.concatenate([p[3] for p in parts], axis=1)
    z_err = np.concatenate([p[4] for p in parts], axis=1)
    edge = np.concatenate([p[5] for p in parts], axis=1)
    dof = np.concatenate(
        [np.broadcast_to((n_good - p[7])[:, None], p[2].shape) for p in parts], axis=1
    ).astype(np.int32)
    coeffs = np.concatenate(
        [
            np.pad(p[6], ((0, 0), (0, 0), (0, max_params - p[7])), constant_values=np.nan)
            for p in parts
        ],
        axis=1,
    )
    rchi2 = np.where(dof > 0, chi2 / np.maximum(dof, 1), np.inf)
    order = _keep_order(rchi2, cls, n_candidates)
    pick = lambda a: np.take_along_axis(a, order, 1)  # noqa: E731
    r = pick(rchi2)
    with np.errstate(invalid="ignore"):  # inf - inf where a spectrum has no weight
        delta = np.concatenate([r[:, 1:] - r[:, :-1], np.full((n_s, 1), np.nan)], axis=1)
    return FitResult(
        pick(cls),
        pick(tpl),
        pick(z),
        pick(z_err),
        pick(chi2),
        pick(dof),
        r,
        delta,
        pick(edge),
        np.take_along_axis(coeffs, order[:, :, None], 1),
        n_good,
    )
