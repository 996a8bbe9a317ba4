"""Chi-square of every spectrum against every shifted single template, by matrix products.

Model of spectrum s under shifted template t: ``t(i) * sum_k a_k v_k(bin(i))``. For fixed t
the chi-square minimised over ``a`` needs

    M_kl = sum_i w(i) t(i)^2 v_k v_l      b_k = sum_i w(i) f(i) t(i) v_k

and because the vectors are constant within a bin j, both factor into per-bin sums

    A_j(s, t) = sum_{i in j} w_s(i) t(i)^2      C_j(s, t) = sum_{i in j} w_s(i) f_s(i) t(i)

which for all spectra and all (template, redshift) columns at once are J batched matrix
products. Then M = A . (v v^T), b = C . v, a = M^-1 b, chi2 = sum w f^2 - a . b.
No Python loop over spectra, templates or redshifts.

The pruned search's two passes (``star_chi2_coarse``, ``star_chi2_at``) are at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from lamostdb.match.linalg import solve_normal_equations_t


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
    return _solve_bins(a_bins, c_bins, vectors, np.einsum("sp,sp->s", ivar * flux, flux))


def _solve_bins(
    a_bins: npt.NDArray[np.float64],
    c_bins: npt.NDArray[np.float64],
    vectors: npt.NDArray[np.float64],
    wff: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Chi-square and coefficients from the per-bin sums A_j, C_j (J, S, T) of each column:
    M = A . (v v^T), b = C . v, a = M^-1 b, chi2 = sum w f^2 - a . b."""
    n_bins, n_spec, n_col = a_bins.shape
    k = vectors.shape[0]
    vv = np.einsum("kj,lj->jkl", vectors, vectors).reshape(n_bins, k * k)
    # batch-last (K, K, S * T) systems, one vectorised Cholesky (linalg.solve_normal_equations_t)
    m = (vv.T @ a_bins.reshape(n_bins, -1)).reshape(k, k, n_spec * n_col)
    b = vectors @ c_bins.reshape(n_bins, -1)  # (K, S * T)
    coeffs = solve_normal_equations_t(m, b)
    chi2 = wff[:, None] - np.einsum("kn,kn->n", coeffs, b).reshape(n_spec, n_col)
    return chi2, coeffs.T.reshape(n_spec, n_col, k)


# ------------------------------------------------------------------------- pruned search
#
# The pruned search (``SearchConfig.exhaustive`` False) needs the exact chi-square above only
# for a few (template, redshift) columns per spectrum. A first pass ranks the templates on a
# coarse redshift step with a cheap upper bound of the chi-square: the continuum
# coefficients are solved exactly at a few anchor redshifts per (spectrum, template) and
# reused at the template's other redshifts, so each column costs sums instead of a 7x7
# solve. ``chi2(a) = wff - 2 a.b + a^T M a`` is the chi-square of those coefficients (not
# minimised over them), which is at least the exact one and differs from it only to second
# order in the coefficients' change with redshift (the continuum hardly changes over the
# +-1200 km/s of the star grid); the quadratic term is ``sum_j A_j cont_j^2`` with
# ``cont = a . v`` the continuum of each bin. (Reusing the anchor's normal matrix instead,
# ``wff - b^T M0^-1 b``, is no bound and was useless for ranking: the two terms nearly
# cancel at high S/N, so a small error in M moves chi2 by a lot.)


def star_chi2_coarse(
    flux: npt.NDArray[np.float64],
    ivar: npt.NDArray[np.float64],
    runs: Sequence[tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], int]],
    bin_index: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float64],
    n_tpl: int,
) -> npt.NDArray[np.float64]:
    """Upper bound of the chi-square of every template at the coarse redshifts.

    Parameters
    ----------
    flux, ivar
        (S, P) spectra on the working grid; ivar 0 where masked.
    runs
        Per run of consecutive coarse redshifts: the templates at them, (J, B, NT * NZg)
        template-major per bin, their squares, and the position in the run (the anchor)
        where the continuum coefficients are solved; the run's other redshifts reuse them.
    bin_index
        (J, B) pixel index of each bin slot (P for padding).
    vectors
        (K, J) continuum vectors per bin.
    n_tpl
        NT, the number of templates.

    Returns
    -------
    (S, NT, NZc) chi-square of each column with its template's anchor coefficients, the
    runs one after the other.
    """
    dtype = runs[0][0].dtype
    w = gather_bins(ivar, bin_index).astype(dtype, copy=False)
    wf = gather_bins(ivar * flux, bin_index).astype(dtype, copy=False)
    return (
        np.concatenate([_coarse_run(w, wf, t, t2, vectors, n_tpl, a) for t, t2, a in runs], axis=2)
        + np.einsum("sp,sp->s", ivar * flux, flux)[:, None, None]
    )


