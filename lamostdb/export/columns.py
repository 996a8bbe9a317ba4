"""Table contracts to FITS binary-table columns.

How each contract type becomes a FITS column, and how its nulls are written:

============== ============================= =========================================
contract type  FITS form                     null
============== ============================= =========================================
int16/32/64    ``I`` / ``J`` / ``K``         ``TNULLn`` = the type's smallest value
float32/64     ``E`` / ``D``                 NaN
boolean        ``L``                         zero byte (neither T nor F)
string         ``wA``, w = longest value     empty string
list<int>      variable-length ``PJ``/``PK`` element -1 (said in TCOMMn; see below)
list<float>    variable-length ``PE``/``PD`` element NaN
list<string>   variable-length ``PA``: the    element empty between its commas
               elements joined by commas
============== ============================= =========================================

``TUNITn`` is the contract's unit, ``TDISPn`` its ``tdisp``, ``TCOMMn`` its description
cut to one card. Variable-length integer columns get no ``TNULLn``: astropy's Table
reader fails on one (astropy 8.0), so their null elements are -1, a value the list
columns of the contracts (obsids, mjds) never hold, and TCOMMn says so. Descriptors are
``P`` (32-bit) unless the heap of the whole table would pass 2 GiB, then ``Q``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from lamostdb.catalog.schema import Column, TableSchema
from lamostdb.export.errors import ExportError
from lamostdb.io.fits_bintable import FitsColumn

#: Longest string value of one header card (80 columns less ``KEY     = ''``).
CARD_STRING_MAX = 68
TNULL = {"int16": -(2**15), "int32": -(2**31), "int64": -(2**63)}
LIST_NULL_FILL = -1
_CODES = {
    "int16": "I",
    "int32": "J",
    "int64": "K",
    "float32": "E",
    "float64": "D",
    "boolean": "L",
    "string": "A",
}
_P_HEAP_MAX = 2**31 - 1
# characters of the descriptions that are not ASCII, with their ASCII spelling
_ASCII = {
    "\u2033": '"',
    "\u2032": "'",
    "\u2212": "-",
    "\u00d7": "x",
    "\u2013": "-",
    "\u2014": "-",
    "\u2248": "~",
    "\u2265": ">=",
    "\u2264": "<=",
    "\u00b0": " deg",
}


def fits_comment(text: str, limit: int = CARD_STRING_MAX) -> str:
    """``text`` as printable ASCII that fits one card, cut at a word with ``...``.

    >>> fits_comment("Right ascension of the target (J2000)")
    'Right ascension of the target (J2000)'
    >>> fits_comment("one two three four", limit=12)
    'one two...'
    >>> fits_comment("within 3\u2033")
    'within 3"'
    """
    ascii_text = "".join(_ASCII.get(ch, ch) for ch in text)
    ascii_text = "".join(ch if " " <= ch <= "~" else "?" for ch in ascii_text)
    ascii_text = " ".join(ascii_text.split())
    # quotes are doubled inside a FITS string, so they count twice
    if len(ascii_text) + ascii_text.count("'") <= limit:
        return ascii_text
    room = limit - 3
    cut = ascii_text[:room]
    while len(cut) + cut.count("'") > room:
        cut = cut[:-1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "..."


@dataclass
class ColumnStats:
    """What the FITS layout needs to know before the first row is written."""

    nrows: int = 0
    longest: dict[str, int] = field(default_factory=dict)  # string width / list length
    heap_bytes: int = 0

    def update(self, batch: pa.RecordBatch, columns: Iterable[Column]) -> None:
        self.nrows += batch.num_rows
        for col in columns:
            if col.type != "string" and not col.type.startswith("list<"):
                continue
            arr = prepare_array(col, batch.column(col.name))
            if col.type == "string" or col.type == "list<string>":
                lengths = pc.binary_length(arr)
            else:
                lengths = pc.list_value_length(arr)
            top = pc.max(lengths).as_py() or 0
            self.longest[col.name] = max(self.longest.get(col.name, 0), top)
            if col.type.startswith("list<"):
                width = 1 if col.type == "list<string>" else col.arrow_type.value_type.byte_width
                self.heap_bytes += width * (pc.sum(lengths).as_py() or 0)


def prepare_array(col: Column, arr: pa.Array) -> pa.Array:
    """The values as the FITS column holds them (list<string>: elements joined by commas)."""
    if col.type != "list<string>":
        return arr
    values = arr.values
    if len(values) and pc.any(pc.match_substring(values.fill_null(""), ",")).as_py():
        raise ExportError(
            f"column {col.name}: an element contains a comma, which the FITS "
            "column uses to separate elements"
        )
    filled = pa.ListArray.from_arrays(arr.offsets, values.fill_null(""), mask=arr.is_null())
    return pc.binary_join(filled, ",")


def prepare_batch(batch: pa.RecordBatch, columns: Iterable[Column]) -> pa.RecordBatch:
    cols = list(columns)
    return pa.record_batch(
        [prepare_array(c, batch.column(c.name)) for c in cols], names=[c.name for c in cols]
    )


def fits_column(col: Column, stats: ColumnStats) -> FitsColumn:
    """The FITS column of contract column ``col``."""
    element = col.type.removeprefix("list<").removesuffix(">")
    if element not in _CODES:
        raise ExportError(f"column {col.name}: type {col.type} has no FITS export")
    code = _CODES[element]
    if col.type.startswith("list<"):
        varlen = "P" if stats.heap_bytes <= _P_HEAP_MAX else "Q"
        # the note on the FITS form is kept whole; the description is cut to make room
        note = ""
        if element == "string":
            note = " (comma-separated)"
        elif code in "IJK":
            note = f" ({LIST_NULL_FILL}: none)"
        comment = fits_comment(col.description, limit=CARD_STRING_MAX - len(note)) + note
        return FitsColumn(
            col.name,
            code,
            varlen=varlen,
            unit=col.unit,
            comment=comment,
            null_fill=LIST_NULL_FILL if code in "IJK" else None,
        )
    repeat = max(1, stats.longest.get(col.name, 1)) if code == "A" else 1
    return FitsColumn(
        col.name,
        code,
        repeat=repeat,
        unit=col.unit,
        comment=fits_comment(col.description),
        tdisp=col.tdisp,
        tnull=TNULL.get(col.type) if col.nullable else None,
    )


def contract_columns(schema: TableSchema, names: list[str]) -> list[Column]:
    """The contract's columns in the order of ``names`` (a view's actual columns)."""
    known = {c.name: c for c in schema.columns}
    missing = [n for n in names if n not in known]
    if missing:
        raise ExportError(
            f"view {schema.name} has column(s) {missing} that "
            f"schemas/{schema.name}.json does not describe; add them to the "
            "contract (name, type, description, unit) before exporting"
        )
    return [known[n] for n in names]
