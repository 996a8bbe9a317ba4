"""FITS binary tables with checksums: one-row vector tables and tables streamed in batches.

A column is described by :class:`FitsColumn` (its FITS form, unit, description, display
format and null value); values come as Arrow arrays (streamed tables) or numpy arrays
(one-row tables). Nulls follow the standard: ``TNULLn`` for integers, NaN for floats,
a zero byte for logicals and an empty (all-NUL) string for characters.

:class:`StreamingBinTable` writes the header with placeholder counts, appends the rows
of each batch as they come, keeps the heap of variable-length arrays in a spool file,
and at the end appends the heap and rewrites the header (same size) with the row
count, heap size, the largest array length of each ``P`` column and the checksums. So
memory holds one batch, whatever the table size.

Examples
--------
>>> col = FitsColumn("Z", "D", tdisp="F10.6")
>>> col.tform, col.row_dtype
('1D', ('Z', '>f8'))
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from lamostdb.io.fits_checksum import (
    ZERO_CHECKSUM,
    RunningSum,
    checksum_of,
    encode_checksum,
    ones_complement_add,
)
from lamostdb.io.fits_write import BLOCK, CARD, Card, format_card

_CODE_DTYPE = {
    "B": ">u1",
    "I": ">i2",
    "J": ">i4",
    "K": ">i8",
    "E": ">f4",
    "D": ">f8",
    "L": "S1",
    "A": "S1",
}
_INT_CODES = frozenset("BIJK")
_FLOAT_CODES = frozenset("ED")
#: Characters allowed in a FITS character column or header value: printable ASCII.
_NOT_PRINTABLE = r"[^\x20-\x7e]"
_P_MAX = 2**31 - 1  # 'P' descriptors hold signed 32-bit counts and offsets


class FitsTableError(ValueError):
    """Values that the declared FITS columns cannot hold; the message names the column."""


@dataclass(frozen=True)
class FitsColumn:
    """One binary-table column.

    ``code`` is the FITS data type letter (``I J K E D L A``); ``repeat`` the number of
    elements (the width of an ``A`` column); ``varlen`` ``"P"`` or ``"Q"`` makes it a
    variable-length array in the heap (``repeat`` is then ignored).
    """

    name: str
    code: str
    repeat: int = 1
    varlen: str | None = None
    unit: str | None = None
    comment: str | None = None  # TCOMMn: what the column holds
    tdisp: str | None = None
    tnull: int | None = None
    #: Value standing for a null element of a variable-length integer column. TNULLn is
    #: not written for those: astropy's Table reader fails on it (astropy 8.0).
    null_fill: int | None = None

    def __post_init__(self) -> None:
        if self.code not in _CODE_DTYPE:
            raise ValueError(f"column {self.name}: FITS type {self.code!r} not supported")
        if self.varlen not in (None, "P", "Q"):
            raise ValueError(f"column {self.name}: varlen must be 'P', 'Q' or None")
        if self.tnull is not None and (self.code not in _INT_CODES or self.varlen):
            raise ValueError(
                f"column {self.name}: TNULL applies to scalar integer columns "
                "only (use null_fill for variable-length ones)"
            )
        if self.repeat < 1 and self.varlen is None:
            raise ValueError(f"column {self.name}: repeat must be >= 1")

    @property
    def tform(self) -> str:
        if self.varlen:
            return f"1{self.varlen}{self.code}"
        return f"{self.repeat}{self.code}"

    @property
    def row_dtype(self) -> tuple[str, str] | tuple[str, str, tuple[int, ...]]:
        """This column's field in the row's numpy structured dtype."""
        if self.varlen:
            return (self.name, ">i4" if self.varlen == "P" else ">i8", (2,))
        if self.code == "A":
            return (self.name, f"S{self.repeat}")
        if self.repeat == 1:
            return (self.name, _CODE_DTYPE[self.code])
        return (self.name, _CODE_DTYPE[self.code], (self.repeat,))


def column_cards(index: int, col: FitsColumn, *, max_len: int | None = None) -> list[Card]:
    """TTYPE/TFORM/TUNIT/TNULL/TDISP/TCOMM cards of column ``index`` (1-based)."""
    tform = col.tform if not col.varlen else f"{col.tform}({max_len or 0})"
    cards: list[Card] = [(f"TTYPE{index}", col.name, ""), (f"TFORM{index}", tform, "")]
    if col.unit:
        cards.append((f"TUNIT{index}", col.unit, ""))
    if col.tnull is not None:
        cards.append((f"TNULL{index}", col.tnull, "value meaning null"))
    if col.tdisp:
        cards.append((f"TDISP{index}", col.tdisp, ""))
    if col.comment:
        cards.append((f"TCOMM{index}", col.comment, ""))
    return cards


def table_header_cards(
    columns: list[FitsColumn],
    *,
    nrows: int,
    row_bytes: int,
    heap_bytes: int,
    extname: str,
    cards: Iterable[Card] = (),
    max_lens: Mapping[str, int] | None = None,
) -> list[Card]:
    """Every card of a BINTABLE header except DATASUM and CHECKSUM."""
    out: list[Card] = [
        ("XTENSION", "BINTABLE", "binary table extension"),
        ("BITPIX", 8, "8-bit bytes"),
        ("NAXIS", 2, "2-dimensional table"),
        ("NAXIS1", row_bytes, "bytes per row"),
        ("NAXIS2", nrows, "number of rows"),
        ("PCOUNT", heap_bytes, "heap size in bytes"),
        ("GCOUNT", 1, "one data group"),
        ("TFIELDS", len(columns), "number of columns"),
    ]
    for i, col in enumerate(columns, start=1):
        out += column_cards(i, col, max_len=(max_lens or {}).get(col.name))
    out.append(("EXTNAME", extname, "extension name"))
    out += list(cards)
    return out


def _checksum_card(key: str, value: str, comment: str) -> bytes:
    # Fixed format (closing quote padded to column 30, comment from column 32), the layout
    # astropy re-creates when it verifies: it re-serialises this card with the value set
    # to zeros and compares strings, so any other spacing reads as a checksum failure.
    quoted = f"'{value:<8}'"
    return f"{key:<8}= {quoted:<20} / {comment}".ljust(CARD).encode("ascii")


def header_with_checksum(cards: Iterable[Card | bytes], datasum: int) -> bytes:
    """Header bytes ending with DATASUM and CHECKSUM for a data unit summing to ``datasum``.

    ``cards`` are (key, value, comment) tuples, or ready card images (80-byte multiples)
    copied verbatim.
    """
    body = b"".join(c if isinstance(c, bytes) else format_card(*c) for c in cards)
    if len(body) % CARD:
        raise ValueError("a verbatim card image is not a multiple of 80 bytes")
    checksum_at = len(body) + CARD + len("CHECKSUM= '")
    body += _checksum_card("DATASUM", str(datasum), "data unit checksum")
    body += _checksum_card("CHECKSUM", ZERO_CHECKSUM, "HDU checksum")
    body += b"END".ljust(CARD)
    header = bytearray(body + b" " * (-len(body) % BLOCK))
    assert checksum_at % CARD == 11  # encode_checksum's rotation assumes column 12
    total = ones_complement_add(checksum_of(bytes(header)), datasum)
    header[checksum_at : checksum_at + 16] = encode_checksum(total).encode("ascii")
    return bytes(header)


def pad_block(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def hdu_bytes(cards: Iterable[Card | bytes], data: bytes = b"") -> bytes:
    """A whole HDU (header with checksums + padded data)."""
    padded = pad_block(data)
    return header_with_checksum(cards, checksum_of(padded)) + padded


def primary_hdu_bytes(cards: Iterable[Card | bytes]) -> bytes:
    """An empty-data primary HDU holding ``cards``, with checksums."""
    return hdu_bytes(
        [
            ("SIMPLE", True, "conforms to FITS standard"),
            ("BITPIX", 8, "array data type"),
            ("NAXIS", 0, "no data in the primary HDU"),
            ("EXTEND", True, "extensions may follow"),
            *cards,
        ]
    )


def one_row_table_cards(
    columns: Iterable[FitsColumn], *, extname: str, cards: Iterable[Card] = ()
) -> bytes:
    """Header card images (no DATASUM/CHECKSUM, no END) of a one-row vector table.

    They depend on the columns only, so a caller writing many such tables can build
    them once and pass them to :func:`one_row_table_bytes`.
    """
    cols = list(columns)
    row_bytes = sum(np.dtype(_CODE_DTYPE[c.code]).itemsize * c.repeat for c in cols)
    header = table_header_cards(
        cols, nrows=1, row_bytes=row_bytes, heap_bytes=0, extname=extname, cards=cards
    )
    return b"".join(format_card(*card) for card in header)


def one_row_table_bytes(
    columns: list[tuple[FitsColumn, npt.NDArray[np.generic]]],
    *,
    extname: str,
    cards: Iterable[Card] = (),
    header: bytes | None = None,
) -> bytes:
    """A BINTABLE HDU with one row of fixed-length vector columns (e.g. ``COADD``).

    ``header``: the cards from :func:`one_row_table_cards` for these columns, if at hand.
    """
    chunks = []
    for col, values in columns:
        arr = np.asarray(values)
        want = np.dtype(_CODE_DTYPE[col.code])
        if (
            col.varlen
            or col.code in "AL"
            or arr.ndim != 1
            or arr.size != col.repeat
            or arr.dtype.newbyteorder("=") != want.newbyteorder("=")
        ):
            raise FitsTableError(
                f"column {col.name}: need {col.repeat} values of {want}, got "
                f"{arr.dtype} {arr.shape}"
            )
        chunks.append(arr.astype(want, copy=False).tobytes())
    if header is None:
        header = one_row_table_cards([c for c, _ in columns], extname=extname, cards=cards)
    return hdu_bytes([header], b"".join(chunks))


# -- Arrow batches to FITS rows ---------------------------------------------------------
def _check_printable(name: str, arr: pa.Array) -> None:
    bad = pc.match_substring_regex(arr, _NOT_PRINTABLE)
    if pc.any(bad).as_py():
        first = arr.filter(bad)[0].as_py()
        raise FitsTableError(
            f"column {name}: value {first!r} has characters outside printable "
            "ASCII, which FITS character columns cannot hold"
        )


def _ints(col: FitsColumn, arr: pa.Array) -> npt.NDArray[np.generic]:
    marker = col.null_fill if col.varlen else col.tnull
    if marker is not None and arr.null_count < len(arr):
        if pc.any(pc.equal(arr, marker)).as_py():
            raise FitsTableError(f"column {col.name}: a value equals its null marker {marker}")
    if arr.null_count:
        if marker is None:
            raise FitsTableError(f"column {col.name} has nulls but no null marker (TNULL)")
        arr = arr.fill_null(marker)
    return arr.to_numpy(zero_copy_only=False)


def _floats(arr: pa.Array) -> npt.NDArray[np.generic]:
    if arr.null_count:
        arr = arr.fill_null(float("nan"))
    return arr.to_numpy(zero_copy_only=False)


def _strings(col: FitsColumn, arr: pa.Array) -> pa.Array:
    arr = arr.fill_null("") if arr.null_count else arr
    _check_printable(col.name, arr)
    return arr


def _values(col: FitsColumn, arr: pa.Array) -> npt.NDArray[np.generic]:
    """Scalar column values as numpy, nulls replaced as FITS expects."""
    if col.code in _INT_CODES:
        return _ints(col, arr)
    if col.code in _FLOAT_CODES:
        return _floats(arr)
    if col.code == "L":
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        truth = arr.fill_null(False).to_numpy(zero_copy_only=False)
        return np.where(valid, np.where(truth, b"T", b"F"), b"\0")
    strings = _strings(col, arr)
    longest = pc.max(pc.binary_length(strings)).as_py() or 0
    if longest > col.repeat:
        raise FitsTableError(
            f"column {col.name}: a value of {longest} characters does not fit "
            f"its width {col.repeat}"
        )
    return strings.to_numpy(zero_copy_only=False).astype(f"S{col.repeat}")


def _string_bytes(strings: pa.Array) -> bytes:
    """The characters of every value of a (null-free) string array, concatenated."""
    if len(strings) == 0:
        return b""
    _, offsets_buf, chars = strings.buffers()
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=width)[strings.offset :]
    return b"" if chars is None else chars.to_pybytes()[offsets[0] : offsets[len(strings)]]


def _heap_values(col: FitsColumn, arr: pa.Array) -> tuple[npt.NDArray[np.int64], bytes]:
    """(element count per row, heap bytes) of a variable-length column."""
    if col.code == "A":  # one string per row, stored as its characters
        strings = _strings(col, arr)
        lengths = pc.binary_length(strings).to_numpy(zero_copy_only=False).astype(np.int64)
        return lengths, _string_bytes(strings)
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise FitsTableError(f"column {col.name}: a variable-length column needs list values")
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(arr)  # skips null lists, keeps null elements
    values = _ints(col, flat) if col.code in _INT_CODES else _floats(flat)
    return lengths.astype(np.int64), values.astype(_CODE_DTYPE[col.code], copy=False).tobytes()


def _exclusive_cumsum(x: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    out = np.zeros_like(x)
    np.cumsum(x[:-1], out=out[1:])
    return out


def _row_major_heap(
    parts: list[tuple[npt.NDArray[np.int64], bytes]], heap_offset: int
) -> tuple[npt.NDArray[np.int64], bytes]:
    """Lay out the arrays of several columns row by row; return (offsets [row, col], heap).

    Row-major order (all arrays of row 0, then of row 1, ...) makes the heap, and so the
    file, independent of how the rows were cut into batches.
    """
    sizes = np.stack([nbytes for nbytes, _ in parts], axis=1)  # (rows, columns)
    flat = sizes.ravel()
    dst = _exclusive_cumsum(flat)
    column_base = _exclusive_cumsum(np.array([len(data) for _, data in parts], dtype=np.int64))
    src = np.stack(
        [
            base + _exclusive_cumsum(nbytes)
            for base, (nbytes, _) in zip(column_base, parts, strict=True)
        ],
        axis=1,
    )
    source = np.frombuffer(b"".join(data for _, data in parts), dtype=np.uint8)
    total = int(flat.sum())
    gather = np.repeat(src.ravel() - dst, flat) + np.arange(total, dtype=np.int64)
    return (heap_offset + dst).reshape(sizes.shape), source[gather].tobytes()


def encode_batch(
    columns: list[FitsColumn], batch: pa.RecordBatch | pa.Table, *, heap_offset: int
) -> tuple[bytes, bytes, dict[str, int]]:
    """(row bytes, heap bytes, longest array per variable column) of one batch.

    Variable-length arrays are appended to the heap, which already holds
    ``heap_offset`` bytes.
    """
    n = batch.num_rows
    rows = np.zeros(n, dtype=np.dtype([c.row_dtype for c in columns]))
    varlen: list[tuple[FitsColumn, npt.NDArray[np.int64]]] = []
    parts: list[tuple[npt.NDArray[np.int64], bytes]] = []
    for col in columns:
        arr = batch.column(col.name)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if col.varlen:
            lengths, data = _heap_values(col, arr)
            varlen.append((col, lengths))
            parts.append((lengths * np.dtype(_CODE_DTYPE[col.code]).itemsize, data))
        else:
            rows[col.name] = _values(col, arr)
    if not varlen or n == 0:
        return rows.tobytes(), b"", {col.name: 0 for col, _ in varlen}
    offsets, heap = _row_major_heap(parts, heap_offset)
    for j, (col, lengths) in enumerate(varlen):
        rows[col.name][:, 0] = lengths
        rows[col.name][:, 1] = offsets[:, j]
    return rows.tobytes(), heap, {col.name: int(lengths.max()) for col, lengths in varlen}


class StreamingBinTable:
    """A BINTABLE HDU written batch by batch into an open binary file.

    Parameters
    ----------
    fh
        File open for writing and seeking, positioned where the HDU starts.
    columns, extname, cards
        The table's columns, its EXTNAME and extra header cards (release keys...).
    spool_dir
        Folder for the temporary heap file of variable-length columns.
    """

    def __init__(
        self,
        fh: BinaryIO,
        columns: list[FitsColumn],
        *,
        extname: str,
        cards: Iterable[Card] = (),
        spool_dir: str | None = None,
    ) -> None:
        names = [c.name for c in columns]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names in {names}")
        self._fh = fh
        self._columns = columns
        self._extname = extname
        self._cards = list(cards)
        self._row_bytes = np.dtype([c.row_dtype for c in columns]).itemsize
        self._start = fh.tell()
        self._heap = (
            tempfile.TemporaryFile(dir=spool_dir) if any(c.varlen for c in columns) else None
        )
        self._heap_bytes = 0
        self._longest = {c.name: 0 for c in columns if c.varlen}
        self._sum = RunningSum()
        self.nrows = 0
        self._header_size = len(self._header(0))
        fh.write(b"\0" * self._header_size)  # rewritten by close()

    def _header(self, datasum: int) -> bytes:
        cards = table_header_cards(
            self._columns,
            nrows=self.nrows,
            row_bytes=self._row_bytes,
            heap_bytes=self._heap_bytes,
            extname=self._extname,
            cards=self._cards,
            max_lens=self._longest,
        )
        return header_with_checksum(cards, datasum)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append the rows of one batch."""
        rows, heap, longest = encode_batch(self._columns, batch, heap_offset=self._heap_bytes)
        if heap:
            assert self._heap is not None
            self._heap.write(heap)
            self._heap_bytes += len(heap)
            if any(c.varlen == "P" for c in self._columns) and self._heap_bytes > _P_MAX:
                raise FitsTableError(
                    f"table {self._extname}: the heap passed 2 GiB, beyond 'P' "
                    "descriptors; use 'Q' variable-length columns"
                )
        for name, n in longest.items():
            self._longest[name] = max(self._longest[name], n)
        self._fh.write(rows)
        self._sum.update(rows)
        self.nrows += batch.num_rows

    def close(self) -> int:
        """Append the heap and padding, rewrite the header; return the HDU size in bytes."""
        if self._heap is not None:
            self._heap.seek(0)
            while chunk := self._heap.read(1 << 22):
                self._fh.write(chunk)
                self._sum.update(chunk)
            self._heap.close()
        data_size = self.nrows * self._row_bytes + self._heap_bytes
        self._fh.write(b"\0" * (-data_size % BLOCK))
        end = self._fh.tell()
        header = self._header(self._sum.finish())
        if len(header) != self._header_size:  # cannot happen: same cards, fixed-width values
            raise AssertionError("table header changed size")
        self._fh.seek(self._start)
        self._fh.write(header)
        self._fh.seek(end)
        return end - self._start


def write_table_file(
    path: str | Path,
    *,
    primary_cards: Iterable[Card | bytes],
    columns: list[FitsColumn],
    batches: Iterable[pa.RecordBatch],
    extname: str,
    cards: Iterable[Card] = (),
) -> int:
    """Write a FITS file (empty primary HDU + one streamed table); return the row count."""
    path = Path(path)
    with open(path, "wb") as fh:
        fh.write(primary_hdu_bytes(primary_cards))
        table = StreamingBinTable(
            fh, columns, extname=extname, cards=cards, spool_dir=str(path.parent)
        )
        for batch in batches:
            table.write(batch)
        table.close()
    return table.nrows