def _coarse_run(
    w: npt.NDArray[np.floating],
    wf: npt.NDArray[np.floating],
    tpl_bins: npt.NDArray[np.floating],
    tpl2_bins: npt.NDArray[np.floating],
    vectors: npt.NDArray[np.float64],
    n_tpl: int,
    anchor: int,
) -> npt.NDArray[np.float64]:
    """``-(2 a.b - a^T M a)`` of one run (the chi-square less ``sum w f^2``), (S, NT, NZg)."""
    dtype = tpl_bins.dtype
    a_bins = np.matmul(w, tpl2_bins)  # (J, S, NT*NZg) float32
    c_bins = np.matmul(wf, tpl_bins)
    n_bins, n_spec, n_col = a_bins.shape
    a4 = a_bins.reshape(n_bins, n_spec, n_tpl, n_col // n_tpl)
    c4 = c_bins.reshape(a4.shape)
    k = vectors.shape[0]
    aa = a4[:, :, :, anchor].astype(np.float64).reshape(n_bins, -1)
    ca = c4[:, :, :, anchor].astype(np.float64).reshape(n_bins, -1)
    vv = np.einsum("kj,lj->jkl", vectors, vectors).reshape(n_bins, k * k)
    # batch-last (K, K, S * NT) systems: one vectorised Cholesky over all of them
    m = (vv.T @ aa).reshape(k, k, n_spec * n_tpl)
    b = vectors @ ca  # (K, S * NT)
    coef = solve_normal_equations_t(m, b)
    cont = (vectors.T @ coef).reshape(n_bins, n_spec, n_tpl)  # continuum per bin
    # 2 a.b - a^T M a = sum_j (2 C_j - A_j cont_j) cont_j: two contractions over the bins
    # of the float32 sums (the bins' axis leads, so no large array is copied)
    q = np.einsum("jstz,jst->stz", c4, (2 * cont).astype(dtype))
    q -= np.einsum("jstz,jst->stz", a4, (cont * cont).astype(dtype))
    return -q.astype(np.float64)


def star_chi2_at(
    flux: npt.NDArray[np.float64],
    ivar: npt.NDArray[np.float64],
    tpl_jtb: npt.NDArray[np.floating],
    bin_index: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float64],
    cols: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Exact chi-square and coefficients of each spectrum at its own template columns.

    The same model and normal equations as :func:`_star_chi2`, with the per-bin sums as
    batched matrix-vector products over the gathered columns of each spectrum.

    Parameters
    ----------
    flux, ivar
        (S, P) spectra on the working grid; ivar 0 where masked.
    tpl_jtb
        (J, T, B) template columns per bin (``StarBlock.tpl_jtb``).
    bin_index
        (J, B) pixel index of each bin slot (P for padding).
    vectors
        (K, J) continuum vectors per bin.
    cols
        (S, C) column indices (template * NZ + redshift index) of each spectrum.

    Returns
    -------
    chi2 : (S, C)
    coeffs : (S, C, K)
    """
    dtype = tpl_jtb.dtype
    w = gather_bins(ivar, bin_index).astype(dtype, copy=False)[..., None]  # (J, S, B, 1)
    wf = gather_bins(ivar * flux, bin_index).astype(dtype, copy=False)[..., None]
    g = tpl_jtb[:, cols]  # (J, S, C, B)
    c_bins = np.matmul(g, wf)[..., 0].astype(np.float64)  # (J, S, C)
    np.multiply(g, g, out=g)
    a_bins = np.matmul(g, w)[..., 0].astype(np.float64)
    return _solve_bins(a_bins, c_bins, vectors, np.einsum("sp,sp->s", ivar * flux, flux))
