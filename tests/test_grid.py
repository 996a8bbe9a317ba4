"""The working grid and the flux-conserving rebin: invariants, an oracle, real files.

Values checked: a constant spectrum stays constant; the flux integral over full output
pixels equals the input integral; merging two pixels of variance s2 gives s2/2; the kernel
equals a dense overlap-matrix oracle; real LAMOST (and, when present, SDSS) files land on the
working grid as an exact copy of their unmasked pixels; the batch paths equal the
single-spectrum path bit for bit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pytest
from conftest import NOT_LAMOST, REAL_FILES, SHIPPED_SPECTRA
from hypothesis import given, settings
from hypothesis import strategies as st

from lamostdb.io import SpectrumRecord, read_spectrum
from lamostdb.templates.grid import (
    WORKING_GRID,
    LogGrid,
    arrays_to_working_grid,
    batch_to_working_grid,
    to_working_grid,
)
from lamostdb.templates.rebin import (
    edges_from_centers_log,
    rebin_flux_conserving,
    rebin_flux_conserving_batch,
)

LAMOST_DR9 = SHIPPED_SPECTRA / "cmost" / "spec-55859-F5902_sp01-001__blobaec1394.fits.gz"
LAMOST_DR1 = SHIPPED_SPECTRA / "learninglamost" / "spec-55862-B6212_sp06-003.fits"
ALIGNED_FILES = [p for p in REAL_FILES if p.name not in NOT_LAMOST]


def _oracle(
    src: np.ndarray, flux: np.ndarray, ivar: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The rebin written out as a dense (m, n) overlap matrix: slow, obvious."""
    overlap = np.clip(
        np.minimum(dst[1:, None], src[None, 1:]) - np.maximum(dst[:-1, None], src[None, :-1]),
        0.0,
        None,
    )
    valid = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    w = overlap * valid
    den = w.sum(axis=1)
    var = np.where(valid, 1.0 / np.where(valid, ivar, 1.0), 0.0)
    num = w @ np.where(valid, flux, 0.0)
    var_sum = (w**2) @ var
    ok = den > 0
    out_f = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
    out_iv = np.where(ok, den**2 / np.where(ok, var_sum, 1.0), 0.0)
    return out_f, out_iv


def _input_integral(src: np.ndarray, flux: np.ndarray, lo: float, hi: float) -> float:
    """Integral of the step function over [lo, hi]."""
    overlap = np.clip(np.minimum(hi, src[1:]) - np.maximum(lo, src[:-1]), 0.0, None)
    return float(np.sum(overlap * flux))


def _random_edges(rng: np.random.Generator, n: int, start: float = 4000.0) -> np.ndarray:
    return start + np.concatenate(([0.0], np.cumsum(rng.uniform(0.05, 3.0, n))))


