"""Polars batches of the ``spectra`` table to the engine's (S, P) matrices, and back.

List columns become contiguous float matrices through their Arrow buffers (values and
offsets), with no Python loop over rows or pixels: a spectrum on a log grid with the working
step whose start is an integer number of pixels away (every LAMOST spectrum, SDSS/BOSS
spectra) is placed by index arithmetic. Rows on any other grid go through the
flux-conserving rebin of ``lamostdb.templates.grid``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from lamostdb.templates.grid import WORKING_GRID, LogGrid, to_working_grid

#: Columns the engine needs from ``spectra``.
ENGINE_COLUMNS = (
    "specid",
    "source_sha256",
    "obsid",
    "ra",
    "dec",
    "_healpix_29",
    "coeff0",
    "coeff1",
    "npix",
    "wavelength",
    "flux",
    "ivar",
    "andmask",
    "snrg",
    "fibertype",
)


def _list_buffers(series: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    arr = series.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    offsets = arr.offsets.to_numpy()
    values = arr.values.to_numpy(zero_copy_only=False)
    return values, offsets


def batch_to_matrices(
    df: pl.DataFrame, grid: LogGrid = WORKING_GRID
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(flux, ivar) matrices (S, grid.npix) for a batch of ``spectra`` rows.

    Pixels with andmask != 0, non-finite values or ivar <= 0 get ivar 0.
    """
    n = df.height
    flux = np.zeros((n, grid.npix))
    ivar = np.zeros((n, grid.npix))
    if n == 0:
        return flux, ivar
    fv, off = _list_buffers(df["flux"])
    # each column has its own offsets (a slice of a rechunked frame need not share flux's);
    # the rows are as long as flux's (``classify.partition.usable_rows`` checks it)
    iv, ioff = _list_buffers(df["ivar"])
    mv, moff = _list_buffers(df["andmask"])
    iv, mv = iv[ioff[0] : ioff[-1]], mv[moff[0] : moff[-1]]
    fv = fv[off[0] :]
    off = off - off[0]
    lengths = np.diff(off)
    c0 = df["coeff0"].fill_null(np.nan).to_numpy()
    c1 = df["coeff1"].fill_null(np.nan).to_numpy()
    shift_f = (c0 - grid.loglam0) / grid.dloglam
    shift = np.round(np.nan_to_num(shift_f)).astype(np.int64)
    aligned = (np.abs(c1 - grid.dloglam) < 1e-9) & (np.abs(shift_f - shift) < 1e-3)
    rows = np.repeat(np.arange(n), lengths)
    pos = np.arange(off[-1]) - np.repeat(off[:-1], lengths) + np.repeat(shift, lengths)
    keep = np.repeat(aligned, lengths) & (pos >= 0) & (pos < grid.npix)
    vals = fv[: off[-1]].astype(np.float64)
    ivals = iv.astype(np.float64)
    good = np.isfinite(vals) & np.isfinite(ivals) & (ivals > 0) & (mv == 0)
    flux[rows[keep], pos[keep]] = np.where(good[keep], vals[keep], 0.0)
    ivar[rows[keep], pos[keep]] = np.where(good[keep], ivals[keep], 0.0)
    for i in np.flatnonzero(~aligned):  # rare: spectra on other grids are rebinned
        a, b = off[i], off[i + 1]
        wave = df["wavelength"][int(i)]
        if wave is None:
            wave_arr = 10.0 ** (c0[i] + c1[i] * np.arange(b - a))
        else:
            wave_arr = np.asarray(wave.to_numpy(), dtype=np.float64)
        f32, i32 = to_working_grid(
            wave_arr,
            fv[off[i] : off[i + 1]],
            iv[off[i] : off[i + 1]],
            mv[off[i] : off[i + 1]],
            grid=grid,
        )
        flux[i], ivar[i] = f32, i32
    return flux, ivar
