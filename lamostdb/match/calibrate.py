"""Learn the star continuum vectors from spectra (``lamostdb templates calibrate``).

1. Fit the spectra with the fallback (Legendre) basis to find each one's best star template
   and redshift.
2. For each spectrum, the per-bin ratio of observed to template flux,
   ``r_j = sum_j w f t / sum_j w t^2`` (the weighted least-squares scale in bin j), is its
   calibration curve at the bin resolution; ``log r_j`` is weighted by ``r_j^2 sum_j w t^2``,
   the inverse variance of log r_j.
3. The SVD of those curves (``continuum.learn_basis``) gives the characteristic vectors.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lamostdb.match.continuum import ContinuumBasis, learn_basis, legendre_basis
from lamostdb.match.engine import Engine, prepare_engine
from lamostdb.match.fit import fit_spectra
from lamostdb.match.star_kernel import gather_bins


def calibration_curves(
    flux: npt.NDArray[np.float64], ivar: npt.NDArray[np.float64], engine: Engine, *, batch: int = 32
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Binned log(observed / best star template) and weights for spectra best fit as stars."""
    logs, weights = [], []
    star = engine.star
    nz = star.z.size
    for a in range(0, flux.shape[0], batch):
        f, w = flux[a : a + batch], ivar[a : a + batch] * engine.pixel_weight
        fit = fit_spectra(f, w, engine=engine)
        is_star = fit.objclass[:, 0] == 0
        iz = np.clip(np.round((fit.z[:, 0] - star.z[0]) / (star.z[1] - star.z[0])), 0, nz - 1)
        col = np.where(is_star, fit.template[:, 0] * nz + iz.astype(np.int64), 0)
        t_bins = star.tpl_bins[:, :, col]  # (J, B, S)
        wb = gather_bins(w, star.bin_index)  # (J, S, B)
        fb = gather_bins(f, star.bin_index)
        tt = np.einsum("jsb,jbs->js", wb, t_bins**2)
        ft = np.einsum("jsb,jsb,jbs->js", wb, fb, t_bins)
        ok = (tt > 0) & (ft > 0)
        r = np.where(ok, ft / np.where(tt > 0, tt, 1.0), 1.0)
        logs.append(np.log(r).T[is_star])
        weights.append(np.where(ok, r**2 * tt, 0.0).T[is_star])
    return np.concatenate(logs), np.concatenate(weights)


def learn_from_spectra(
    flux: npt.NDArray[np.float64],
    ivar: npt.NDArray[np.float64],
    *,
    n_vectors: int = 2,
    legendre_order: int = 3,
    source: str = "learned",
) -> ContinuumBasis:
    """Fit with the Legendre fallback, then learn ``n_vectors`` SVD vectors (+ constant, arm)."""
    fallback = legendre_basis()
    engine = prepare_engine(basis=fallback)
    log_r, weight = calibration_curves(flux, ivar, engine)
    if log_r.shape[0] < n_vectors + 2:
        raise ValueError(
            f"only {log_r.shape[0]} spectra were fit as stars; need at least "
            f"{n_vectors + 2} to learn {n_vectors} vectors"
        )
    return learn_basis(
        log_r,
        weight,
        fallback.bin_starts,
        n_vectors=n_vectors,
        legendre_order=legendre_order,
        source=f"{source} ({log_r.shape[0]} star spectra)",
    )
