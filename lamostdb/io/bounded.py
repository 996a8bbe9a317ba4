"""Reading a file with bounded memory: size caps, chunked gunzip, declared HDU sizes.

A spectrum file is under 1 MB, so anything far larger is refused before it is read:
:func:`read_bounded` checks the size on disk (a sparse 3 GiB file counts as 3 GiB),
inflates gzip in 1 MiB steps and stops as soon as the output passes the cap (a gzip
bomb never expands), and :func:`check_structure` walks the HDU headers and refuses
any whose declared data (``BITPIX``, ``NAXISn``, ``PCOUNT``, ``GCOUNT``) is malformed,
over the cap or beyond the end of the file, before a reader allocates anything. Every
refusal is a :class:`SpectrumReadError` naming the HDU and card; caps come from
:class:`~lamostdb.io.validate.ReadLimits`.
"""

from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path

from lamostdb.io import fits_read as fr
from lamostdb.io.hdu_roles import TableInfo, table_role
from lamostdb.io.record import SpectrumReadError
from lamostdb.io.validate import DEFAULT_LIMITS, ReadLimits

GZIP_MAGIC = b"\x1f\x8b"
_STEP = 1 << 20
_BITPIX = (8, 16, 32, 64, -32, -64)


def storable_path(path: str) -> str:
    """``path`` as text any database can hold.

    File names are bytes; Python shows undecodable ones with lone surrogates
    (``surrogateescape``), which UTF-8 cannot encode. Those bytes are written as
    backslash escapes (``\\xff``) instead, so the stored path is readable but is not
    the exact name on disk when it contains such an escape.

    >>> storable_path("a/b.fits")
    'a/b.fits'
    >>> storable_path(b"a/\\xffb.fits".decode("utf-8", "surrogateescape"))
    'a/\\\\xffb.fits'
    """
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        try:
            return os.fsencode(path).decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return path.encode("utf-8", "backslashreplace").decode("ascii")


def _too_big(path: str, what: str, size: int, cap: int, field: str) -> SpectrumReadError:
    return SpectrumReadError(
        path,
        f"{what} is {size:,} bytes, above the cap of {cap:,} "
        f"(ReadLimits.{field}); a LAMOST or SDSS spectrum is under 1 MB, "
        "so this is not one spectrum: check the file, or raise the cap",
    )


def gunzip_bounded(raw: bytes, path: str, cap: int) -> bytes:
    """Inflate a (possibly multi-member) gzip stream, refusing output beyond ``cap`` bytes."""
    out = bytearray()
    data = raw
    while data:
        d = zlib.decompressobj(wbits=31)
        tail = data
        try:
            while not d.eof:
                piece = d.decompress(tail, _STEP)
                tail = d.unconsumed_tail
                out += piece
                if len(out) > cap:
                    raise _too_big(
                        path, "the decompressed content (so far)", len(out), cap, "max_fits_bytes"
                    )
                if not piece and not tail:
                    break
        except zlib.error as exc:
            raise SpectrumReadError(
                path, f"gzip stream is damaged ({exc}); get a fresh copy of the file"
            ) from None
        if not d.eof:
            raise SpectrumReadError(
                path, "gzip stream ends early (truncated file?); get a fresh copy of the file"
            )
        data = d.unused_data
        if data and not data.strip(b"\0"):
            break  # zero padding after the last member
        if data and data[:2] != GZIP_MAGIC:
            raise SpectrumReadError(
                path,
                f"{len(data)} bytes of junk after the gzip stream; get a fresh copy of the file",
            )
    return bytes(out)


def read_bounded(
    path: str | Path, limits: ReadLimits = DEFAULT_LIMITS, name: str | None = None
) -> tuple[bytes, bytes]:
    """(raw file bytes, FITS bytes) of a plain or gzipped file, within ``limits``.

    ``name`` is the path as reported in errors (default: ``str(path)``).
    """
    shown = storable_path(str(path)) if name is None else name
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise SpectrumReadError(
                    shown,
                    "not a regular file (a device, pipe or socket?); only regular files are read",
                )
            if st.st_size > limits.max_file_bytes:
                raise _too_big(
                    shown, "the file", st.st_size, limits.max_file_bytes, "max_file_bytes"
                )
            raw = fh.read(limits.max_file_bytes + 1)
    except OSError as exc:
        raise SpectrumReadError(
            shown, f"cannot read file: {exc.strerror or exc}; check it exists and is readable"
        ) from None
    if len(raw) > limits.max_file_bytes:  # it grew while we looked
        raise _too_big(shown, "the file", len(raw), limits.max_file_bytes, "max_file_bytes")
    if raw[:2] == GZIP_MAGIC:
        return raw, gunzip_bounded(raw, shown, limits.max_fits_bytes)
    if len(raw) > limits.max_fits_bytes:
        raise _too_big(shown, "the FITS content", len(raw), limits.max_fits_bytes, "max_fits_bytes")
    return raw, raw


def _card_int(
    raw: dict[str, str],
    key: str,
    index: int,
    path: str,
    *,
    lo: int,
    hi: int,
    default: int | None = None,
) -> int:
    where = f"HDU {index} card {key}"
    if key not in raw:
        if default is not None:
            return default
        raise SpectrumReadError(
            path,
            f"{where} is missing; the size of the data cannot be "
            "known (the file is damaged: get a fresh copy)",
        )
    try:
        v = fr.parse_value(raw[key])
    except fr.UnsupportedFits:
        v = raw[key].strip()
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise SpectrumReadError(
            path,
            f"{where} = {str(v)[:30]!r} is not an integer in "
            f"{lo}..{hi} (the file is damaged: get a fresh copy)",
        )
    return v


