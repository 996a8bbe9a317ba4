"""The engine's working log-wavelength grid, and putting any spectrum on it.

Every spectrum the engine sees lives on ``log10(lambda / Angstrom) = 3.5682 + 1e-4 * i``,
i = 0 .. 3908 (LAMOST's own grid, vacuum). A spectrum already on a log grid with the same
step and a start an integer number of pixels away (every LAMOST file; SDSS/BOSS, k = -153
for loglam0 = 3.5529) is placed by slicing, without interpolation; anything else goes
through the flux-conserving rebin of `lamostdb.templates.rebin`.

When ``coeff0``/``coeff1`` are given they define the source grid (both for the slice and
for the rebin); the wavelength array is only read for spectra without them. That keeps the
single-spectrum and batch paths bit-identical.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from lamostdb.templates.rebin import edges_from_centers_log, rebin_flux_conserving_batch

if TYPE_CHECKING:
    from lamostdb.io import SpectrumRecord

#: coeff1 must equal the grid step to this (absolute, dex).
STEP_TOL = 1e-9
#: (coeff0 - loglam0) / dloglam must be this close to an integer (pixels).
OFFSET_TOL_PIXEL = 1e-6

# Farther than this the spectrum cannot overlap any grid worth having.
_MAX_SHIFT = 1e9

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class LogGrid:
    """A log-linear wavelength grid ``10**(loglam0 + dloglam * i)`` Angstrom, i < npix.

    Examples
    --------
    >>> g = LogGrid(3.5682, 1e-4, 3909)
    >>> round(float(g.wave_angstrom[0]), 3), round(float(g.wave_angstrom[-1]), 1)
    (3699.985, 9099.1)
    >>> g.pixel_offset(3.5529, 1e-4)
    -153
    """

    loglam0: float
    dloglam: float
    npix: int

    def __post_init__(self) -> None:
        if not (self.dloglam > 0 and self.npix > 0 and math.isfinite(self.loglam0)):
            raise ValueError(f"invalid grid {self!r}: need dloglam > 0 and npix > 0")

    @cached_property
    def wave_angstrom(self) -> npt.NDArray[np.float64]:
        """Pixel centres (Angstrom), read-only."""
        wave = 10.0 ** (self.loglam0 + self.dloglam * np.arange(self.npix, dtype=np.float64))
        wave.flags.writeable = False  # cached and shared: a caller must not edit it
        return wave

    @cached_property
    def edges_angstrom(self) -> npt.NDArray[np.float64]:
        """Pixel boundaries (Angstrom), midway in log between centres, read-only."""
        i = np.arange(self.npix + 1, dtype=np.float64) - 0.5
        edges = 10.0 ** (self.loglam0 + self.dloglam * i)
        edges.flags.writeable = False
        return edges

    def pixel_offset(self, coeff0: float | None, coeff1: float | None) -> int | None:
        """Integer k with ``coeff0 = loglam0 + k * dloglam``, or None if not aligned.

        Besides the 1e-6 pixel tolerance, a ``coeff0`` equal to the float32 rounding of an
        aligned start counts as aligned: SDSS files store loglam as float32 (3.5529 reads
        back as 3.55290008, 7.6e-4 pixel off), and that is the file's precision, not a shift.
        """
        if (
            coeff0 is None
            or coeff1 is None
            or not math.isfinite(coeff0)
            or abs(coeff1 - self.dloglam) > STEP_TOL
        ):
            return None
        shift = (coeff0 - self.loglam0) / self.dloglam
        if abs(shift) > _MAX_SHIFT:
            return None
        k = round(shift)
        if abs(shift - k) <= OFFSET_TOL_PIXEL or np.float32(coeff0) == np.float32(
            self.loglam0 + k * self.dloglam
        ):
            return k
        return None

    def pixel_offsets(
        self,
        coeff0: Sequence[float | None] | npt.NDArray[np.float64],
        coeff1: Sequence[float | None] | npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Vectorised `pixel_offset`: ``(k, aligned)``; k is 0 where not aligned."""
        c0 = np.asarray(coeff0, dtype=np.float64)  # None becomes NaN here
        c1 = np.asarray(coeff1, dtype=np.float64)
        shift = (c0 - self.loglam0) / self.dloglam
        # Guarding the casts below: NaN or huge shifts would warn (and warnings are errors).
        finite = np.isfinite(shift) & (np.abs(np.nan_to_num(shift)) <= _MAX_SHIFT)
        k = np.rint(np.where(finite, shift, 0.0)).astype(np.int64)
        aligned_start = (np.abs(shift - k) <= OFFSET_TOL_PIXEL) | (
            np.where(finite, c0, 0.0).astype(np.float32)
            == (self.loglam0 + k * self.dloglam).astype(np.float32)
        )
        aligned = finite & (np.abs(c1 - self.dloglam) <= STEP_TOL) & aligned_start
        return np.where(aligned, k, 0), aligned


