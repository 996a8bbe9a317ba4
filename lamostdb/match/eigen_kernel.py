"""Chi-square of spectra against an eigen-basis at every pixel lag, by FFT correlation.

At rest offset m (observed pixel i sits on rest pixel i + m; 1+z = 10**(k*dloglam) with
k = offset - m) the model is a sum of basis functions of the form

    phi_a(i) = r_a(i + m) * o_a(i)

with r_a a rest-frame function and o_a an observed-frame one:

- eigenvectors: r = e_j, o = 1;
- additive polynomial (SDSS practice): r = 1, o = P_q (Legendre across the grid);
- multiplicative continuum of the mean spectrum: r = e_0, o = g_k (P1, P2 and the red-arm
  step), so that a flux-calibration tilt or an arm mismatch scales the galaxy or QSO
  spectrum itself instead of being left in the residuals.

Every normal-equation entry is, as a function of m, a cross-correlation

    M_ab(m) = sum_i [w o_a o_b](i) [r_a r_b](i + m)      b_a(m) = sum_i [w f o_a](i) r_a(i + m)

(constant when r_a r_b = 1), computed for all m at once with real FFTs of a length at
least the template's, so 0 <= m <= R - P never wraps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from lamostdb.match.linalg import solve_normal_equations


@dataclass(frozen=True)
class EigenDesign:
    """Which basis functions a class uses: (rest index, observed index) per function.

    Rest index j >= 0 is eigenvector j, -1 the constant 1. Observed index q >= 0 is row q
    of the observed-frame function table, -1 the constant 1.
    """

    rest: tuple[int, ...]
    obs: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.rest)

    def pairs(self) -> list[tuple[int, int]]:
        return [(a, b) for a in range(self.n) for b in range(a, self.n)]


def make_design(n_eigen: int, n_poly: int, mult_obs: tuple[int, ...]) -> EigenDesign:
    """Eigenvectors, then additive terms P_0..P_{n_poly-1}, then e_0 * g for each g."""
    rest = [*range(n_eigen), *([-1] * n_poly), *([0] * len(mult_obs))]
    obs = [*([-1] * n_eigen), *range(n_poly), *mult_obs]
    return EigenDesign(tuple(rest), tuple(obs))


def _rest_key(design: EigenDesign, a: int, b: int) -> tuple[int, int] | None:
    ra, rb = design.rest[a], design.rest[b]
    if ra < 0 and rb < 0:
        return None
    if ra < 0 or rb < 0:
        return (max(ra, rb), -1)
    return (min(ra, rb), max(ra, rb))


def _obs_key(oa: int, ob: int) -> tuple[int, int]:
    return (min(oa, ob), max(oa, ob))


def rest_products(
    vectors: npt.NDArray[np.float64], design: EigenDesign
) -> dict[tuple[int, int], npt.NDArray[np.float64]]:
    """The rest-frame products the design needs (keys as ``_rest_key``)."""
    out: dict[tuple[int, int], npt.NDArray[np.float64]] = {}
    for a, b in design.pairs():
        key = _rest_key(design, a, b)
        if key is not None and key not in out:
            j, k = key
            out[key] = vectors[j] if k < 0 else vectors[j] * vectors[k]
    for a in range(design.n):
        j = design.rest[a]
        if j >= 0 and (j, -1) not in out:
            out[(j, -1)] = vectors[j]
    return out


def eigen_chi2_all(
    flux: npt.NDArray[np.float64],
    ivar: npt.NDArray[np.float64],
    obs_funcs: npt.NDArray[np.float64],
    design: EigenDesign,
    rest_fft: dict[tuple[int, int], npt.NDArray[np.complex128]],
    nfft: int,
    m_range: tuple[int, int],
    *,
    workers: int = 1,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Normal matrices and right-hand sides at every offset in ``m_range`` (inclusive).

    Returns
    -------
    m : (S, L, n, n) and b : (S, L, n)
        Views of (n, n, S, L) and (n, S, L) arrays: each correlation is written as one
        contiguous block instead of a stride-n*n scatter (the callers gather the lags they
        need anyway).
    """
    lo, hi = m_range
    n_l = hi - lo + 1
    n_s = flux.shape[0]
    n = design.n
    ones = np.ones(flux.shape[1])

    def o(q: int) -> npt.NDArray[np.float64]:
        return ones if q < 0 else obs_funcs[q]

    fwd: dict[tuple[str, tuple[int, int]], npt.NDArray[np.complex128]] = {}
    const: dict[tuple[str, tuple[int, int]], npt.NDArray[np.float64]] = {}

    def weighted(kind: str, key: tuple[int, int]) -> npt.NDArray[np.float64]:
        base = ivar if kind == "w" else ivar * flux
        return base * o(key[0]) * o(key[1])

    mt = np.empty((n, n, n_s, n_l))
    bt = np.empty((n, n_s, n_l))
    for a, c in design.pairs():
        okey = _obs_key(design.obs[a], design.obs[c])
        rkey = _rest_key(design, a, c)
        if rkey is None:
            ck = ("w", okey)
            if ck not in const:
                const[ck] = weighted("w", okey).sum(axis=1)
            mt[a, c] = const[ck][:, None]
        else:
            fk = ("w", okey)
            if fk not in fwd:
                fwd[fk] = np.conj(sfft.rfft(weighted("w", okey), nfft, axis=-1, workers=workers))
            corr = sfft.irfft(fwd[fk] * rest_fft[rkey][None, :], nfft, axis=-1, workers=workers)[
                :, lo : hi + 1
            ]
            mt[a, c] = corr
        mt[c, a] = mt[a, c]
    for a in range(n):
        okey = (design.obs[a], -1) if design.obs[a] >= 0 else (-1, -1)
        okey = _obs_key(*okey)
        j = design.rest[a]
        if j < 0:
            bt[a] = weighted("f", okey).sum(axis=1)[:, None]
        else:
            fk = ("f", okey)
            if fk not in fwd:
                fwd[fk] = np.conj(sfft.rfft(weighted("f", okey), nfft, axis=-1, workers=workers))
            bt[a] = sfft.irfft(
                fwd[fk] * rest_fft[(j, -1)][None, :], nfft, axis=-1, workers=workers
            )[:, lo : hi + 1]
    return mt.transpose(2, 3, 0, 1), bt.transpose(1, 2, 0)


def _eigen_chi2_at(
    lags_idx: npt.NDArray[np.int64],
    m: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    wff: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Chi-square and coefficients at chosen offset indices (S, L') of the arrays."""
    s_idx = np.arange(m.shape[0])[:, None]
    mm = m[s_idx, lags_idx]
    bb = b[s_idx, lags_idx]
    coeffs = solve_normal_equations(mm, bb)
    chi2 = wff[:, None] - np.einsum("slk,slk->sl", coeffs, bb)
    return chi2, coeffs
