"""The export's partition function: one batch of a partition's spectrum rows -> FITS files.

One FITS file per spectrum in the DR9+ layout; :func:`prepare_spectra` makes the bytes of
every file of a batch (pure: Arrow in, bytes out, no files touched), and the task of
:mod:`lamostdb.export.spectra` writes them.

Each file: an empty-data primary HDU with the keys of :mod:`lamostdb.export.header`, and
a one-row binary table ``COADD`` with FLUX, IVAR (float32), WAVELENGTH (float32 when the
catalogue keeps it as the log-linear grid of COEFF0/COEFF1, else the stored float64
values), ANDMASK and ORMASK (int32): the stored values, bit for bit, so
:func:`lamostdb.io.read_spectrum` reads back exactly what the catalogue holds. DR9's
NORMALIZATION column is not stored by the catalogue and not written.

Files go to ``spectra/<night>/<planid>/spec-<specid>.fits[.gz]`` (the LAMOST file name).

One spectrum never stops the release: a spectrum whose file cannot be made (a damaged
row, a header value FITS cannot hold, a name unsafe in a path) is left out and named with
the reason in :attr:`SpectraExport.failed` (and so in the manifest); the others are
written. Only an error of the file system (disk full, no permission) stops the export,
naming the file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from lamostdb.catalog.schema import load_schema
from lamostdb.export.columns import fits_comment
from lamostdb.export.errors import ExportError
from lamostdb.export.header import ReleaseInfo, spectrum_primary_cards
from lamostdb.io.fits_bintable import (
    FitsColumn,
    one_row_table_bytes,
    one_row_table_cards,
    primary_hdu_bytes,
)
from lamostdb.io.record import log_linear_wave

PIXEL_COLUMNS = ("flux", "ivar", "andmask", "ormask", "wavelength")
_PIXEL_DTYPES = {
    "flux": np.float32,
    "ivar": np.float32,
    "andmask": np.int32,
    "ormask": np.int32,
    "wavelength": np.float64,
}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
WAVELENGTH_COMMENT = "Vacuum wavelength of each pixel (heliocentric)"


@dataclass(frozen=True)
class SpectraConfig:
    """What every spectrum file of one release shares."""

    release: ReleaseInfo
    gzip: bool = False


@dataclass
class PreparedSpectra:
    """The files of one batch: ``(path relative to the release, uncompressed FITS bytes)``."""

    files: list[tuple[str, bytes]] = field(default_factory=list)
    #: (specid, reason) of the spectra whose file could not be made, in batch order
    failed: list[tuple[str, str]] = field(default_factory=list)
    unclean_cards: Counter[str] = field(default_factory=Counter)


def spectrum_relpath(row: Mapping[str, Any], *, gzip: bool) -> str:
    """``spectra/<night>/<planid>/spec-<specid>.fits[.gz]``."""
    specid, planid = str(row["specid"]), str(row["planid"])
    for what, text in (("specid", specid), ("planid", planid)):
        if not _SAFE_NAME.match(text):
            raise ExportError(
                f"spectrum {specid}: {what} {text!r} cannot be used in a file "
                "name; leave the spectrum out with --where"
            )
    night = specid.split("-", 1)[0]
    return f"spectra/{night}/{planid}/spec-{specid}.fits" + (".gz" if gzip else "")


@cache
def _coadd_layout(npix: int, wave_code: str) -> tuple[tuple[FitsColumn, ...], bytes]:
    """COADD columns for ``npix`` pixels, and their header cards (the same for all files)."""
    schema = load_schema("spectra")

    def col(name: str, code: str, comment: str | None = None) -> FitsColumn:
        c = schema.column(name)
        return FitsColumn(
            name.upper(),
            code,
            repeat=npix,
            unit=c.unit,
            comment=fits_comment(comment or c.description),
        )

    cols = (
        col("flux", "E"),
        col("ivar", "E"),
        col("wavelength", wave_code, WAVELENGTH_COMMENT),
        col("andmask", "J"),
        col("ormask", "J"),
    )
    return cols, one_row_table_cards(cols, extname="COADD")


Pixels = Mapping[str, npt.NDArray[Any] | None]


def coadd_hdu_bytes(row: Mapping[str, Any], pixels: Pixels) -> bytes:
    """The ``COADD`` table of one spectrum (stored dtypes, values bit for bit)."""
    stored = {n: pixels[n] for n in ("flux", "ivar", "andmask", "ormask")}
    missing = [n for n, a in stored.items() if a is None]
    if missing:
        raise ExportError(
            f"spectrum {row['specid']}: no {', '.join(missing)} array; the catalogue row is damaged"
        )
    arrays = {n: a for n, a in stored.items() if a is not None}
    flux = arrays["flux"]
    npix = int(row["npix"])
    for name, a in arrays.items():
        if a.size != npix:
            raise ExportError(
                f"spectrum {row['specid']}: npix is {npix} but {name} has "
                f"{a.size} values; the catalogue row is damaged"
            )
    wave = pixels.get("wavelength")
    if wave is None:
        if row["coeff0"] is None or row["coeff1"] is None:
            raise ExportError(
                f"spectrum {row['specid']}: no wavelength array and no "
                "COEFF0/COEFF1; the catalogue row is damaged"
            )
        wave = log_linear_wave(row["coeff0"], row["coeff1"], npix)
    cols, header = _coadd_layout(npix, "E" if wave.dtype == np.float32 else "D")
    ordered = (flux, arrays["ivar"], wave, arrays["andmask"], arrays["ormask"])
    return one_row_table_bytes(
        list(zip(cols, ordered, strict=True)), extname="COADD", header=header
    )


def spectrum_file_bytes(
    row: Mapping[str, Any],
    pixels: Pixels,
    release: ReleaseInfo,
    filename: str,
    unclean: Counter[str],
) -> bytes:
    """The bytes of one spectrum file (uncompressed FITS)."""
    cards = spectrum_primary_cards(row, release, filename, unclean)
    try:
        primary = primary_hdu_bytes(cards)
    except ValueError as exc:
        raise ExportError(f"spectrum {row['specid']}: {exc}") from None
    return primary + coadd_hdu_bytes(row, pixels)


def _pixel_rows(
    batch: pa.RecordBatch,
) -> Iterator[tuple[dict[str, npt.NDArray[Any] | None], str | None]]:
    """Per row, the pixel arrays as numpy views of the batch (None for a null list), and
    what is wrong with them (None: nothing; a row with null pixel values cannot be written).
    """
    parts = {}
    damaged: dict[int, str] = {}
    for name in PIXEL_COLUMNS:
        arr = batch.column(name)
        if arr.values.null_count:  # rare: find the rows, leave them out
            for i in range(batch.num_rows):
                if arr[i].is_valid and arr[i].values.null_count:
                    damaged.setdefault(
                        i, f"{name} holds null pixel values; the catalogue row is damaged"
                    )
        values = arr.values.to_numpy(zero_copy_only=False)
        dtype = _PIXEL_DTYPES[name]
        if values.dtype != dtype:  # an empty child array comes back as another type
            values = np.nan_to_num(values).astype(dtype)
        parts[name] = (
            values,
            arr.offsets.to_numpy(),
            arr.is_valid().to_numpy(zero_copy_only=False),
        )
    for i in range(batch.num_rows):
        yield (
            {
                name: values[offsets[i] : offsets[i + 1]] if valid[i] else None
                for name, (values, offsets, valid) in parts.items()
            },
            damaged.get(i),
        )


def prepare_spectra(batch: pa.RecordBatch, config: SpectraConfig) -> PreparedSpectra:
    """The file of every spectrum row of ``batch`` (rows of ``spectrum_rows`` in
    ``sql/export.sql``), or why it cannot be made; touches no files."""
    out = PreparedSpectra()
    rows = batch.drop_columns(list(PIXEL_COLUMNS)).to_pylist()
    for row, (pixels, damage) in zip(rows, _pixel_rows(batch), strict=True):
        specid = str(row.get("specid"))
        if damage:
            out.failed.append((specid, f"spectrum {row['specid']}: {damage}"))
            continue
        try:
            rel = spectrum_relpath(row, gzip=config.gzip)
            name = rel.rpartition("/")[2].removesuffix(".gz")
            data = spectrum_file_bytes(row, pixels, config.release, name, out.unclean_cards)
        except Exception as exc:  # noqa: BLE001 - one spectrum must not stop the release
            reason = (
                str(exc)
                if isinstance(exc, ExportError)
                else (f"spectrum {specid}: {type(exc).__name__}: {exc}")
            )
            out.failed.append((specid, reason))
            continue
        out.files.append((rel, data))
    return out
