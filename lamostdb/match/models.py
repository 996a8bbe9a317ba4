"""Best-fit models on the working grid, rebuilt for chosen candidates.

The kernels return chi-square values and coefficients on their own grids (per-bin sums for
stars, integer pixel lags for eigen classes); the confidence estimate, the polynomial
re-match, the ZWARNING checks and the plots need the model itself, pixel by pixel. Here
each candidate's basis functions are built at its (refined) redshift as a design matrix
``X`` of shape (S, P, K), and the weighted least-squares fit is solved for every spectrum at
once, with no loop over spectra.

Shifting uses cubic convolution (Keys, a = -0.5) on the template's uniform log-lambda grid:
four gathers per pixel, exact for cubic polynomials, and zero outside the template.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.polynomial import legendre

from lamostdb.match.engine import EigenBlock, Engine
from lamostdb.match.linalg import solve_normal_equations
from lamostdb.match.shift import same_step, shift_uniform

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Fitted:
    """Weighted least-squares fit of a design to a batch of spectra."""

    model: F64  # (S, P)
    coeffs: F64  # (S, K)
    chi2: F64  # (S,)


def shift_rows(
    vectors: F64,
    loglam0: float,
    dloglam: float,
    rows: npt.NDArray[np.int64],
    obs_loglam: F64,
    z: F64,
) -> F64:
    """Row ``rows[s]`` of ``vectors`` seen at redshift ``z[s]`` on ``obs_loglam``: (S, P).

    >>> v = np.arange(10.0)[None, :] ** 2           # x**2 on pixels 0..9
    >>> out = shift_rows(v, 0.0, 1.0, np.array([0]), np.array([4.5]), np.array([0.0]))
    >>> round(float(out[0, 0]), 6)                  # exact for polynomials up to cubic
    20.25
    """
    return shift_many(vectors, loglam0, dloglam, np.asarray(rows)[None, :], obs_loglam, z)[0]


def shift_many(
    vectors: F64,
    loglam0: float,
    dloglam: float,
    rows: npt.NDArray[np.int64],
    obs_loglam: F64,
    z: F64,
) -> F64:
    """``shift_rows`` for several rows per spectrum: rows (J, S) -> (J, S, P).

    The interpolation weights depend on the redshift only, so they are computed once for
    the J rows (the eigenvectors of a basis share them).
    """
    rest = obs_loglam[None, :] - np.log10(1.0 + np.asarray(z, dtype=np.float64))[:, None]
    x = (rest - loglam0) / dloglam
    i0 = np.floor(x).astype(np.int64)
    t = x - i0
    n = vectors.shape[1]
    # Keys cubic-convolution weights for pixels i0-1, i0, i0+1, i0+2
    w = (
        ((-0.5 * t + 1.0) * t - 0.5) * t,
        (1.5 * t - 2.5) * t * t + 1.0,
        ((-1.5 * t + 2.0) * t + 0.5) * t,
        (0.5 * t - 0.5) * t * t,
    )
    inside = (i0 >= 0) & (i0 <= n - 1)
    # flat gathers (``take`` on linear indices) of all J rows at once: 2-4x the speed of
    # ``vectors[row, idx]``; the same four products summed in the same order (same values)
    flat = np.ascontiguousarray(vectors, dtype=np.float64).ravel()
    base = (np.asarray(rows, dtype=np.int64) * n)[:, :, None]  # (J, S, 1)
    out = np.zeros((rows.shape[0],) + x.shape)
    for k, wk in zip((-1, 0, 1, 2), w, strict=True):  # four gathers
        out += wk * flat.take(base + np.clip(i0 + k, 0, n - 1))
    return np.where(inside, out, 0.0)


def solve_design(x: F64, flux: F64, ivar: F64) -> Fitted:
    """Minimise sum w (f - X a)^2 for every spectrum: X (S, P, K), flux/ivar (S, P)."""
    xwt = (x * ivar[:, :, None]).transpose(0, 2, 1)
    # batched BLAS products: 6x the einsum's speed for m, 2x for b and the model (sums in
    # another order: ~1e-15 relative on chi2, ~1e-13 on the model)
    m = np.matmul(xwt, x)
    b = np.matmul(xwt, flux[:, :, None])[..., 0]
    a = solve_normal_equations(m, b)
    model = np.matmul(x, a[:, :, None])[..., 0]
    chi2 = np.einsum("sp,sp->s", ivar, (flux - model) ** 2)
    return Fitted(model, a, chi2)


#: Spectra per cache block of :func:`solve_design_t`: a block's (B, K, P) design and its
#: weighted copy stay in cache between the products (2.5 -> 2.0 ms for 32 galaxy designs)
DESIGN_BLOCK = 4


def solve_design_t(xt: F64, flux: F64, ivar: F64) -> Fitted:
    """``solve_design`` for a design laid out (S, K, P) (``eigen_design_t``)."""
    n_s, k = xt.shape[:2]
    m = np.empty((n_s, k, k))
    b = np.empty((n_s, k))
    for first in range(0, n_s, DESIGN_BLOCK):
        blk = slice(first, first + DESIGN_BLOCK)
        xw = xt[blk] * ivar[blk, None, :]
        np.matmul(xw, xt[blk].transpose(0, 2, 1), out=m[blk])
        b[blk] = np.matmul(xw, flux[blk, :, None])[..., 0]
    a = solve_normal_equations(m, b)
    model = np.empty_like(flux)
    chi2 = np.empty(n_s)
    for first in range(0, n_s, DESIGN_BLOCK):
        blk = slice(first, first + DESIGN_BLOCK)
        model[blk] = np.matmul(a[blk, None, :], xt[blk])[:, 0, :]
        chi2[blk] = np.einsum("sp,sp->s", ivar[blk], (flux[blk] - model[blk]) ** 2)
    return Fitted(model, a, chi2)


def shifted_stars(engine: Engine, template: npt.NDArray[np.int64], z: F64) -> F64:
    """Star template ``template[s]`` (engine-wide index) at redshift ``z[s]``: (S, P)."""
    grid = engine.grid
    obs = grid.loglam0 + grid.dloglam * np.arange(grid.npix, dtype=np.float64)
    shifted = np.zeros((template.size, grid.npix))
    start = 0
    for ts in engine.star.rest:  # a loop over template files (usually one)
        local = template - start
        sel = (local >= 0) & (local < len(ts.names))
        if sel.any() and same_step(ts.dloglam, grid.dloglam):  # slices, not gathers
            shifted[sel] = shift_uniform(
                ts.vectors,
                ts.loglam0,
                ts.dloglam,
                local[sel][None, :],
                grid.loglam0,
                grid.npix,
                z[sel],
            )[0]
        elif sel.any():
            shifted[sel] = shift_rows(ts.vectors, ts.loglam0, ts.dloglam, local[sel], obs, z[sel])
        start += len(ts.names)
    return shifted


def shifted_eigen(engine: Engine, block: EigenBlock, j: int, z: F64) -> F64:
    """Eigenvector ``j`` of ``block`` at each redshift of ``z``: (S, P)."""
    grid = engine.grid
    rest0 = grid.loglam0 - block.offset * grid.dloglam  # aligned rest grid
    z = np.asarray(z, dtype=np.float64)
    rows = np.full((1, z.size), j)
    return shift_uniform(block.vectors, rest0, grid.dloglam, rows, grid.loglam0, grid.npix, z)[0]


def shifted_eigens(engine: Engine, block: EigenBlock, vectors: list[int], z: F64) -> F64:
    """Eigenvectors ``vectors`` of ``block`` at each redshift of ``z``: (J, S, P)."""
    grid = engine.grid
    rest0 = grid.loglam0 - block.offset * grid.dloglam  # aligned rest grid
    z = np.asarray(z, dtype=np.float64)
    rows = np.repeat(np.asarray(vectors, dtype=np.int64)[:, None], z.size, axis=1)
    # the aligned rest grid has the working grid's step: slices (lamostdb.match.shift)
    return shift_uniform(block.vectors, rest0, grid.dloglam, rows, grid.loglam0, grid.npix, z)


def star_design(
    engine: Engine, template: npt.NDArray[np.int64], z: F64, continuum: F64 | None = None
) -> F64:
    """Shifted single templates times continuum functions: (S, P, K).

    ``continuum`` (K, P) defaults to the engine's continuum vectors, pixel by pixel.
    """
    cont = engine.basis.per_pixel() if continuum is None else continuum
    return shifted_stars(engine, template, z)[:, :, None] * cont.T[None, :, :]


def eigen_design(engine: Engine, block: EigenBlock, z: F64) -> F64:
    """The class's basis functions (eigenvectors, additive and multiplicative terms) at z.

    (S, P, K): a transposed view of ``eigen_design_t``.
    """
    return eigen_design_t(engine, block, z).transpose(0, 2, 1)


def eigen_design_t(engine: Engine, block: EigenBlock, z: F64) -> F64:
    """``eigen_design`` laid out (S, K, P): each basis function contiguous over pixels."""
    grid = engine.grid
    n_s = np.asarray(z).size
    used = sorted(j for j in set(block.design.rest) if j >= 0)
    pos = {j: i for i, j in enumerate(used)}
    shifted = shifted_eigens(engine, block, used, z)  # (J, S, P)
    x = np.empty((n_s, len(block.design.rest), grid.npix))
    for c, (r, o) in enumerate(zip(block.design.rest, block.design.obs, strict=True)):
        if r < 0:  # an additive term: the observed-frame function (or 1)
            x[:, c] = 1.0 if o < 0 else engine.obs_funcs[o]
        elif o < 0:
            x[:, c] = shifted[pos[r]]
        else:
            np.multiply(shifted[pos[r]], engine.obs_funcs[o][None, :], out=x[:, c])
    return x


def candidate_design(engine: Engine, objclass: str, template: npt.NDArray[np.int64], z: F64) -> F64:
    """Design of one class for a batch (all spectra of the batch have class ``objclass``)."""
    if objclass == "STAR":
        return star_design(engine, template, z)
    for block in engine.eigen:
        if block.objclass == objclass:
            return eigen_design(engine, block, z)
    raise KeyError(f"the engine has no {objclass} templates")


def staircase_starts(continuum: F64) -> npt.NDArray[np.intp] | None:
    """First pixel of each run where every continuum row is constant; None if not a staircase.

    The engine's continuum vectors are constant over bins of ~60 pixels; a Legendre
    continuum changes at every pixel (None: fewer than 8 pixels per run on average).

    >>> staircase_starts(np.array([[1.0] * 8 + [2.0] * 8, [0.5] * 16]))
    array([0, 8])
    >>> staircase_starts(np.array([[0.0, 1.0, 2.0]])) is None
    True
    """
    change = np.flatnonzero(np.any(continuum[:, 1:] != continuum[:, :-1], axis=0)) + 1
    starts = np.concatenate([[0], change])
    return starts if starts.size * 8 <= continuum.shape[1] else None


def scaled_normal_equations(t: F64, flux: F64, ivar: F64, continuum: F64) -> tuple[F64, F64]:
    """Normal equations of ``flux ~ t * sum_k a_k continuum_k`` without the (S, P, K) design.

    ``M_kl = sum_p w t^2 c_k c_l`` and ``b_k = sum_p w f t c_k`` are BLAS products against
    the (P, K*K) continuum products; a staircase continuum (``staircase_starts``) is summed
    per run first, then multiplied by the run values (64 runs instead of 3909 pixels).
    Returns m (S, K, K) and b (S, K).
    """
    k = continuum.shape[0]
    wt = ivar * t
    q, r, cont = wt * t, wt * flux, continuum
    starts = staircase_starts(continuum)
    if starts is not None:
        q = np.add.reduceat(q, starts, axis=1)
        r = np.add.reduceat(r, starts, axis=1)
        cont = continuum[:, starts]
    products = (cont[:, None, :] * cont[None, :, :]).reshape(k * k, -1)
    m = (q @ products.T).reshape(-1, k, k)
    return m, r @ cont.T


def solve_scaled(t: F64, flux: F64, ivar: F64, continuum: F64) -> Fitted:
    """``solve_design`` for the design ``t[:, :, None] * continuum.T``: (S, P) t, (K, P) cont.

    The same least-squares fit as ``solve_design(star_design(...))`` (values equal to
    rounding, ~1e-13 relative) several times faster: the design is never built.
    """
    m, b = scaled_normal_equations(t, flux, ivar, continuum)
    a = solve_normal_equations(m, b)
    model = t * (a @ continuum)
    chi2 = np.einsum("sp,sp->s", ivar, (flux - model) ** 2)
    return Fitted(model, a, chi2)


def fit_models(
    engine: Engine,
    flux: F64,
    ivar: F64,
    objclass: npt.NDArray[np.str_],
    template: npt.NDArray[np.int64],
    z: F64,
) -> Fitted:
    """Best-fit model of every spectrum for the given class, template and redshift.

    Spectra are grouped by class (a loop over the three classes) and each group is solved in
    one batched least-squares fit.
    """
    n_s, n_p = flux.shape
    model = np.zeros((n_s, n_p))
    chi2 = np.zeros(n_s)
    k_max = max([engine.basis.n_vectors] + [b.n_params for b in engine.eigen])
    coeffs = np.full((n_s, k_max), np.nan)
    for cls in np.unique(objclass):
        sel = np.flatnonzero(objclass == cls)
        if cls == "STAR":  # a template times continuum functions: no design needed
            t = shifted_stars(engine, template[sel], z[sel])
            fitted = solve_scaled(t, flux[sel], ivar[sel], engine.basis.per_pixel())
        else:
            block = next((b for b in engine.eigen if b.objclass == cls), None)
            if block is None:
                raise KeyError(f"the engine has no {cls} templates")
            xt = eigen_design_t(engine, block, z[sel])
            fitted = solve_design_t(xt, flux[sel], ivar[sel])
        model[sel] = fitted.model
        chi2[sel] = fitted.chi2
        coeffs[sel, : fitted.coeffs.shape[1]] = fitted.coeffs
    return Fitted(model, coeffs, chi2)


def legendre_rows(npix: int, order: int) -> F64:
    """Legendre P0..P``order`` across ``npix`` pixels (x from -1 to 1): (order + 1, npix)."""
    x = np.linspace(-1.0, 1.0, npix)
    return np.array([legendre.legval(x, np.eye(order + 1)[k]) for k in range(order + 1)])
