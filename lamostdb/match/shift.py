"""Templates shifted onto the working grid when both grids have the same log-lambda step.

``models.shift_many`` and the velocity step's spline evaluate a template at
``x_p = (obs_p - log10(1 + z) - loglam0) / dloglam`` for every pixel ``p``: a floor, a phase
``t`` and four gathers per pixel. When the template's step equals the grid's (every template
the engine ships: 1e-4 dex), ``x_p = p + c`` with one ``c`` per spectrum, so the interval is
``p + floor(c)`` and the phase ``c - floor(c)`` is the same at every pixel: each tap is a
contiguous slice of the template (one indexing of a sliding-window view) and the
interpolation weights are scalars per spectrum, 2.5-3x the speed of the per-pixel gathers.
The formulas are the same (Keys cubic convolution with the same clamped edge taps and zero
outside the template; the not-a-knot spline's Horner sums); the values differ from the
per-pixel ones by the rounding of ``x_p`` (~4e-12 pixel), ~1e-13 relative.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

F64 = npt.NDArray[np.float64]

#: relative tolerance on the two grids' steps for the shortcut
STEP_RTOL = 1e-12
_CACHE: dict[tuple[int, int, int], tuple[npt.NDArray[np.float64], F64, int]] = {}
_CACHE_SIZE = 16


def same_step(a: float, b: float) -> bool:
    """Whether two log-lambda steps are equal (to ``STEP_RTOL``)."""
    return abs(a - b) <= STEP_RTOL * abs(b)


def _windows(source: F64, npix: int, k: int | None = None) -> tuple[F64, int]:
    """Sliding windows of ``npix`` over each padded row, and the padded row length.

    The rows are ``source`` (R, n), or ``source[:, :, k]`` of a (R, n, 4) array.

    Each row ``v`` (length n) is laid out as ``npix + 2`` zeros, ``v[0]``, ``v``,
    ``v[n-1]`` twice, ``npix + 2`` zeros: original index ``i`` sits at ``i + npix + 3``,
    the taps that ``np.clip`` clamps to the ends read the end values, and any window
    start clamped into the row reads only pixels that lie outside the template.
    Cached per array (a template set or the spline coefficients live as long as the engine).
    """
    cache_key = (id(source), -1 if k is None else k, npix)
    hit = _CACHE.get(cache_key)
    if hit is not None and hit[0] is source:
        return hit[1], hit[2]
    rows = source if k is None else source[:, :, k]
    n_r, n = rows.shape
    pad = npix + 2
    length = pad + 1 + n + 2 + pad
    padded = np.zeros((n_r, length))
    padded[:, pad] = rows[:, 0]
    padded[:, pad + 1 : pad + 1 + n] = rows
    padded[:, pad + 1 + n : pad + 3 + n] = rows[:, -1:]
    flat = padded.ravel()
    win = as_strided(flat, shape=(flat.size - npix + 1, npix), strides=(8, 8), writeable=False)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    _CACHE[cache_key] = (source, win, length)
    return win, length


def _phase(
    obs_loglam0: float, loglam0: float, dloglam: float, z: F64
) -> tuple[npt.NDArray[np.int64], F64]:
    """Interval offset ``floor(c)`` and phase ``c - floor(c)`` of each spectrum."""
    c = (obs_loglam0 - np.log10(1.0 + np.asarray(z, dtype=np.float64)) - loglam0) / dloglam
    f = np.floor(c)
    return f.astype(np.int64), c - f


def _slices(
    win: F64, length: int, npix: int, rows: npt.NDArray[np.int64], start: npt.NDArray[np.int64]
) -> F64:
    """Row ``rows[...]`` from original index ``start[...]`` on, ``npix`` pixels: (..., P)."""
    pad = npix + 2
    at = np.clip(start + pad + 1, 0, length - npix)
    return win[rows * length + at]  # advanced indexing: copies only the chosen windows


def _inside(offset: npt.NDArray[np.int64], n: int, npix: int) -> npt.NDArray[np.bool_]:
    """(S, P): pixel ``p`` maps into intervals 0..n-1 (``p + offset`` in range)."""
    p = np.arange(npix)[None, :]
    return (p >= -offset[:, None]) & (p <= n - 1 - offset[:, None])


def shift_uniform(
    vectors: F64,
    loglam0: float,
    dloglam: float,
    rows: npt.NDArray[np.int64],
    obs_loglam0: float,
    npix: int,
    z: F64,
) -> F64:
    """``models.shift_many`` on the grid ``obs_loglam0 + dloglam * p``, p < npix: (J, S, P).

    ``vectors`` must have the grid's step ``dloglam``.

    >>> v = np.arange(10.0)[None, :] ** 2           # x**2 on pixels 0..9
    >>> out = shift_uniform(v, 0.0, 1.0, np.array([[0]]), 4.5, 3, np.array([0.0]))
    >>> np.round(out[0, 0], 6).tolist()             # pixels 4.5, 5.5, 6.5
    [20.25, 30.25, 42.25]
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float64)
    n = vectors.shape[1]
    offset, t = _phase(obs_loglam0, loglam0, dloglam, z)
    # Keys cubic-convolution weights for intervals i0-1, i0, i0+1, i0+2 (as shift_many)
    w = (
        ((-0.5 * t + 1.0) * t - 0.5) * t,
        (1.5 * t - 2.5) * t * t + 1.0,
        ((-1.5 * t + 2.0) * t + 0.5) * t,
        (0.5 * t - 0.5) * t * t,
    )
    win, length = _windows(vectors, npix)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((rows.shape[0], offset.size, npix))
    for k, wk in zip((-1, 0, 1, 2), w, strict=True):  # four taps: slices, not gathers
        out += wk[None, :, None] * _slices(win, length, npix, rows, offset[None, :] + k)
    return np.where(_inside(offset, n, npix)[None], out, 0.0)


def spline_uniform(
    coef: F64,
    loglam0: float,
    dloglam: float,
    rows: npt.NDArray[np.int64],
    obs_loglam0: float,
    npix: int,
    z: F64,
) -> F64:
    """Piecewise cubic ``coef`` (NT, n_int, 4; highest power first, in log-lambda units from
    each interval's start) of row ``rows[s]`` at redshift ``z[s]`` on the uniform grid: (S, P).

    Zero outside the intervals; the grid must have the template's step ``dloglam``.

    >>> coef = np.zeros((1, 5, 4)); coef[0, :, 3] = np.arange(5.0); coef[0, :, 2] = 1.0
    >>> np.round(spline_uniform(coef, 0.0, 1.0, np.array([0]), 1.25, 3, np.zeros(1)), 6)
    array([[1.25, 2.25, 3.25]])
    """
    n_int = coef.shape[1]
    offset, phase = _phase(obs_loglam0, loglam0, dloglam, z)
    t = (phase * dloglam)[:, None]
    rows = np.asarray(rows, dtype=np.int64)
    val = np.zeros(0)
    for k in range(4):  # Horner over the four polynomial coefficients
        win, length = _windows(coef, npix, k)
        c = _slices(win, length, npix, rows, offset)
        if k == 0:
            val = c
        else:
            val *= t
            val += c
    return np.where(_inside(offset, n_int, npix), val, 0.0)
