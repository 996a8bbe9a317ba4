"""Chi-square of every spectrum against every shifted single template, by matrix products.

Model of spectrum s under shifted template t: ``t(i) * sum_k a_k v_k(bin(i))``. For fixed t
the chi-square minimised over ``a`` needs

    M_kl = sum_i w(i) t(i)^2 v_k v_l      b_k = sum_i w(i) f(i) t(i) v_k

and because the vectors are constant within a bin j, both factor into per-bin sums

    A_j(s, t) = sum_{i in j} w_s(i) t(i)^2      C_j(s, t) = sum_{i in j} w_s(i) f_s(i) t(i)

which for all spectra and all (template, redshift) columns at once are J batched matrix
products. Then M = A . (v v^T), b = C . v, a = M^-1 b, chi2 = sum w f^2 - a . b.
No Python loop over spectra, templates or redshifts.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lamostdb.match.linalg import solve_normal_equations


def gather_bins(
    x: npt.NDArray[np.float64], bin_index: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """(S, P) -> (J, S, B): pixels of each bin, zero-padded (index P means padding)."""
    padded = np.concatenate([x, np.zeros((x.shape[0], 1), dtype=x.dtype)], axis=1)
    return np.ascontiguousarray(padded[:, bin_index].transpose(1, 0, 2))


def _star_chi2(
    flux: npt.NDArray[np.float64],
    ivar: npt.NDArray[np.float64],
    tpl_bins: npt.NDArray[np.floating],
    tpl2_bins: npt.NDArray[np.floating],
    bin_index: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Chi-square and coefficients for all (spectrum, template column) pairs.

    Parameters
    ----------
    flux, ivar
        (S, P) spectra on the working grid; ivar 0 where masked.
    tpl_bins, tpl2_bins
        (J, B, T) template columns (and their squares) gathered per bin, zero-padded.
    bin_index
        (J, B) pixel index of each bin slot (P for padding).
    vectors
        (K, J) continuum vectors per bin.

    Returns
    -------
    chi2 : (S, T)
    coeffs : (S, T, K)
    """
    dtype = tpl_bins.dtype
    w = gather_bins(ivar, bin_index).astype(dtype, copy=False)
    wf = gather_bins(ivar * flux, bin_index).astype(dtype, copy=False)
    a_bins = np.matmul(w, tpl2_bins).astype(np.float64)  # (J, S, T)
    c_bins = np.matmul(wf, tpl_bins).astype(np.float64)  # (J, S, T)
    n_bins, n_spec, n_tpl = a_bins.shape
    k = vectors.shape[0]
    vv = np.einsum("kj,lj->jkl", vectors, vectors).reshape(n_bins, k * k)
    m = (a_bins.reshape(n_bins, -1).T @ vv).reshape(n_spec, n_tpl, k, k)
    b = (c_bins.reshape(n_bins, -1).T @ vectors.T).reshape(n_spec, n_tpl, k)
    coeffs = solve_normal_equations(m, b)
    wff = np.einsum("sp,sp->s", ivar * flux, flux)
    chi2 = wff[:, None] - np.einsum("stk,stk->st", coeffs, b)
    return chi2, coeffs