WORKING_GRID = LogGrid(3.5682, 1e-4, 3909)


def _log_edges(coeff0: float, coeff1: float, npix: int) -> npt.NDArray[np.float64]:
    return 10.0 ** (coeff0 + coeff1 * (np.arange(npix + 1, dtype=np.float64) - 0.5))


def _place_shifted(
    flux: npt.NDArray[np.floating],
    ivar: npt.NDArray[np.floating],
    andmask: npt.NDArray[np.integer] | None,
    k: int,
    out_flux: Float32Array,
    out_ivar: Float32Array,
) -> None:
    """Write a spectrum whose pixel i is working pixel i + k into zeroed output rows."""
    i0, i1 = max(0, -k), min(flux.shape[0], out_flux.shape[0] - k)
    if i1 <= i0:
        return
    f, iv = flux[i0:i1], ivar[i0:i1]
    good = np.isfinite(iv)
    good &= iv > 0
    good &= np.isfinite(f)
    if andmask is not None:
        good &= andmask[i0:i1] == 0
    # copyto with where= writes only the good pixels: the zeroed rows already hold the
    # weight-0 value, so no temporary of the whole spectrum is made.
    np.copyto(out_flux[i0 + k : i1 + k], f, where=good)
    np.copyto(out_ivar[i0 + k : i1 + k], iv, where=good)


def _masked_ivar(
    ivar: npt.NDArray[np.floating], andmask: npt.NDArray[np.integer] | None
) -> npt.NDArray[np.floating]:
    if andmask is None:
        return ivar
    return np.where(andmask == 0, ivar, 0)


def _check_lengths(flux: np.ndarray, ivar: np.ndarray, andmask: np.ndarray | None) -> None:
    if (
        flux.ndim != 1
        or ivar.shape != flux.shape
        or (andmask is not None and andmask.shape != flux.shape)
    ):
        raise ValueError(
            "flux, ivar and andmask must be 1-D arrays of one length, got "
            f"{flux.shape}, {ivar.shape}, "
            f"{None if andmask is None else andmask.shape}"
        )


def to_working_grid(
    wave_angstrom: npt.ArrayLike | None,
    flux: npt.ArrayLike,
    ivar: npt.ArrayLike,
    andmask: npt.ArrayLike | None,
    *,
    coeff0: float | None = None,
    coeff1: float | None = None,
    grid: LogGrid = WORKING_GRID,
) -> tuple[Float32Array, Float32Array]:
    """One spectrum on ``grid``: ``(flux, ivar)`` as float32 arrays of length ``grid.npix``.

    Pixels with non-finite flux or ivar, ivar <= 0 or andmask != 0 get flux 0 and ivar 0,
    as do working pixels the spectrum does not cover.

    Parameters
    ----------
    wave_angstrom : array_like or None
        Pixel centres (vacuum Angstrom); only read when coeff0/coeff1 are not given.
    flux, ivar, andmask : array_like, shape (n,)
        andmask may be None (no mask).
    coeff0, coeff1 : float, optional
        The source log grid ``log10(lambda) = coeff0 + coeff1 * i``. If its step is the
        grid's and its start is k whole pixels away, the spectrum is sliced into place.
    grid : LogGrid

    Examples
    --------
    >>> f, iv = to_working_grid(None, np.ones(3, np.float32), np.ones(3, np.float32), None,
    ...                         coeff0=3.5683, coeff1=1e-4)
    >>> f[:5].tolist(), iv[:5].tolist()
    ([0.0, 1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0, 0.0])
    """
    flux_arr, ivar_arr = np.asarray(flux), np.asarray(ivar)
    mask_arr = None if andmask is None else np.asarray(andmask)
    _check_lengths(flux_arr, ivar_arr, mask_arr)
    out_flux = np.zeros(grid.npix, dtype=np.float32)
    out_ivar = np.zeros(grid.npix, dtype=np.float32)
    k = grid.pixel_offset(coeff0, coeff1)
    if k is not None:
        _place_shifted(flux_arr, ivar_arr, mask_arr, k, out_flux, out_ivar)
        return out_flux, out_ivar
    if coeff0 is not None and coeff1 is not None:
        src_edges = _log_edges(coeff0, coeff1, flux_arr.shape[0])
    elif wave_angstrom is not None:
        src_edges = edges_from_centers_log(wave_angstrom)
    else:
        raise ValueError("to_working_grid needs wave_angstrom or coeff0 and coeff1")
    if src_edges.shape[0] != flux_arr.shape[0] + 1:
        raise ValueError(f"{src_edges.shape[0] - 1} wavelengths for {flux_arr.shape[0]} pixels")
    rf, ri = rebin_flux_conserving_batch(
        src_edges, flux_arr[None, :], _masked_ivar(ivar_arr, mask_arr)[None, :], grid.edges_angstrom
    )
    out_flux[:] = rf[0]
    out_ivar[:] = ri[0]
    return out_flux, out_ivar


