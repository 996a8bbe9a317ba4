"""A small, fast FITS writer for one-spectrum files.

astropy can write these files, but building an ``HDUList`` costs milliseconds
per file, which dominates a 20,000-spectrum simulated night. The two layouts we
need are simple enough to write byte by byte: 80-character header cards in
2880-byte blocks, followed by big-endian data padded with zeros.

The rules implemented here are those of the FITS Standard 4.0 (sections 3-4
and 7.3): fixed-format values right-justified in columns 11-30, strings quoted
from column 11 and padded to at least 8 characters, the ``CONTINUE`` long-string
convention for strings that do not fit one card. Files are bit-for-bit
reproducible: no timestamps anywhere, and gzip output uses ``mtime=0``.

Examples
--------
>>> format_card("OBSID", 12, "Unique id").decode()[:30]
'OBSID   =                   12'
>>> format_card("PLANID", "O'Brien").decode()[:22]
"PLANID  = 'O''Brien'  "
"""

from __future__ import annotations

import gzip as _gzip
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

BLOCK = 2880
CARD = 80

# Keywords whose value field is free text (no "= "), per the standard.
_COMMENTARY = frozenset({"COMMENT", "HISTORY", ""})
_KEY_RE = re.compile(r"^[A-Z0-9_-]{0,8}$")
# Structural keywords the writers compute themselves; accepting them from the
# caller would let the header contradict the data.
_STRUCTURAL = frozenset(
    {
        "SIMPLE",
        "BITPIX",
        "NAXIS",
        "NAXIS1",
        "NAXIS2",
        "NAXIS3",
        "EXTEND",
        "XTENSION",
        "PCOUNT",
        "GCOUNT",
        "TFIELDS",
        "END",
    }
)

_BITPIX = {
    np.dtype(np.uint8): 8,
    np.dtype(np.int16): 16,
    np.dtype(np.int32): 32,
    np.dtype(np.int64): 64,
    np.dtype(np.float32): -32,
    np.dtype(np.float64): -64,
}
_TFORM = {
    np.dtype(np.uint8): "B",
    np.dtype(np.int16): "I",
    np.dtype(np.int32): "J",
    np.dtype(np.int64): "K",
    np.dtype(np.float32): "E",
    np.dtype(np.float64): "D",
}

Card = tuple[str, object, str]


def _check_text(text: str, what: str) -> None:
    # For ASCII text, isprintable() is exactly the FITS range 0x20-0x7E.
    if not (text.isascii() and text.isprintable()):
        raise ValueError(f"{what} {text!r}: FITS headers allow printable ASCII only")


def format_float(value: float) -> str:
    """FITS text of a float that reads back to exactly the same double.

    Python's ``repr`` is the shortest string that round-trips; the mantissa always
    gets a decimal point and the exponent is written with ``E``.

    >>> format_float(1e-05), format_float(3.5682), format_float(-0.0)
    ('1.0E-05', '3.5682', '-0.0')
    """
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{value!r}: FITS header values must be finite")
    text = _with_point(repr(x))
    if len(text) > 20:
        # repr needs at most 17 significant digits, but a sign, a point and a
        # 3-digit exponent can push it past the 20 fixed-format columns; use
        # %.16G when that still reads back exactly, else keep the longer
        # (free-format, still standard) text rather than lose precision.
        short = _with_point(f"{x:.16G}")
        if float(short) == x:
            text = short
    return text


def _with_point(text: str) -> str:
    mantissa, _, exponent = text.upper().partition("E")
    if "." not in mantissa:
        mantissa += ".0"
    return mantissa + ("E" + exponent if exponent else "")


def _value_text(value: object) -> tuple[str, bool]:
    """(text of the value field, whether it is a string)."""
    if isinstance(value, bool | np.bool_):
        return ("T" if value else "F"), False
    if isinstance(value, int | np.integer):
        text = str(int(value))
        if len(text) > 70:
            raise ValueError(f"integer {text[:20]}... does not fit a header card")
        return text, False
    if isinstance(value, float | np.floating):
        return format_float(float(value)), False
    if isinstance(value, str):
        _check_text(value, "string value")
        return value, True
    raise TypeError(f"cannot write a {type(value).__name__} as a FITS header value")