def _declared_size(raw: dict[str, str], index: int, path: str, cap: int) -> int:
    """Bytes of data an HDU header declares; refuses nonsense naming the card."""
    where = f"HDU {index} card BITPIX"
    try:
        bitpix = fr.parse_value(raw.get("BITPIX", ""))
    except fr.UnsupportedFits:
        bitpix = raw.get("BITPIX", "").strip()
    if bitpix not in _BITPIX or isinstance(bitpix, bool):
        raise SpectrumReadError(
            path,
            f"{where} = {str(bitpix)[:30]!r} is not one of "
            f"{', '.join(map(str, _BITPIX))} (the file is damaged: get a "
            "fresh copy)",
        )
    naxis = _card_int(raw, "NAXIS", index, path, lo=0, hi=999)
    n = 1 if naxis else 0
    for k in range(1, naxis + 1):
        n *= _card_int(raw, f"NAXIS{k}", index, path, lo=0, hi=2**62)
        if n * abs(int(bitpix)) // 8 > cap:
            raise _too_big(
                path,
                f"HDU {index} data declared by NAXIS1..NAXIS{k}",
                n * abs(int(bitpix)) // 8,
                cap,
                "max_fits_bytes",
            )
    if index > 0:
        pcount = _card_int(raw, "PCOUNT", index, path, lo=0, hi=2**62, default=0)
        gcount = _card_int(raw, "GCOUNT", index, path, lo=1, hi=2**31, default=1)
        n = (n + pcount) * gcount if naxis else 0
    size = n * abs(int(bitpix)) // 8
    if size > cap:
        raise _too_big(
            path, f"HDU {index} data declared by NAXISn/PCOUNT/GCOUNT", size, cap, "max_fits_bytes"
        )
    return size


def check_coadd_unique(tables: list[TableInfo], path: str) -> None:
    """Refuse a file with two COADD spectra: which one is the spectrum is ambiguous.

    Two tables named ``COADD`` (any case), or two LAMOST coadd tables (columns FLUX,
    WAVELENGTH, IVAR) whatever their names. SDSS files' per-exposure tables share the
    coadd's columns but not its name, so they do not count.
    """
    named = [i for i, ext, _ in tables if (ext or "").strip().upper() == "COADD"]
    lamost = [i for i, _, cols in tables if table_role(cols) == "lamost_coadd"]
    for hits in (named, lamost):
        if len(hits) > 1:
            raise SpectrumReadError(
                path,
                f"HDUs {', '.join(map(str, hits))} are each a COADD "
                "spectrum table: which one holds the spectrum is "
                "ambiguous, so none is stored; remove the wrong copy",
            )


def _raw_hdu(raw: dict[str, str], text: str, data_start: int, size: int) -> fr.RawHDU | None:
    try:
        return fr.RawHDU(raw, fr.struct_values(raw), text, data_start, size)
    except (fr.UnsupportedFits, TypeError, ValueError):
        return None  # a card the fast subset cannot parse: the astropy reader decides


def check_structure(
    data: bytes, path: str, limits: ReadLimits = DEFAULT_LIMITS
) -> list[fr.RawHDU | None]:
    """Walk the HDUs of FITS bytes; refuse malformed or oversized ones.

    Returns every HDU as the fast reader needs it (None where a structural card is
    outside the fast subset), so it need not parse the headers again. Bytes after the
    last HDU that do not start a new ``XTENSION`` header are ignored, as astropy does.
    A duplicated COADD table is refused (:func:`check_coadd_unique`).
    """
    pos = 0
    index = 0
    hdus: list[fr.RawHDU | None] = []
    tables: list[TableInfo] = []
    while pos < len(data):
        if index >= limits.max_hdus:
            raise SpectrumReadError(
                path, f"more than {limits.max_hdus} HDUs (ReadLimits.max_hdus); not a spectrum file"
            )
        try:
            raw, text, data_start = fr.parse_header(data, pos)
        except fr.UnsupportedFits:
            raise SpectrumReadError(
                path,
                f"HDU {index}: the file ends inside its header (no "
                "END card): truncated; get a fresh copy",
            ) from None
        size = _declared_size(raw, index, path, limits.max_fits_bytes)
        if data_start + size > len(data):
            raise SpectrumReadError(
                path,
                f"HDU {index} declares {size:,} bytes of data but "
                f"only {len(data) - data_start:,} follow its header: the "
                "file is truncated (or NAXISn is wrong); get a fresh copy",
            )
        hdu = _raw_hdu(raw, text, data_start, size)
        hdus.append(hdu)
        if hdu is not None and hdu.struct.get("XTENSION") in ("BINTABLE", "TABLE"):
            extname = hdu.struct.get("EXTNAME")
            tables.append(
                (index, None if extname is None else str(extname), fr.table_column_names(hdu))
            )
        index += 1
        pos = data_start + (size + fr.BLOCK - 1) // fr.BLOCK * fr.BLOCK
        if data[pos : pos + 8] != b"XTENSION":
            break
    check_coadd_unique(tables, path)
    return hdus
