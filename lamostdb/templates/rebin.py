"""Flux-conserving rebinning of binned spectra, with inverse-variance propagation.

A spectrum is a step function: pixel ``i`` holds the mean flux density ``f_i`` over
``[e_i, e_{i+1})``. An output pixel gets the overlap-weighted mean of the valid input pixels
it covers, ``F_j = sum_i o_ij f_i / sum_i o_ij`` (``o_ij`` = length of the overlap), so a
constant stays constant and ``F_j * width_j`` is the input integral over fully covered output
pixels. Its variance is ``sum_i o_ij**2 var_i / (sum_i o_ij)**2``.

Every sum is evaluated from cumulative sums at the source edges: the pixels fully inside an
output pixel are a difference of two prefix sums, and only the (at most two) partially
covered end pixels are added separately. That makes the quadratic variance sum as cheap as
the linear ones, with no loop over pixels.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def edges_from_centers_log(wave_angstrom: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Pixel boundaries of a grid given by its centres, midway in log10(wavelength).

    Exact for a log-linear grid (each pixel spans ``centre * 10**(+-step/2)``); the two
    outer edges extend the first and last pixel symmetrically in log space.

    Parameters
    ----------
    wave_angstrom : array_like, shape (n,)
        Strictly increasing pixel centres, n >= 2.

    Returns
    -------
    ndarray of float64, shape (n + 1,)

    Examples
    --------
    >>> edges_from_centers_log([100.0, 1000.0]).round(6).tolist()
    [31.622777, 316.227766, 3162.27766]
    """
    loglam = np.log10(np.asarray(wave_angstrom, dtype=np.float64))
    if loglam.ndim != 1 or loglam.size < 2:
        raise ValueError("edges_from_centers_log needs a 1-D array of at least 2 wavelengths")
    if not (np.all(np.isfinite(loglam)) and np.all(np.diff(loglam) > 0)):
        raise ValueError("wavelengths must be positive, finite and strictly increasing")
    mid = 0.5 * (loglam[1:] + loglam[:-1])
    first = loglam[0] - 0.5 * (loglam[1] - loglam[0])
    last = loglam[-1] + 0.5 * (loglam[-1] - loglam[-2])
    return 10.0 ** np.concatenate(([first], mid, [last]))


def _overlaps(
    src_edges: npt.NDArray[np.float64], dst_edges: npt.NDArray[np.float64]
) -> tuple[
    npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.float64]
]:
    """Where each output pixel starts and ends in the source grid.

    Returns ``(ka, kb, o_first, o_last)``: the output pixel covers the tail ``o_first`` of
    source pixel ``ka``, all of pixels ``ka+1 .. kb-1`` and the head ``o_last`` of pixel
    ``kb``; when it lies inside one source pixel, ``o_first`` is its whole overlap and
    ``o_last`` is 0.
    """
    n = src_edges.size - 1
    # Clipping to the source range turns uncovered stretches into zero-length overlaps.
    lo = np.clip(dst_edges[:-1], src_edges[0], src_edges[-1])
    hi = np.clip(dst_edges[1:], src_edges[0], src_edges[-1])
    ka = np.clip(np.searchsorted(src_edges, lo, side="right") - 1, 0, n - 1)
    kb = np.clip(np.searchsorted(src_edges, hi, side="left") - 1, 0, n - 1)
    inside_one = kb <= ka
    o_first = np.where(inside_one, hi - lo, src_edges[ka + 1] - lo)
    o_last = np.where(inside_one, 0.0, hi - src_edges[kb])
    # kb < ka happens only for zero-length pixels; kb = ka then leaves the inner sum empty.
    kb = np.maximum(kb, ka)
    return ka, kb, o_first, o_last