def arrays_to_working_grid(
    flux_list: Sequence[npt.NDArray[np.floating]],
    ivar_list: Sequence[npt.NDArray[np.floating]],
    andmask_list: Sequence[npt.NDArray[np.integer] | None],
    coeff0: Sequence[float | None] | npt.NDArray[np.float64],
    coeff1: Sequence[float | None] | npt.NDArray[np.float64],
    *,
    wave_list: Sequence[npt.ArrayLike | None] | None = None,
    grid: LogGrid = WORKING_GRID,
) -> tuple[Float32Array, Float32Array]:
    """Many spectra on ``grid``: C-contiguous float32 ``(flux, ivar)`` of shape (S, npix).

    Same rules and same values as `to_working_grid`, row by row. Aligned rows are sliced
    straight into the output; the others are grouped by source grid (coeff0, coeff1, n)
    and rebinned together. ``coeff0``/``coeff1`` entries may be None/NaN, in which case
    ``wave_list[i]`` gives the pixel centres.
    """
    n_spec = len(flux_list)
    if not (len(ivar_list) == len(andmask_list) == n_spec):
        raise ValueError("flux_list, ivar_list and andmask_list must have one entry per spectrum")
    c0 = np.asarray(coeff0, dtype=np.float64).reshape(-1)
    c1 = np.asarray(coeff1, dtype=np.float64).reshape(-1)
    if c0.shape[0] != n_spec or c1.shape[0] != n_spec:
        raise ValueError("coeff0 and coeff1 must have one entry per spectrum")
    out_flux = np.zeros((n_spec, grid.npix), dtype=np.float32)
    out_ivar = np.zeros((n_spec, grid.npix), dtype=np.float32)
    shifts, aligned = grid.pixel_offsets(c0, c1)
    groups: dict[tuple[float, float, int], list[int]] = {}
    for i in range(n_spec):  # one step per spectrum, never per pixel
        flux_i, ivar_i = np.asarray(flux_list[i]), np.asarray(ivar_list[i])
        mask_i = None if andmask_list[i] is None else np.asarray(andmask_list[i])
        _check_lengths(flux_i, ivar_i, mask_i)
        if aligned[i]:
            _place_shifted(flux_i, ivar_i, mask_i, int(shifts[i]), out_flux[i], out_ivar[i])
        elif np.isfinite(c0[i]) and np.isfinite(c1[i]):
            groups.setdefault((float(c0[i]), float(c1[i]), flux_i.shape[0]), []).append(i)
        else:
            wave_i = None if wave_list is None else wave_list[i]
            out_flux[i], out_ivar[i] = to_working_grid(wave_i, flux_i, ivar_i, mask_i, grid=grid)
    for (g0, g1, npix), rows in groups.items():
        stacked_ivar = np.stack(
            [
                _masked_ivar(
                    np.asarray(ivar_list[i]),
                    None if andmask_list[i] is None else np.asarray(andmask_list[i]),
                )
                for i in rows
            ]
        )
        rf, ri = rebin_flux_conserving_batch(
            _log_edges(g0, g1, npix),
            np.stack([np.asarray(flux_list[i]) for i in rows]),
            stacked_ivar,
            grid.edges_angstrom,
        )
        out_flux[rows] = rf
        out_ivar[rows] = ri
    return out_flux, out_ivar


def batch_to_working_grid(
    records: Sequence[SpectrumRecord], *, grid: LogGrid = WORKING_GRID
) -> tuple[Float32Array, Float32Array]:
    """Records on ``grid``: C-contiguous float32 ``(flux, ivar)`` of shape (S, npix).

    Same values as `to_working_grid` on each record (see `arrays_to_working_grid`).
    """
    has_coeffs = [r.coeff0 is not None and r.coeff1 is not None for r in records]
    return arrays_to_working_grid(
        [r.flux for r in records],
        [r.ivar for r in records],
        [r.andmask for r in records],
        [r.coeff0 for r in records],
        [r.coeff1 for r in records],
        wave_list=[
            None if ok else r.wave_angstrom() for r, ok in zip(records, has_coeffs, strict=True)
        ],
        grid=grid,
    )