def _quote(text: str) -> str:
    body = text.replace("'", "''")
    return "'" + body.ljust(8) + "'"


def _split_long_string(text: str, room: int) -> list[str]:
    """Split ``text`` so each escaped piece plus '&' fits ``room`` characters."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = start
        used = 0
        while end < len(text):
            need = 2 if text[end] == "'" else 1
            # Keep one column for the '&' marker and never split a doubled quote.
            if used + need > room - 1:
                break
            used += need
            end += 1
        pieces.append(text[start:end])
        start = end
    return pieces


def format_card(key: str, value: object = None, comment: str = "") -> bytes:
    """One header card (80 bytes), or several for long strings (``CONTINUE``).

    Parameters
    ----------
    key
        Keyword, at most 8 characters of ``A-Z 0-9 - _`` (upper-cased here).
        ``COMMENT``, ``HISTORY`` and ``""`` make commentary cards whose text is
        ``value``.
    value
        ``bool``, ``int``, ``float`` (finite) or ``str`` (printable ASCII).
    comment
        Free text after `` / ``; cut to fit the card, since a comment may be
        truncated without changing the meaning of the header.
    """
    key = key.upper()
    if not _KEY_RE.match(key):
        raise ValueError(f"{key!r} is not a valid FITS keyword (<= 8 of A-Z 0-9 - _)")
    _check_text(comment, "comment")
    if key in _COMMENTARY:
        text = "" if value is None else str(value)
        _check_text(text, "commentary text")
        lines = [text[i : i + 72] for i in range(0, len(text), 72)] or [""]
        return "".join(f"{key:<8}{line:<72}" for line in lines).encode("ascii")

    text, is_string = _value_text(value)
    if not is_string:
        field = text.rjust(20)
        return _with_comment(f"{key:<8}= {field}", comment)
    # Trailing blanks are not significant in FITS strings (Standard 4.0, 4.2.1);
    # dropping them also keeps a final '&' visible to the check below.
    text = text.rstrip(" ")
    quoted = _quote(text)
    if len(quoted) <= 70:
        return _with_comment(f"{key:<8}= {quoted}", comment)
    # Long-string convention: each card but the last ends its string with '&'.
    pieces = _split_long_string(text, 68)
    if text.endswith("&"):
        # A last piece ending in '&' would read as "continued"; an empty final
        # CONTINUE card keeps the literal '&'.
        pieces.append("")
    out = []
    for i, piece in enumerate(pieces):
        body = piece.replace("'", "''") + ("&" if i < len(pieces) - 1 else "")
        prefix = f"{key:<8}= " if i == 0 else "CONTINUE  "
        card = f"{prefix}'{body}'"
        if i == len(pieces) - 1:
            out.append(_with_comment(card, comment).decode("ascii"))
        else:
            out.append(card.ljust(CARD))
    return "".join(out).encode("ascii")


def _with_comment(card: str, comment: str) -> bytes:
    if comment:
        room = CARD - len(card) - 3
        if room > 0:
            card = f"{card} / {comment[:room]}"
    return card.ljust(CARD).encode("ascii")


def build_header(cards: Iterable[Card]) -> bytes:
    """Header bytes: the cards, ``END``, padded with spaces to 2880-byte blocks."""
    raw = b"".join(format_card(key, value, comment) for key, value, comment in cards)
    raw += b"END".ljust(CARD)
    return raw + b" " * (-len(raw) % BLOCK)


def _pad_data(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def _user_cards(cards: Iterable[Card]) -> list[Card]:
    cards = list(cards)
    for key, _, _ in cards:
        if key.upper() in _STRUCTURAL:
            raise ValueError(f"{key} is written by the FITS writer itself; leave it out")
    return cards


def image_file_bytes(header_cards: Iterable[Card], image: npt.NDArray[np.generic]) -> bytes:
    """Bytes of a FITS file whose primary HDU holds ``image``."""
    image = np.asarray(image)
    if image.dtype.newbyteorder("=") not in _BITPIX:
        raise TypeError(f"image dtype {image.dtype} has no FITS BITPIX")
    bitpix = _BITPIX[image.dtype.newbyteorder("=")]
    # FITS lists axes fastest-varying first, the reverse of numpy's C order.
    axes: list[Card] = [(f"NAXIS{i + 1}", n, "") for i, n in enumerate(image.shape[::-1])]
    cards: list[Card] = [
        ("SIMPLE", True, "conforms to FITS standard"),
        ("BITPIX", bitpix, "array data type"),
        ("NAXIS", image.ndim, "number of array dimensions"),
        *axes,
        ("EXTEND", True, ""),
        *_user_cards(header_cards),
    ]
    data = np.ascontiguousarray(image, dtype=image.dtype.newbyteorder(">")).tobytes()
    return build_header(cards) + _pad_data(data)


def coadd_file_bytes(
    primary_cards: Iterable[Card],
    columns: Mapping[str, npt.NDArray[np.generic]],
    *,
    extname: str = "COADD",
) -> bytes:
    """Bytes of a FITS file: empty primary HDU + a one-row binary table.

    Each column is a 1-D array stored as one vector cell (``TFORM = '{n}E'`` for
    float32), as in LAMOST DR9 and later.
    """
    primary = build_header(
        [
            ("SIMPLE", True, "conforms to FITS standard"),
            ("BITPIX", 8, "array data type"),
            ("NAXIS", 0, "no data in the primary HDU"),
            ("EXTEND", True, ""),
            *_user_cards(primary_cards),
        ]
    )
    col_cards: list[Card] = []
    chunks: list[bytes] = []
    for i, (name, values) in enumerate(columns.items(), start=1):
        arr = np.asarray(values)
        if arr.ndim != 1 or arr.dtype.newbyteorder("=") not in _TFORM:
            raise TypeError(f"column {name}: need a 1-D numeric array, got {arr.dtype} {arr.shape}")
        col_cards += [
            (f"TTYPE{i}", name, ""),
            (f"TFORM{i}", f"{arr.size}{_TFORM[arr.dtype.newbyteorder('=')]}", ""),
        ]
        chunks.append(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder(">")).tobytes())
    row = b"".join(chunks)
    table = build_header(
        [
            ("XTENSION", "BINTABLE", "binary table extension"),
            ("BITPIX", 8, ""),
            ("NAXIS", 2, ""),
            ("NAXIS1", len(row), "bytes per row"),
            ("NAXIS2", 1, "rows"),
            ("PCOUNT", 0, ""),
            ("GCOUNT", 1, ""),
            ("TFIELDS", len(columns), ""),
            *col_cards,
            ("EXTNAME", extname, "extension name"),
        ]
    )
    return primary + table + _pad_data(row)


def write_bytes(path: str | Path, data: bytes, *, compresslevel: int = 6) -> int:
    """Write ``data``, gzip-compressed (``mtime=0``) when ``path`` ends in ``.gz``.

    Returns the number of bytes written to disk.
    """
    path = Path(path)
    if path.suffix == ".gz":
        # mtime=0 and no file name in the gzip header keep the output reproducible.
        data = _gzip.compress(data, compresslevel=compresslevel, mtime=0)
    path.write_bytes(data)
    return len(data)


def write_image_file(
    path: str | Path, header_cards: Iterable[Card], image: npt.NDArray[np.generic]
) -> int:
    """Write a FITS file with ``image`` in the primary HDU; returns bytes written."""
    return write_bytes(path, image_file_bytes(header_cards, image))


def write_coadd_file(
    path: str | Path,
    primary_cards: Iterable[Card],
    columns: Mapping[str, npt.NDArray[np.generic]],
) -> int:
    """Write a LAMOST DR9-style file (empty primary + ``COADD`` table); returns bytes."""
    return write_bytes(path, coadd_file_bytes(primary_cards, columns))


def write_file(
    path: str | Path, data: bytes, *, gzip: bool = False, compresslevel: int = 6
) -> tuple[int, str]:
    """Write ``data`` (gzip-compressed, ``mtime=0``, when ``gzip``).

    Returns the bytes on disk and their SHA-256 (hex), without reading the file back.
    """
    if gzip:
        data = _gzip.compress(data, compresslevel=compresslevel, mtime=0)
    Path(path).write_bytes(data)
    return len(data), hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, read in 4 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()