def _full_pixels(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    return (dst[:-1] >= src[0]) & (dst[1:] <= src[-1])


# --- the kernel ------------------------------------------------------------------------------


def test_constant_stays_constant_on_random_edges() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        src = _random_edges(rng, 300)
        dst = np.sort(rng.uniform(src[0] - 50, src[-1] + 50, 120))
        ivar = rng.uniform(0.1, 10.0, 300)
        ivar[rng.random(300) < 0.2] = 0.0  # masked pixels must not break the constant
        flux, out_ivar = rebin_flux_conserving(src, np.full(300, 2.5), ivar, dst)
        covered = out_ivar > 0
        assert covered.sum() > 50
        np.testing.assert_allclose(flux[covered], 2.5, rtol=1e-12)
        assert np.all(flux[~covered] == 0.0)


def test_kernel_equals_dense_overlap_oracle() -> None:
    rng = np.random.default_rng(12)
    for _ in range(20):
        src = _random_edges(rng, 200)
        dst = np.sort(rng.uniform(src[0] - 20, src[-1] + 20, rng.integers(2, 400)))
        flux = rng.normal(size=200)
        ivar = rng.uniform(0.1, 5.0, 200)
        ivar[rng.random(200) < 0.15] = 0.0
        got_f, got_iv = rebin_flux_conserving(src, flux, ivar, dst)
        want_f, want_iv = _oracle(src, flux, ivar, dst)
        np.testing.assert_allclose(got_f, want_f, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got_iv, want_iv, rtol=1e-9)


def test_integral_conserved_over_full_output_pixels() -> None:
    rng = np.random.default_rng(13)
    src = _random_edges(rng, 500)
    flux = rng.normal(5.0, 2.0, 500)
    dst = np.sort(rng.uniform(src[0] - 30, src[-1] + 30, 301))
    out, _ = rebin_flux_conserving(src, flux, np.ones(500), dst)
    full = _full_pixels(src, dst)
    lo, hi = dst[:-1][full][0], dst[1:][full][-1]
    got = float(np.sum(out[full] * np.diff(dst)[full]))
    assert got == pytest.approx(_input_integral(src, flux, lo, hi), rel=1e-12)


def test_merging_two_equal_pixels_halves_the_variance() -> None:
    sigma2 = 0.36
    flux, ivar = rebin_flux_conserving(
        [10.0, 11.0, 12.0], np.array([4.0, 6.0]), np.full(2, 1 / sigma2), [10.0, 12.0]
    )
    assert flux[0] == pytest.approx(5.0, rel=1e-15)
    assert 1.0 / ivar[0] == pytest.approx(sigma2 / 2, rel=1e-12)


def test_splitting_a_pixel_keeps_its_value_and_variance() -> None:
    flux, ivar = rebin_flux_conserving(
        [0.0, 4.0], np.array([3.0]), np.array([2.0]), [0.0, 1.0, 2.5, 4.0]
    )
    assert flux.tolist() == [3.0, 3.0, 3.0]
    np.testing.assert_allclose(ivar, 2.0, rtol=1e-15)


def test_masked_and_bad_pixels_carry_no_flux_and_no_weight() -> None:
    src = np.arange(7.0)
    flux = np.array([1.0, 1e30, np.nan, 1.0, 7.0, 1.0])
    ivar = np.array([1.0, 0.0, 1.0, -1.0, np.inf, 1.0])
    out_f, out_iv = rebin_flux_conserving(src, flux, ivar, [0.0, 2.0, 5.0, 6.0])
    # [0, 2): only pixel 0 is valid; [2, 5): nothing valid; [5, 6): pixel 5.
    assert out_f.tolist() == [1.0, 0.0, 1.0]
    assert out_iv.tolist() == [1.0, 0.0, 1.0]


def test_output_pixels_outside_the_source_get_zero() -> None:
    out_f, out_iv = rebin_flux_conserving(
        [10.0, 11.0], np.array([2.0]), np.array([1.0]), [0.0, 5.0, 9.5, 10.5, 20.0, 30.0]
    )
    assert out_f.tolist() == [0.0, 0.0, 2.0, 2.0, 0.0]
    assert out_iv.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]


def test_batch_kernel_rows_equal_single_calls() -> None:
    rng = np.random.default_rng(14)
    src = _random_edges(rng, 100)
    dst = np.sort(rng.uniform(src[0], src[-1], 60))
    flux = rng.normal(size=(5, 100)).astype(np.float32)
    ivar = rng.uniform(0.0, 2.0, (5, 100)).astype(np.float32)
    bf, bi = rebin_flux_conserving_batch(src, flux, ivar, dst)
    for row in range(5):
        f, i = rebin_flux_conserving(src, flux[row], ivar[row], dst)
        assert np.array_equal(bf[row], f) and np.array_equal(bi[row], i)


