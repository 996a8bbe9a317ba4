"""Chi-square of spectra against an eigen-basis at every pixel lag, by FFT correlation.

Model at lag k (1+z = 10**(k*dloglam)): ``sum_j c_j e_j(i + m) + sum_p d_p P_p(x_i)`` where
``m = offset - k`` maps observed pixel i to rest pixel i + m, and P_p are Legendre polynomials
across the observed grid (the additive polynomial of the SDSS practice). Every sum over pixels
that the normal equations need is, as a function of m, a cross-correlation:

    sum_i w(i) e_j(i+m) e_j'(i+m) = (w * E_jj')(m)       sum_i w(i) P_p(i) e_j(i+m) = (wP_p * e_j)(m)
    sum_i w(i) f(i) e_j(i+m) = (wf * e_j)(m)

computed for all m at once with real FFTs of length >= the template length (no wrap-around
for 0 <= m <= R - P). The polynomial-only blocks do not depend on m.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from lamostdb.match.linalg import solve_normal_equations


def eigen_correlations(
    flux: npt.NDArray[np.float64],
    ivar: npt.NDArray[np.float64],
    poly: npt.NDArray[np.float64],
    fft_pairs: npt.NDArray[np.complex128],
    fft_single: npt.NDArray[np.complex128],
    nfft: int,
    m_range: tuple[int, int],
    *,
    workers: int = 1,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64],
           npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """All correlation sums for rest offsets m in ``[m_range[0], m_range[1]]``.

    Parameters
    ----------
    flux, ivar
        (S, P) spectra on the working grid.
    poly
        (Q, P) additive polynomial terms on the grid.
    fft_pairs
        (n_pairs, nfft//2+1) FFTs of e_j e_j' for j <= j' (upper triangle, row-major).
    fft_single
        (J, nfft//2+1) FFTs of e_j.

    Returns
    -------
    m_ee (S, L, n_pairs), m_ep (S, L, J, Q), b_e (S, L, J), m_pp (S, Q, Q), b_p (S, Q)
    """
    w = ivar
    wf = ivar * flux
    n_j = fft_single.shape[0]
    n_q = poly.shape[0]
    lo, hi = m_range
    fw = np.conj(sfft.rfft(w, nfft, axis=-1, workers=workers))  # (S, F)
    fwp = np.conj(sfft.rfft(w[:, None, :] * poly[None, :, :], nfft, axis=-1,
                            workers=workers))  # (S, Q, F)
    fwf = np.conj(sfft.rfft(wf, nfft, axis=-1, workers=workers))
    m_ee = sfft.irfft(fw[:, None, :] * fft_pairs[None], nfft, axis=-1,
                      workers=workers)[..., lo:hi + 1]
    m_ep = sfft.irfft(fwp[:, None, :, :] * fft_single[None, :, None, :], nfft, axis=-1,
                      workers=workers)[..., lo:hi + 1]
    b_e = sfft.irfft(fwf[:, None, :] * fft_single[None], nfft, axis=-1,
                     workers=workers)[..., lo:hi + 1]
    m_pp = np.einsum("sp,qp,rp->sqr", w, poly, poly)
    b_p = np.einsum("sp,qp->sq", wf, poly)
    return (m_ee.transpose(0, 2, 1), m_ep.transpose(0, 3, 1, 2), b_e.transpose(0, 2, 1),
            m_pp, b_p)


def _eigen_chi2_at(
    lags_idx: npt.NDArray[np.int64],
    m_ee: npt.NDArray[np.float64],
    m_ep: npt.NDArray[np.float64],
    b_e: npt.NDArray[np.float64],
    m_pp: npt.NDArray[np.float64],
    b_p: npt.NDArray[np.float64],
    wff: npt.NDArray[np.float64],
    n_j: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Chi-square and coefficients at chosen lag indices.

    ``lags_idx`` is (S, L') indices into the L axis of the correlation arrays (one row of
    lags per spectrum). Returns chi2 (S, L') and coefficients (S, L', J + Q).
    """
    s_idx = np.arange(m_ee.shape[0])[:, None]
    ee = m_ee[s_idx, lags_idx]  # (S, L', n_pairs)
    ep = m_ep[s_idx, lags_idx]  # (S, L', J, Q)
    be = b_e[s_idx, lags_idx]  # (S, L', J)
    n_q = m_pp.shape[-1]
    n = n_j + n_q
    n_s, n_l = lags_idx.shape
    m = np.empty((n_s, n_l, n, n))
    iu = np.triu_indices(n_j)
    m[:, :, iu[0], iu[1]] = ee
    m[:, :, iu[1], iu[0]] = ee
    m[:, :, :n_j, n_j:] = ep
    m[:, :, n_j:, :n_j] = ep.transpose(0, 1, 3, 2)
    m[:, :, n_j:, n_j:] = m_pp[:, None]
    b = np.concatenate([be, np.broadcast_to(b_p[:, None, :], (n_s, n_l, n_q))], axis=-1)
    coeffs = solve_normal_equations(m, b)
    chi2 = wff[:, None] - np.einsum("slk,slk->sl", coeffs, b)
    return chi2, coeffs
