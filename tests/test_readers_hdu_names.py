"""FITS names are case-insensitive: tables are found by content, not by an exact EXTNAME.

Each variant is a real file rewritten with astropy (columns renamed, EXTNAME blanked or
changed); both readers must return exactly what they return for the original.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import SHARED_SPECTRA, SHIPPED_SPECTRA

from lamostdb.io import SpectrumReadError, SpectrumRecord, read_spectrum
from lamostdb.io import fits_read as fr
from lamostdb.io.spectrum import read_file_bytes

LAMOST_DR9 = SHIPPED_SPECTRA / "cmost" / "spec-55859-F5902_sp01-001__blobaec1394.fits.gz"
SDSS_BOSS = SHARED_SPECTRA / "sdss" / "trendfilteringSupp" / "spec-4055-55359-0010.fits"  # SPALL
SDSS_I = SHARED_SPECTRA / "sdss" / "mugdhapolimera" / "spec-0390-51900-0282.fits"  # SPECOBJ
SOURCE_FIELDS = {"source_path", "source_sha256", "source_bytes"}

Rewrite = Callable[[fits.HDUList], None]


def _renamed(hdu: fits.BinTableHDU, rename: Callable[[str], str]) -> fits.BinTableHDU:
    """The same table with every column renamed (formats, units and data unchanged)."""
    cols = [
        fits.Column(
            name=rename(c.name), format=c.format, unit=c.unit, dim=c.dim, array=hdu.data[c.name]
        )
        for c in hdu.columns
    ]
    new = fits.BinTableHDU.from_columns(cols)
    if "EXTNAME" in hdu.header:
        new.header["EXTNAME"] = hdu.header["EXTNAME"]
    return new


def _rewrite(src: Path, dst: Path, change: Rewrite) -> Path:
    """Apply ``change`` to the extensions of ``src``; the primary HDU is kept byte for byte.

    astropy would rewrite the primary header (LAMOST DR9 files carry NAXISn cards with
    NAXIS = 0, which it refuses to write), and the header text is part of the record.
    """
    _raw, data = read_file_bytes(src)
    primary_end = fr.scan_hdus(data, max_hdus=1)[0].data_offset  # NAXIS = 0: no data
    with fits.open(src) as hdul:
        new = fits.HDUList([fits.PrimaryHDU()] + [h.copy() for h in hdul[1:]])
    change(new)
    buf = io.BytesIO()
    new.writeto(buf)
    written = buf.getvalue()
    dst.write_bytes(
        data[:primary_end] + written[fr.scan_hdus(written, max_hdus=1)[0].data_offset :]
    )
    return dst


def _assert_same(variant: Path, original: Path) -> None:
    for fast in (True, False):  # each reader against itself on the original
        ref = read_spectrum(original, fast=fast)
        rec = read_spectrum(variant, fast=fast)
        for name in SpectrumRecord.__dataclass_fields__:
            if name in SOURCE_FIELDS:
                continue
            a, b = getattr(rec, name), getattr(ref, name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), name
            else:
                assert a == b, name


def _upper_sdss_columns(hdul: fits.HDUList) -> None:
    hdul[1] = _renamed(hdul[1], str.upper)


def _blank_extnames(*indices: int) -> Rewrite:
    def change(hdul: fits.HDUList) -> None:
        for i in indices:
            hdul[i].header["EXTNAME"] = ""

    return change


def _drop_extnames(*indices: int) -> Rewrite:
    def change(hdul: fits.HDUList) -> None:
        for i in indices:
            del hdul[i].header["EXTNAME"]

    return change


def _lower_lamost_columns(hdul: fits.HDUList) -> None:
    hdul[1] = _renamed(hdul[1], str.lower)


def _mixed_lamost_columns(hdul: fits.HDUList) -> None:
    hdul[1] = _renamed(hdul[1], str.capitalize)  # Flux, Ivar, Wavelength, ...


def _renamed_coadd(hdul: fits.HDUList) -> None:
    hdul[1].header["EXTNAME"] = "SPECTRUM"


VARIANTS: list[tuple[str, Path, Rewrite]] = [
    ("sdss_upper_columns", SDSS_BOSS, _upper_sdss_columns),
    ("sdss_upper_columns_specobj", SDSS_I, _upper_sdss_columns),
    ("sdss_blank_extname_coadd_and_spall", SDSS_BOSS, _blank_extnames(1, 2)),
    ("sdss_no_extname_coadd_and_specobj", SDSS_I, _drop_extnames(1, 2)),
    (
        "sdss_lower_case_extnames",
        SDSS_BOSS,
        lambda h: [h[i].header.set("EXTNAME", h[i].header["EXTNAME"].lower()) for i in (1, 2)],
    ),
    ("lamost_dr9_lower_columns", LAMOST_DR9, _lower_lamost_columns),
    ("lamost_dr9_mixed_columns", LAMOST_DR9, _mixed_lamost_columns),
    ("lamost_dr9_blank_extname", LAMOST_DR9, _blank_extnames(1)),
    ("lamost_dr9_no_extname", LAMOST_DR9, _drop_extnames(1)),
    ("lamost_dr9_coadd_named_otherwise", LAMOST_DR9, _renamed_coadd),
    ("lamost_dr9_lower_extname", LAMOST_DR9, lambda h: h[1].header.set("EXTNAME", "coadd")),
]


@pytest.mark.parametrize(("name", "original", "change"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variant_reads_exactly_like_the_original(
    name: str, original: Path, change: Rewrite, tmp_path: Path
) -> None:
    variant = _rewrite(original, tmp_path / f"{name}.fits", change)
    _assert_same(variant, original)


def test_sdss_variant_keeps_specobj_labels_and_plug_position(tmp_path: Path) -> None:
    def change(hdul: fits.HDUList) -> None:
        _upper_sdss_columns(hdul)
        _blank_extnames(1, 2)(hdul)

    rec = read_spectrum(_rewrite(SDSS_BOSS, tmp_path / "v.fits", change))
    assert rec.survey == "SDSS" and rec.specid == "sdss-4055-55359-0010"
    assert rec.ra == pytest.approx(237.79181) and rec.dec == pytest.approx(2.05698)
    assert rec.lasp_class == "QSO" and rec.lasp_z == pytest.approx(2.953081, abs=1e-5)


def test_lamost_variant_is_read_by_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fast subset must handle renamed tables itself, not only through the fallback.
    from lamostdb.io import spectrum

    def refuse(*args: object, **kwargs: object) -> SpectrumRecord:
        raise AssertionError("astropy fallback used")

    monkeypatch.setattr(spectrum, "_read_astropy", refuse)
    for change in (_mixed_lamost_columns, _blank_extnames(1), _renamed_coadd):
        path = _rewrite(LAMOST_DR9, tmp_path / f"{change.__name__}.fits", change)
        assert read_spectrum(path).file_format == "lamost_coadd"


def test_no_recognisable_table_names_the_file_and_what_is_missing(tmp_path: Path) -> None:
    def change(hdul: fits.HDUList) -> None:
        hdul[1] = _renamed(hdul[1], lambda n: {"WAVELENGTH": "LAMBDA"}.get(n, n))
        hdul[1].header["EXTNAME"] = "SPECTRUM"

    path = _rewrite(LAMOST_DR9, tmp_path / "nocoadd.fits", change)
    for fast in (True, False):
        with pytest.raises(SpectrumReadError) as info:
            read_spectrum(path, fast=fast)
        message = str(info.value)
        assert str(path) in message
        assert "FLUX, WAVELENGTH, IVAR" in message and "EXTNAME 'SPECTRUM'" in message
        assert "LAMBDA" in message  # what the file does have


def test_sdss_without_metadata_table_falls_back_to_the_header_and_invents_nothing(
    tmp_path: Path,
) -> None:
    def change(hdul: fits.HDUList) -> None:
        del hdul[2:]

    rec = read_spectrum(_rewrite(SDSS_BOSS, tmp_path / "nometa.fits", change))
    with fits.open(SDSS_BOSS) as hdul:
        assert rec.ra == hdul[0].header["PLUG_RA"] and rec.dec == hdul[0].header["PLUG_DEC"]
    assert rec.specid == "sdss-4055-55359-0010"
    assert (rec.lasp_class, rec.lasp_z) == (None, None)  # labels live only in SPALL


def test_sdss_coadd_missing_a_mask_column_names_it(tmp_path: Path) -> None:
    def change(hdul: fits.HDUList) -> None:
        hdul[1] = _renamed(hdul[1], lambda n: {"or_mask": "ormask_x"}.get(n, n))

    path = _rewrite(SDSS_BOSS, tmp_path / "nomask.fits", change)
    with pytest.raises(SpectrumReadError, match="lacks column.*OR_MASK") as info:
        read_spectrum(path)
    assert str(path) in str(info.value)