def test_rebin_rejects_unsorted_edges_and_wrong_lengths() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        rebin_flux_conserving([0.0, 2.0, 1.0], np.ones(2), np.ones(2), [0.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        rebin_flux_conserving([0.0, 1.0, 2.0], np.ones(3), np.ones(3), [0.0, 1.0])


widths = st.lists(st.floats(0.01, 5.0), min_size=1, max_size=60)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    src_w=widths,
    dst_w=widths,
    offset=st.floats(-20.0, 20.0),
    value=st.floats(-1e3, 1e3),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_constant_and_integral_on_random_grids(
    src_w: list[float], dst_w: list[float], offset: float, value: float, seed: int
) -> None:
    src = 100.0 + np.concatenate(([0.0], np.cumsum(src_w)))
    dst = 100.0 + offset + np.concatenate(([0.0], np.cumsum(dst_w)))
    n = src.size - 1
    const_f, const_iv = rebin_flux_conserving(src, np.full(n, value), np.ones(n), dst)
    covered = const_iv > 0
    np.testing.assert_allclose(const_f[covered], value, rtol=1e-9, atol=1e-9)
    flux = np.random.default_rng(seed).normal(0.0, 10.0, n)
    out, _ = rebin_flux_conserving(src, flux, np.ones(n), dst)
    full = _full_pixels(src, dst)
    if full.any():
        got = float(np.sum(out[full] * np.diff(dst)[full]))
        lo, hi = dst[:-1][full][0], dst[1:][full][-1]
        assert got == pytest.approx(_input_integral(src, flux, lo, hi), rel=1e-9, abs=1e-9)


def test_edges_from_centers_log_are_exact_on_a_log_grid() -> None:
    np.testing.assert_allclose(
        edges_from_centers_log(WORKING_GRID.wave_angstrom), WORKING_GRID.edges_angstrom, rtol=1e-13
    )


# --- the working grid ------------------------------------------------------------------------


def test_working_grid_is_lamost_grid() -> None:
    g = WORKING_GRID
    assert (g.loglam0, g.dloglam, g.npix) == (3.5682, 1e-4, 3909)
    np.testing.assert_allclose(
        np.log10(g.wave_angstrom), 3.5682 + 1e-4 * np.arange(3909), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        g.wave_angstrom, np.sqrt(g.edges_angstrom[:-1] * g.edges_angstrom[1:]), rtol=1e-13
    )
    assert 3699 < g.wave_angstrom[0] < 3700 and 9099 < g.wave_angstrom[-1] < 9100
    with pytest.raises(ValueError):
        g.wave_angstrom[0] = 1.0  # the cached array is shared, so it is read-only


def test_pixel_offset_accepts_float32_rendering_of_an_aligned_start() -> None:
    g = WORKING_GRID
    assert g.pixel_offset(3.5529, 1e-4) == -153
    # SDSS stores loglam as float32: 3.5529 reads back 7.6e-4 pixel off, still aligned.
    assert g.pixel_offset(float(np.float32(3.5529)), 1e-4) == -153
    assert g.pixel_offset(3.5682 + 0.37e-4, 1e-4) is None
    assert g.pixel_offset(3.5682, 1.01e-4) is None
    assert g.pixel_offset(None, 1e-4) is None
    k, ok = g.pixel_offsets(
        [3.5529, float(np.float32(3.5529)), 3.5682 + 0.37e-4, np.nan, 1e300],
        [1e-4, 1e-4, 1e-4, 1e-4, 1e-4],
    )
    assert k.tolist() == [-153, -153, 0, 0, 0] and ok.tolist() == [True, True, False, False, False]


@pytest.mark.parametrize("path", ALIGNED_FILES, ids=lambda p: p.name)
def test_real_file_fast_path_is_an_exact_copy(path: Path) -> None:
    rec = read_spectrum(path)
    k = WORKING_GRID.pixel_offset(rec.coeff0, rec.coeff1)
    assert k is not None
    flux, ivar = to_working_grid(
        rec.wave_angstrom(), rec.flux, rec.ivar, rec.andmask, coeff0=rec.coeff0, coeff1=rec.coeff1
    )
    assert flux.dtype == ivar.dtype == np.float32 and flux.shape == (WORKING_GRID.npix,)
    src = np.arange(rec.npix)
    on_grid = (src + k >= 0) & (src + k < WORKING_GRID.npix)
    good = (rec.andmask == 0) & (rec.ivar > 0) & np.isfinite(rec.flux) & np.isfinite(rec.ivar)
    dst = src[on_grid] + k
    assert np.array_equal(flux[dst], np.where(good, rec.flux, 0)[on_grid])
    assert np.array_equal(ivar[dst], np.where(good, rec.ivar, 0)[on_grid])
    off = np.ones(WORKING_GRID.npix, dtype=bool)
    off[dst] = False
    assert not flux[off].any() and not ivar[off].any()


def test_andmask_zeroes_pixels_with_positive_ivar_on_both_paths() -> None:
    # No shipped file has andmask set on a pixel with ivar > 0, so set it on a real one.
    rec = read_spectrum(LAMOST_DR9)
    masked = np.array([100, 101, 2000])
    assert np.all(rec.ivar[masked] > 0)
    andmask = rec.andmask.copy()
    andmask[masked] = 1 << 23
    flux, ivar = to_working_grid(
        None, rec.flux, rec.ivar, andmask, coeff0=rec.coeff0, coeff1=rec.coeff1
    )
    assert np.all(flux[masked] == 0) and np.all(ivar[masked] == 0)
    assert np.array_equal(flux[99], rec.flux[99])
    # Half a pixel off: working pixels 100..102 touch only masked 100, 101 and good 99, 102.
    flux, ivar = to_working_grid(
        None, rec.flux, rec.ivar, andmask, coeff0=rec.coeff0 + 0.5e-4, coeff1=rec.coeff1
    )
    assert float(flux[100]) == pytest.approx(float(rec.flux[99]), rel=1e-6)
    assert flux[101] == 0 and ivar[101] == 0
    assert float(flux[102]) == pytest.approx(float(rec.flux[102]), rel=1e-6)


def _log_spectrum(
    rng: np.random.Generator, loglam0: float, npix: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    wave = 10 ** (loglam0 + 1e-4 * np.arange(npix))
    flux = rng.normal(10.0, 3.0, npix).astype(np.float32)
    ivar = rng.uniform(0.5, 2.0, npix).astype(np.float32)
    andmask = (rng.random(npix) < 0.05).astype(np.int32)
    return wave, flux, ivar, andmask


def test_sdss_like_integer_offset_is_a_slice() -> None:
    rng = np.random.default_rng(15)
    wave, flux, ivar, andmask = _log_spectrum(rng, 3.5529, 4605)
    for coeff0 in (3.5529, float(np.float32(3.5529))):
        out_f, out_iv = to_working_grid(wave, flux, ivar, andmask, coeff0=coeff0, coeff1=1e-4)
        window = slice(153, 153 + WORKING_GRID.npix)
        assert np.array_equal(out_f, np.where(andmask == 0, flux, 0)[window])
        assert np.array_equal(out_iv, np.where(andmask == 0, ivar, 0)[window])


def _working_integral(out: np.ndarray, lo: float, hi: float) -> tuple[float, float, float]:
    """Integral of the working-grid spectrum over its pixels fully inside [lo, hi]."""
    edges = WORKING_GRID.edges_angstrom
    full = (edges[:-1] >= lo) & (edges[1:] <= hi)
    return (
        float(np.sum(out[full] * np.diff(edges)[full])),
        float(edges[:-1][full][0]),
        float(edges[1:][full][-1]),
    )


def test_non_aligned_log_grid_is_rebinned_and_conserves_flux() -> None:
    rng = np.random.default_rng(16)
    coeff0 = 3.5682 + 0.37e-4 + 20e-4
    wave, flux, ivar, _ = _log_spectrum(rng, coeff0, 3500)
    out_f, out_iv = to_working_grid(wave, flux, ivar, None, coeff0=coeff0, coeff1=1e-4)
    src = 10 ** (coeff0 + 1e-4 * (np.arange(3501) - 0.5))
    got, lo, hi = _working_integral(out_f.astype(np.float64), src[0], src[-1])
    assert got == pytest.approx(_input_integral(src, flux.astype(np.float64), lo, hi), rel=1e-6)
    # Interpolated, not shifted: working pixel j spans source pixels [j - 20.87, j - 19.87].
    j = 100
    want = 0.37 * float(flux[j - 21]) + 0.63 * float(flux[j - 20])
    assert float(out_f[j]) == pytest.approx(want, rel=1e-3)
    assert not out_f[:20].any() and not out_iv[:20].any()


def test_linear_wavelength_grid_is_rebinned_and_conserves_flux() -> None:
    rng = np.random.default_rng(17)
    wave = np.linspace(3800.0, 9000.0, 2600)
    flux = rng.normal(5.0, 1.0, wave.size).astype(np.float32)
    ivar = np.ones(wave.size, dtype=np.float32)
    out_f, out_iv = to_working_grid(wave, flux, ivar, np.zeros(wave.size, np.int32))
    src = edges_from_centers_log(wave)
    got, lo, hi = _working_integral(out_f.astype(np.float64), src[0], src[-1])
    assert got == pytest.approx(_input_integral(src, flux.astype(np.float64), lo, hi), rel=1e-6)
    constant, _ = to_working_grid(wave, np.full(wave.size, 3.0, np.float32), ivar, None)
    covered = out_iv > 0
    np.testing.assert_allclose(constant[covered], 3.0, rtol=1e-6)
    assert not covered[WORKING_GRID.wave_angstrom < 3790].any()


def test_shift_beyond_the_grid_gives_an_empty_spectrum() -> None:
    flux, ivar = to_working_grid(
        None, np.ones(10), np.ones(10), None, coeff0=3.5682 + 5000e-4, coeff1=1e-4
    )
    assert not flux.any() and not ivar.any()


# --- batches ---------------------------------------------------------------------------------


def _mixed_records() -> list[SpectrumRecord]:
    rng = np.random.default_rng(18)
    lamost = read_spectrum(LAMOST_DR9)
    dr1 = read_spectrum(LAMOST_DR1)
    records = [lamost, dr1]
    for coeff0 in (3.5682 + 0.37e-4, 3.5682 + 0.37e-4, 3.5529, 3.5700 + 0.5e-4):
        _, flux, ivar, andmask = _log_spectrum(rng, coeff0, 3000)
        records.append(
            dataclasses.replace(
                lamost,
                coeff0=coeff0,
                npix=3000,
                wavelength=None,
                flux=flux,
                ivar=ivar,
                andmask=andmask,
            )
        )
    wave = np.linspace(3800.0, 9000.0, 2600)
    records.append(
        dataclasses.replace(
            lamost,
            coeff0=None,
            coeff1=None,
            npix=wave.size,
            wavelength=wave,
            flux=rng.normal(size=wave.size).astype(np.float32),
            ivar=np.ones(wave.size, np.float32),
            andmask=np.zeros(wave.size, np.int32),
        )
    )
    return records


def _single(rec: SpectrumRecord) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    return to_working_grid(
        rec.wave_angstrom(), rec.flux, rec.ivar, rec.andmask, coeff0=rec.coeff0, coeff1=rec.coeff1
    )


def test_batch_equals_single_spectrum_path_bit_for_bit() -> None:
    records = _mixed_records()
    flux, ivar = batch_to_working_grid(records)
    assert flux.flags.c_contiguous and ivar.flags.c_contiguous
    assert flux.dtype == ivar.dtype == np.float32
    assert flux.shape == (len(records), WORKING_GRID.npix)
    for row, rec in enumerate(records):
        f, i = _single(rec)
        assert np.array_equal(flux[row], f) and np.array_equal(ivar[row], i), row


def test_arrays_from_arrow_lists_equal_records() -> None:
    records = _mixed_records()[:6]  # all with coeff0/coeff1, as in the spectra table
    cols = {
        name: pa.array([getattr(r, name) for r in records], type=pa.list_(typ))
        for name, typ in (("flux", pa.float32()), ("ivar", pa.float32()), ("andmask", pa.int32()))
    }

    def split(arr: pa.ListArray) -> list[np.ndarray]:
        offsets = arr.offsets.to_numpy()
        return np.split(arr.values.to_numpy(), offsets[1:-1])

    flux, ivar = arrays_to_working_grid(
        split(cols["flux"]),
        split(cols["ivar"]),
        split(cols["andmask"]),
        np.array([r.coeff0 for r in records]),
        np.array([r.coeff1 for r in records]),
    )
    want_f, want_i = batch_to_working_grid(records)
    assert np.array_equal(flux, want_f) and np.array_equal(ivar, want_i)


def test_custom_grid_is_honoured() -> None:
    grid = LogGrid(3.6, 2e-4, 50)
    f, i = to_working_grid(
        None, np.full(500, 4.0), np.ones(500), None, coeff0=3.59005, coeff1=1e-4, grid=grid
    )
    assert f.shape == (50,)
    np.testing.assert_allclose(f, 4.0, rtol=1e-6)
    np.testing.assert_allclose(i, 2.0, rtol=1e-6)  # two whole input pixels per output pixel
    # Centred instead: weights 1/2, 1, 1/2, so ivar = (sum w)**2 / sum w**2 = 4 / 1.5.
    f, i = to_working_grid(
        None, np.full(500, 4.0), np.ones(500), None, coeff0=3.59, coeff1=1e-4, grid=grid
    )
    np.testing.assert_allclose(i, 8 / 3, rtol=1e-6)
