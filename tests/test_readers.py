"""Readers on real files of every layout, key variants, and damaged input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import NOT_LAMOST, REAL_FILES, SHARED_SPECTRA, SHIPPED_SPECTRA

from lamostdb.io import SpectrumReadError, log_linear_wave, read_spectrum

CMOST = SHIPPED_SPECTRA / "cmost"
DR9_101001 = CMOST / "spec-55859-F5902_sp01-001__blobaec1394.fits.gz"
DR7_101001 = CMOST / "spec-55859-F5902_sp01-001_dr7__blob253a785.fits.gz"
DR9_101005 = CMOST / "spec-55859-F5902_sp01-005__blob4661f26.fits.gz"
DR5_101005 = CMOST / "spec-55859-F5902_sp01-005__blob48d7b36.fits.gz"
DR1 = SHIPPED_SPECTRA / "spectraml" / "spec-55939-B5593905_sp01-018.fits"
DR2 = SHIPPED_SPECTRA / "spectraml" / "spec-55919-B5591903_sp01-003.fits"


@pytest.mark.parametrize(
    "path", [p for p in REAL_FILES if p.name not in NOT_LAMOST], ids=lambda p: p.name
)
def test_every_real_file_reads_with_labels_and_sane_pixels(path: Path) -> None:
    rec = read_spectrum(path)
    with fits.open(path) as hdul:
        hdr = hdul[0].header
        if rec.survey == "LAMOST":
            assert rec.lasp_class == str(hdr["CLASS"]).strip()
            z = float(hdr["Z"])
            assert rec.lasp_z == (None if z == -9999 else z)
            assert rec.fiberid == int(hdr["FIBERID"])
            assert rec.specid == (
                f"{hdr['LMJD']}-{hdr['PLANID'].strip()}_sp{int(hdr['SPID']):02d}"
                f"-{int(hdr['FIBERID']):03d}"
            )
            assert rec.obsid == (int(hdr["OBSID"]) if "OBSID" in hdr else None)
            snrg = hdr.get("SNRG", hdr.get("SN_G"))
            assert rec.snrg == pytest.approx(float(snrg))
    wave = rec.wave_angstrom()
    assert rec.flux.shape == rec.ivar.shape == rec.andmask.shape == wave.shape == (rec.npix,)
    assert rec.flux.dtype == np.float32 and rec.andmask.dtype == np.int32
    assert np.all(np.diff(wave) > 0)
    # Most LAMOST LRS spectra end above 9000 A, but real DR10 files may be shorter: 15 of the
    # 949 DR10 files in ../shared (e.g. spec-59523-GAC051N40M1_sp03-140) have 3820 pixels from
    # 3700.0 A, so their WAVELENGTH column itself ends at 8914.6 A.
    assert 3000 < wave[0] < 4000 and 8900 < wave[-1] < 10500
    assert np.all(rec.ivar[np.isfinite(rec.ivar)] >= 0)


def test_dr1_wavelength_is_rebuilt_from_coefficients() -> None:
    rec = read_spectrum(DR1)
    assert rec.file_format == "lamost_dr1_image"
    assert rec.wavelength is None
    assert rec.obsid is None  # DR1 files carry no OBSID; nothing is invented
    np.testing.assert_array_equal(
        rec.wave_angstrom(), log_linear_wave(3.5682, 1e-4, rec.npix).astype(np.float64)
    )
    with fits.open(DR1) as hdul:
        assert rec.snru == pytest.approx(hdul[0].header["SN_U"])  # DR1/2 spelling
        np.testing.assert_array_equal(rec.flux, hdul[0].data[0])


def test_dr2_float64_image_keeps_its_wavelength_row() -> None:
    rec = read_spectrum(DR2)
    with fits.open(DR2) as hdul:
        data = hdul[0].data
        assert data.dtype.itemsize == 8
        np.testing.assert_array_equal(rec.wavelength, data[2])
        np.testing.assert_array_equal(rec.flux.astype(np.float64), data[0])
    assert rec.file_format == "lamost_image"


def test_dr9_coadd_table_and_dr7_image_of_one_obsid_agree() -> None:
    dr9, dr7 = read_spectrum(DR9_101001), read_spectrum(DR7_101001)
    assert (dr9.file_format, dr7.file_format) == ("lamost_coadd", "lamost_image")
    assert dr9.obsid == dr7.obsid == 101001 and dr9.specid == dr7.specid
    np.testing.assert_array_equal(dr9.flux, dr7.flux)
    np.testing.assert_array_equal(dr9.ivar, dr7.ivar)
    np.testing.assert_array_equal(dr9.wave_angstrom(), dr7.wave_angstrom())


def test_fibre_keys_of_every_release_are_mapped() -> None:
    dr9, dr7 = read_spectrum(DR9_101001), read_spectrum(DR7_101001)
    # DR9 spells them FIB_TYPE / FIB_MASK, DR7 FIBERTYP / FIBERMAS
    assert (dr9.fibertype, dr9.fibermask) == ("Obj", 2)
    assert (dr7.fibertype, dr7.fibermask) == ("Obj", 2)


def test_dr5_and_dr9_versions_of_101005_have_the_same_flux() -> None:
    dr9, dr5 = read_spectrum(DR9_101005), read_spectrum(DR5_101005)
    assert dr9.obsid == dr5.obsid == 101005
    assert (dr9.data_v, dr5.data_v) == ("LAMOST DR9", "LAMOST DR5")
    # different pipeline versions (v2.9.8 vs v2.9.7): the same photons, re-reduced
    assert (dr9.verspipe, dr5.verspipe) == ("v2.9.8", "v2.9.7")
    good = (dr9.ivar > 0) & (dr5.ivar > 0) & (np.abs(dr9.flux) > 10)
    ratio = dr9.flux[good] / dr5.flux[good]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.005)
    assert np.percentile(np.abs(ratio - 1), 90) < 0.02
    assert np.corrcoef(dr9.flux, dr5.flux)[0, 1] > 0.9999


def test_sdss_file_uses_plug_position_and_specobj_labels() -> None:
    path = SHARED_SPECTRA / "sdss" / "trendfilteringSupp" / "spec-4055-55359-0010.fits"
    files = [path] if path.exists() else []
    for p in files:
        rec = read_spectrum(p)
        assert rec.survey == "SDSS" and rec.specid == "sdss-4055-55359-0010"
        assert rec.ra == pytest.approx(237.79181) and rec.dec == pytest.approx(2.05698)
        assert rec.lasp_class == "QSO" and rec.lasp_z == pytest.approx(2.953081, abs=1e-5)
    assert len(files) == int(SHARED_SPECTRA.exists())


def _bad(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_damaged_files_give_clear_errors_naming_the_file(tmp_path: Path) -> None:
    good = DR2.read_bytes()
    cases = {
        "empty.fits": (b"", "empty"),
        "text.fits": (b"hello, this is not FITS" * 200, "not a FITS file"),
        "truncated.fits": (good[:20000], "truncated|unreadable|ends inside"),
        "badgzip.fits.gz": (gzip.compress(good)[:5000], "gzip"),
    }
    for name, (data, pattern) in cases.items():
        path = _bad(tmp_path, name, data)
        with pytest.raises(SpectrumReadError, match=pattern) as info:
            read_spectrum(path)
        assert str(path) in str(info.value)


def test_missing_planid_is_reported_not_invented(tmp_path: Path) -> None:
    with fits.open(DR2) as hdul:
        del hdul[0].header["PLANID"]
        path = tmp_path / "noplan.fits"
        hdul.writeto(path)
    with pytest.raises(SpectrumReadError, match="PLANID"):
        read_spectrum(path)


def test_float64_flux_that_float32_cannot_hold_is_refused(tmp_path: Path) -> None:
    with fits.open(DR2) as hdul:
        hdul[0].data[0, 100] = 1.0 + 1e-12
        path = tmp_path / "f64.fits"
        hdul.writeto(path)
    with pytest.raises(SpectrumReadError, match="float32 cannot represent"):
        read_spectrum(path)