def _overlap_sum(
    values: npt.NDArray[np.float64],
    full: npt.NDArray[np.float64],
    ka: npt.NDArray[np.intp],
    kb: npt.NDArray[np.intp],
    w_first: npt.NDArray[np.float64],
    w_last: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """``sum_i w(o_ij) * values_i`` for every output pixel j, rows of ``values`` at once.

    ``full`` is ``w(width_i) * values_i`` (the contribution of a fully covered pixel).
    """
    prefix = np.zeros((full.shape[0], full.shape[1] + 1))
    np.cumsum(full, axis=1, out=prefix[:, 1:])
    inner = prefix[:, np.maximum(kb, ka + 1)] - prefix[:, ka + 1]
    return w_first * values[:, ka] + w_last * values[:, kb] + inner


def _rebin_kernel(
    src_edges: npt.NDArray[np.float64],
    flux: npt.NDArray[np.float64],
    ivar: npt.NDArray[np.float64],
    dst_edges: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Rebin rows of ``flux``/``ivar`` (S, n) onto ``dst_edges``; inputs already validated."""
    valid = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    weight = valid.astype(np.float64)
    fval = np.where(valid, flux, 0.0)
    var = np.where(valid, 1.0 / np.where(valid, ivar, 1.0), 0.0)
    width = np.diff(src_edges)
    ka, kb, o_first, o_last = _overlaps(src_edges, dst_edges)
    num = _overlap_sum(fval, fval * width, ka, kb, o_first, o_last)
    den = _overlap_sum(weight, weight * width, ka, kb, o_first, o_last)
    var_sum = _overlap_sum(var, var * width**2, ka, kb, o_first**2, o_last**2)
    # Prefix sums of zeros stay exactly zero, so den == 0 means no valid coverage at all.
    covered = (den > 0) & (var_sum > 0)
    safe_den = np.where(covered, den, 1.0)
    out_flux = np.where(covered, num / safe_den, 0.0)
    out_ivar = np.where(covered, den**2 / np.where(covered, var_sum, 1.0), 0.0)
    return out_flux, out_ivar


def _check_edges(edges: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(edges, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 edges")
    if not (np.all(np.isfinite(arr)) and np.all(np.diff(arr) > 0)):
        raise ValueError(f"{name} must be finite and strictly increasing")
    return arr


def rebin_flux_conserving_batch(
    src_edges: npt.ArrayLike, flux: npt.ArrayLike, ivar: npt.ArrayLike, dst_edges: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Rebin many spectra that share one source grid (see `rebin_flux_conserving`).

    Parameters
    ----------
    src_edges : array_like, shape (n + 1,)
    flux, ivar : ndarray, shape (S, n)
    dst_edges : array_like, shape (m + 1,)

    Returns
    -------
    flux, ivar : ndarray of float64, shape (S, m)
    """
    src = _check_edges(src_edges, "src_edges")
    dst = _check_edges(dst_edges, "dst_edges")
    # float64 throughout: 1/ivar of a float32 ivar can overflow float32, and the prefix sums
    # need the extra digits to keep a constant spectrum constant.
    flux_arr = np.asarray(flux, dtype=np.float64)
    ivar_arr = np.asarray(ivar, dtype=np.float64)
    if flux_arr.ndim != 2 or flux_arr.shape != ivar_arr.shape or flux_arr.shape[1] != src.size - 1:
        raise ValueError(
            f"flux and ivar must both have shape (S, {src.size - 1}), got "
            f"{flux_arr.shape} and {ivar_arr.shape}"
        )
    return _rebin_kernel(src, flux_arr, ivar_arr, dst)


def rebin_flux_conserving(
    src_edges: npt.ArrayLike, flux: npt.ArrayLike, ivar: npt.ArrayLike, dst_edges: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Rebin one spectrum onto new pixel boundaries, conserving the flux integral.

    Input pixels with ``ivar <= 0`` or non-finite flux/ivar carry no flux and no weight.
    An output pixel with no valid input coverage gets flux 0 and ivar 0; one covered in
    part gets the mean over its covered part.

    Parameters
    ----------
    src_edges : array_like, shape (n + 1,)
        Strictly increasing boundaries of the input pixels (Angstrom).
    flux, ivar : ndarray, shape (n,)
        Mean flux density and inverse variance of each input pixel.
    dst_edges : array_like, shape (m + 1,)
        Strictly increasing boundaries of the output pixels, same unit as ``src_edges``.

    Returns
    -------
    flux, ivar : ndarray of float64, shape (m,)

    Examples
    --------
    Two pixels of variance 1 merged into one: the mean, with half the variance.

    >>> f, iv = rebin_flux_conserving([0., 1., 2.], np.array([1., 3.]), np.array([1., 1.]),
    ...                               [0., 2.])
    >>> f.tolist(), iv.tolist()
    ([2.0], [2.0])
    """
    flux_arr, ivar_arr = np.asarray(flux), np.asarray(ivar)
    if flux_arr.ndim != 1:
        raise ValueError("rebin_flux_conserving takes one spectrum; use the _batch variant")
    out_flux, out_ivar = rebin_flux_conserving_batch(
        src_edges, flux_arr[None, :], ivar_arr[None, :], dst_edges
    )
    return out_flux[0], out_ivar[0]
