"""One FITS file per spectrum in the DR9+ layout, streamed from the catalogue in batches.

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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from tqdm import tqdm

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
from lamostdb.io.fits_write import write_file
from lamostdb.io.record import log_linear_wave
from lamostdb.io.sqlfiles import statement

PIXEL_COLUMNS = ("flux", "ivar", "andmask", "ormask", "wavelength")
_PIXEL_DTYPES = {"flux": np.float32, "ivar": np.float32, "andmask": np.int32,
                 "ormask": np.int32, "wavelength": np.float64}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
WAVELENGTH_COMMENT = "Vacuum wavelength of each pixel (heliocentric)"

#: (path relative to the release, bytes on disk, sha256) of each file written
FileCallback = Callable[[str, int, str], None]


@dataclass
class SpectraExport:
    """What the spectrum pass wrote."""

    n_files: int = 0
    nbytes: int = 0
    max_batch_rows: int = 0
    unclean_cards: Counter[str] = field(default_factory=Counter)
    #: (specid, reason) of the spectra whose file could not be made, in stream order
    failed: list[tuple[str, str]] = field(default_factory=list)


def spectrum_relpath(row: Mapping[str, Any], *, gzip: bool) -> str:
    """``spectra/<night>/<planid>/spec-<specid>.fits[.gz]``."""
    specid, planid = str(row["specid"]), str(row["planid"])
    for what, text in (("specid", specid), ("planid", planid)):
        if not _SAFE_NAME.match(text):
            raise ExportError(f"spectrum {specid}: {what} {text!r} cannot be used in a file "
                              "name; leave the spectrum out with --where")
    night = specid.split("-", 1)[0]
    return f"spectra/{night}/{planid}/spec-{specid}.fits" + (".gz" if gzip else "")


@cache
def _coadd_layout(npix: int, wave_code: str) -> tuple[tuple[FitsColumn, ...], bytes]:
    """COADD columns for ``npix`` pixels, and their header cards (the same for all files)."""
    schema = load_schema("spectra")

    def col(name: str, code: str, comment: str | None = None) -> FitsColumn:
        c = schema.column(name)
        return FitsColumn(name.upper(), code, repeat=npix, unit=c.unit,
                          comment=fits_comment(comment or c.description))

    cols = (col("flux", "E"), col("ivar", "E"),
            col("wavelength", wave_code, WAVELENGTH_COMMENT),
            col("andmask", "J"), col("ormask", "J"))
    return cols, one_row_table_cards(cols, extname="COADD")


Pixels = Mapping[str, npt.NDArray[Any] | None]


def coadd_hdu_bytes(row: Mapping[str, Any], pixels: Pixels) -> bytes:
    """The ``COADD`` table of one spectrum (stored dtypes, values bit for bit)."""
    stored = {n: pixels[n] for n in ("flux", "ivar", "andmask", "ormask")}
    missing = [n for n, a in stored.items() if a is None]
    if missing:
        raise ExportError(f"spectrum {row['specid']}: no {', '.join(missing)} array; the "
                          "catalogue row is damaged")
    arrays = {n: a for n, a in stored.items() if a is not None}
    flux = arrays["flux"]
    npix = int(row["npix"])
    for name, a in arrays.items():
        if a.size != npix:
            raise ExportError(f"spectrum {row['specid']}: npix is {npix} but {name} has "
                              f"{a.size} values; the catalogue row is damaged")
    wave = pixels.get("wavelength")
    if wave is None:
        if row["coeff0"] is None or row["coeff1"] is None:
            raise ExportError(f"spectrum {row['specid']}: no wavelength array and no "
                              "COEFF0/COEFF1; the catalogue row is damaged")
        wave = log_linear_wave(row["coeff0"], row["coeff1"], npix)
    cols, header = _coadd_layout(npix, "E" if wave.dtype == np.float32 else "D")
    ordered = (flux, arrays["ivar"], wave, arrays["andmask"], arrays["ormask"])
    return one_row_table_bytes(list(zip(cols, ordered, strict=True)), extname="COADD",
                               header=header)


def spectrum_file_bytes(row: Mapping[str, Any], pixels: Pixels,
                        release: ReleaseInfo, filename: str, unclean: Counter[str]) -> bytes:
    """The bytes of one spectrum file (uncompressed FITS)."""
    cards = spectrum_primary_cards(row, release, filename, unclean)
    try:
        primary = primary_hdu_bytes(cards)
    except ValueError as exc:
        raise ExportError(f"spectrum {row['specid']}: {exc}") from None
    return primary + coadd_hdu_bytes(row, pixels)


def _pixel_rows(batch: pa.RecordBatch
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
                    damaged.setdefault(i, f"{name} holds null pixel values; the catalogue row "
                                          "is damaged")
        values = arr.values.to_numpy(zero_copy_only=False)
        dtype = _PIXEL_DTYPES[name]
        if values.dtype != dtype:  # an empty child array comes back as another type
            values = np.nan_to_num(values).astype(dtype)
        parts[name] = (values, arr.offsets.to_numpy(), arr.is_valid().to_numpy(
            zero_copy_only=False))
    for i in range(batch.num_rows):
        yield ({name: values[offsets[i]:offsets[i + 1]] if valid[i] else None
                for name, (values, offsets, valid) in parts.items()}, damaged.get(i))


def export_spectra(con: duckdb.DuckDBPyConnection, root: Path, *, release: ReleaseInfo,
                   batch_size: int, gzip: bool = False, total: int | None = None,
                   progress: bool = False, on_file: FileCallback | None = None
                   ) -> SpectraExport:
    """Write one file per spectrum of ``export_selection`` under ``root``.

    The pixel data stream through one Arrow batch of ``batch_size`` spectra at a time.
    """
    report = SpectraExport()
    made: set[Path] = set()
    bar = tqdm(total=total, unit="spectrum", desc="export spectra", disable=not progress)
    con.execute(statement("export.sql", "keep_join_order"))
    reader = None
    try:
        # the result is drained or closed before any other statement runs on ``con``: an
        # open result makes DuckDB refuse the next statement ("Resource In Use"), which
        # used to hide the real error
        reader = con.sql(statement("export.sql", "spectrum_rows")).to_arrow_reader(batch_size)
        for batch in reader:
            report.max_batch_rows = max(report.max_batch_rows, batch.num_rows)
            rows = batch.drop_columns(list(PIXEL_COLUMNS)).to_pylist()
            for row, (pixels, damage) in zip(rows, _pixel_rows(batch), strict=True):
                if damage:
                    report.failed.append((str(row["specid"]),
                                          f"spectrum {row['specid']}: {damage}"))
                    continue
                _write_one(root, row, pixels, release, gzip, report, made, on_file)
            bar.update(batch.num_rows)
    finally:
        bar.close()
        if reader is not None:
            reader.close()
        con.execute(statement("export.sql", "reset_join_order"))
    return report


def _write_one(root: Path, row: dict[str, Any], pixels: Pixels, release: ReleaseInfo,
               gzip: bool, report: SpectraExport, made: set[Path],
               on_file: FileCallback | None) -> None:
    """Write one spectrum's file, or record in ``report.failed`` why it cannot be made."""
    specid = str(row.get("specid"))
    try:
        rel = spectrum_relpath(row, gzip=gzip)
        path = root / rel
        data = spectrum_file_bytes(row, pixels, release, path.name.removesuffix(".gz"),
                                   report.unclean_cards)
    except Exception as exc:  # noqa: BLE001 - one spectrum must not stop the release
        reason = str(exc) if isinstance(exc, ExportError) else (
            f"spectrum {specid}: {type(exc).__name__}: {exc}")
        report.failed.append((specid, reason))
        return
    try:
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        nbytes, sha = write_file(path, data, gzip=gzip)
    except OSError as exc:
        raise ExportError(f"spectrum {specid}: cannot write {rel} ({exc.strerror or exc}); "
                          "free space or fix the permissions and export again") from None
    report.n_files += 1
    report.nbytes += nbytes
    if on_file is not None:
        on_file(rel, nbytes, sha)
