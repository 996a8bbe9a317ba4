"""Reading reference-catalogue files and mapping their columns onto the gaia / ps1 contracts.

Formats: Parquet and CSV (through pyarrow), ECSV, FITS binary tables and VOTable (through
astropy, ``.gz`` included), and the two JSON shapes that archives return (Gaia archive
``{"metadata": [...], "data": [[...]]}``, MAST ``{"info": [...], "data": [[...]]}``).
Which source column feeds which stored column is data: ``column_map.json`` beside this
module (see its ``description``); callers may override any entry.
"""

from __future__ import annotations

import gzip
import json
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from astropy import units as u
from astropy.table import Table
from astropy.units import UnitsWarning
from astropy.utils.exceptions import AstropyWarning

from lamostdb.catalog.schema import empty_table
from lamostdb.refcat.kinds import KINDS, SUPPORTED_FORMATS, RefcatError

_ASTROPY_FORMATS = {
    ".ecsv": "ascii.ecsv",
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".vot": "votable",
    ".xml": "votable",
    ".votable": "votable",
}
# units that are converted; magnitudes and epochs are taken as they come
_CONVERTIBLE = ("deg", "mas", "mas / yr")

ArrayGetter = Callable[[str], tuple[pa.Array, str | None]]


@dataclass(frozen=True)
class SourceTable:
    """The columns of one input file, read lazily by name."""

    path: Path
    fmt: str
    n_rows: int
    names: tuple[str, ...]
    get: ArrayGetter = field(repr=False)


@dataclass(frozen=True)
class Resolution:
    """Which source column feeds each stored column, and what was inferred."""

    sources: dict[str, str | None]
    implied: dict[str, float]
    notes: tuple[str, ...]


# -- reading ---------------------------------------------------------------------------------
def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return Path(name).suffix


def read_source(path: str | Path) -> SourceTable:
    """Open one reference-catalogue file.

    Raises
    ------
    RefcatError
        The format is not supported or the file cannot be parsed.
    """
    p = Path(path)
    ext = _suffix(p)
    try:
        if ext in (".parquet", ".pq"):
            return _arrow_source(p, "parquet", pq.read_table(p))
        if ext == ".csv":
            return _arrow_source(p, "csv", pacsv.read_csv(p))
        if ext == ".json":
            return _arrow_source(p, "json", _read_json(p))
        if ext == ".ecsv":
            return _arrow_source(p, "ecsv", _read_ecsv(p))
        if ext in _ASTROPY_FORMATS:
            return _astropy_source(p, _ASTROPY_FORMATS[ext])
    except RefcatError:
        raise
    except Exception as exc:  # every parser has its own exception types
        raise RefcatError(
            f"{p}: cannot read it as {ext.lstrip('.')} ({type(exc).__name__}: "
            f"{exc}). Check that the file is complete and of that format."
        ) from exc
    raise RefcatError(
        f"{p}: unsupported file type {ext or '(no extension)'!r}; supported: "
        f"{', '.join(SUPPORTED_FORMATS)}. Convert it to one of these first."
    )


#: Formats :func:`iter_batches` reads in batches; the others are read whole (their readers,
#: astropy's FITS and VOTable parsers and :mod:`json`, build the whole table first).
STREAMED_FORMATS = ("parquet", "csv", "ecsv")
#: Rows per batch of a streamed file.
BATCH_ROWS = 500_000


def iter_batches(path: str | Path, batch_rows: int = BATCH_ROWS) -> Iterator[SourceTable]:
    """Open one reference-catalogue file as consecutive batches of rows (at least one batch).

    Parquet (by row groups, re-cut to ``batch_rows``), CSV and ECSV (pyarrow's streaming
    CSV reader, ``.gz`` included) are read a batch at a time, so memory holds one batch, not
    the file. FITS, VOTable and archive JSON cannot be streamed by their parsers: they are
    read whole (:func:`read_source`) and handed over as one batch.

    Raises
    ------
    RefcatError
        The format is not supported or the file cannot be parsed.
    """
    p = Path(path)
    ext = _suffix(p)
    if ext not in (".parquet", ".pq", ".csv", ".ecsv"):
        yield read_source(p)
        return
    fmt = {".pq": "parquet"}.get(ext, ext.lstrip("."))
    try:
        if fmt == "parquet":
            # pre-buffering (pyarrow's default) keeps every column chunk read so far: the
            # memory of iter_batches would grow with the file
            pf = pq.ParquetFile(p, pre_buffer=False, buffer_size=1 << 22)
            schema = pf.schema_arrow
            batches: Iterator[pa.RecordBatch] = pf.iter_batches(batch_size=batch_rows)
            yield from _batch_sources(p, fmt, schema, batches)
        elif fmt == "csv":
            reader = pacsv.open_csv(p, read_options=pacsv.ReadOptions(block_size=_block()))
            yield from _batch_sources(p, fmt, reader.schema, iter(reader))
        else:
            with gzip.open(p, "rb") if _gzipped(p) else open(p, "rb") as fh:
                schema_md, reader = _open_ecsv(p, fh)
                yield from _batch_sources(p, fmt, schema_md, iter(reader), ecsv=True)
    except RefcatError:
        raise
    except Exception as exc:  # every parser has its own exception types
        raise RefcatError(
            f"{p}: cannot read it as {fmt} ({type(exc).__name__}: {exc}). "
            "Check that the file is complete and of that format."
        ) from exc


def _gzipped(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _block() -> int:
    """CSV block size: about ``BATCH_ROWS`` rows of a typical extract, at most 64 MiB."""
    return min(64 << 20, max(1 << 20, BATCH_ROWS * 64))


def _batch_sources(
    path: Path,
    fmt: str,
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    *,
    ecsv: bool = False,
) -> Iterator[SourceTable]:
    """One :class:`SourceTable` per batch (an empty one when there is none)."""
    any_batch = False
    for batch in batches:
        any_batch = True
        table = pa.Table.from_batches([batch])
        if ecsv:
            table = pa.Table.from_arrays(table.columns, schema=schema)
        yield _arrow_source(path, fmt, table)
    if not any_batch:
        yield _arrow_source(path, fmt, empty_table(schema))


def _open_ecsv(path: Path, fh: Any) -> tuple[pa.Schema, Any]:
    """Parse the ECSV header of the open binary file ``fh``; a streaming reader of the body.

    Returns the schema with units (field metadata) and a pyarrow CSV reader positioned on
    the column-name line.
    """
    header: list[str] = []
    while True:
        pos = fh.tell()
        line = fh.readline()
        if not line.startswith(b"#"):
            break
        text = line.decode("utf-8").rstrip("\r\n")
        header.append(text[2:] if text.startswith("# ") else text[1:])
    fh.seek(pos)
    meta, types, delimiter = _ecsv_header(path, header)
    reader = pacsv.open_csv(
        fh,
        read_options=pacsv.ReadOptions(block_size=_block()),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"'),
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, null_values=["", "nan", "NaN", "--"]
        ),
    )
    return _ecsv_schema(reader.schema, meta), reader


def _ecsv_header(
    path: Path, header: list[str]
) -> tuple[list[dict[str, Any]], dict[str, pa.DataType], str]:
    """``(datatype entries, Arrow types by name, delimiter)`` of an ECSV header."""
    import yaml

    if not header or not header[0].startswith("%ECSV"):
        raise RefcatError(f"{path}: not an ECSV file (no '# %ECSV' first line)")
    meta = yaml.safe_load("\n".join(header[1:])) or {}
    datatype: list[dict[str, Any]] = meta.get("datatype", [])
    types = {c["name"]: _ECSV_TYPES.get(c.get("datatype", "string"), pa.string()) for c in datatype}
    return datatype, types, meta.get("delimiter", " ")


def _ecsv_schema(schema: pa.Schema, datatype: list[dict[str, Any]]) -> pa.Schema:
    fields = []
    for f in schema:
        spec: dict[str, Any] = next((c for c in datatype if c["name"] == f.name), {})
        md = {b"unit": str(spec["unit"]).encode()} if spec.get("unit") else None
        fields.append(pa.field(f.name, f.type, metadata=md))
    return pa.schema(fields)


_ECSV_TYPES = {
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "float16": pa.float32(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
}


def _read_ecsv(path: Path) -> pa.Table:
    """ECSV (a YAML header in '# ' lines, then delimited text) read with pyarrow's CSV parser.

    Column types and units come from the header. Reading ECSV through astropy's ASCII reader
    crashed the interpreter (segfault inside the csv module) in a long test session; pyarrow's
    parser is also much faster on large extracts.
    """
    import gzip
    import io

    import yaml

    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    lines = text.splitlines()
    header = [ln[2:] if ln.startswith("# ") else ln[1:] for ln in lines if ln.startswith("#")]
    if not header or not header[0].startswith("%ECSV"):
        raise RefcatError(f"{path}: not an ECSV file (no '# %ECSV' first line)")
    meta = yaml.safe_load("\n".join(header[1:])) or {}
    delimiter = meta.get("delimiter", " ")
    body = "\n".join(ln for ln in lines if not ln.startswith("#"))
    datatype = meta.get("datatype", [])
    types = {c["name"]: _ECSV_TYPES.get(c.get("datatype", "string"), pa.string()) for c in datatype}
    table = pacsv.read_csv(
        io.BytesIO(body.encode("utf-8")),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char='"'),
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, null_values=["", "nan", "NaN", "--"]
        ),
    )
    fields = []
    for f in table.schema:
        spec: dict[str, Any] = next((c for c in datatype if c["name"] == f.name), {})
        md = {b"unit": str(spec["unit"]).encode()} if spec.get("unit") else None
        fields.append(pa.field(f.name, f.type, metadata=md))
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields))


def _arrow_source(path: Path, fmt: str, table: pa.Table) -> SourceTable:
    def get(name: str) -> tuple[pa.Array, str | None]:
        meta = table.schema.field(name).metadata or {}
        unit = meta.get(b"unit")
        return table.column(name).combine_chunks(), unit.decode() if unit else None

    return SourceTable(path, fmt, table.num_rows, tuple(table.column_names), get)


def _astropy_source(path: Path, fmt: str) -> SourceTable:
    with warnings.catch_warnings():
        # archive files carry unit strings astropy does not know (e.g. "Time[Julian Years]")
        # and VOTable spec nits; we only read the columns we map, and check their units below
        warnings.simplefilter("ignore", UnitsWarning)
        warnings.simplefilter("ignore", AstropyWarning)
        if fmt == "votable":
            # astropy's C XML parser (utils.xml._iterparser) corrupted memory in our test
            # sessions (segfaults later, at random places); its pure-Python parser does not
            from astropy.io import votable

            table = (
                votable.parse(str(path), _debug_python_based_parser=True)
                .get_first_table()
                .to_table()
            )
        else:
            table = Table.read(path, format=fmt)

    def get(name: str) -> tuple[pa.Array, str | None]:
        col = table[name]
        data = np.asarray(np.ma.getdata(col))
        if data.ndim != 1:
            raise RefcatError(
                f"{path}: column {name!r} is not a scalar column (shape {data.shape[1:]} per row)"
            )
        mask = np.ma.getmaskarray(col) if hasattr(col, "mask") else None
        if data.dtype.kind in "SU":
            data = data.astype(str)
        elif not data.dtype.isnative:  # FITS is big-endian; Arrow wants native order
            data = data.astype(data.dtype.newbyteorder("="))
        if data.dtype.kind == "O":
            arr = pa.array(data.tolist(), mask=mask)
        else:
            arr = pa.array(data, mask=mask)
        unit = None if col.unit is None else col.unit.to_string()
        return arr, unit

    return SourceTable(path, fmt, len(table), tuple(table.colnames), get)


def _read_json(path: Path) -> pa.Table:
    raw = json.loads(path.read_text())
    fields = raw.get("metadata") or raw.get("info") if isinstance(raw, dict) else None
    data = raw.get("data") if isinstance(raw, dict) else None
    if not isinstance(fields, list) or not isinstance(data, list):
        raise RefcatError(
            f"{path}: JSON is not a Gaia-archive ({{'metadata', 'data'}}) or MAST "
            f"({{'info', 'data'}}) table; supported: {', '.join(SUPPORTED_FORMATS)}"
        )
    names = [str(f["name"]) for f in fields]
    if data and isinstance(data[0], dict):  # MAST "records" style
        columns = [[row.get(n) for row in data] for n in names]
    else:
        bad = [i for i, row in enumerate(data) if len(row) != len(names)]
        if bad:
            raise RefcatError(
                f"{path}: data row {bad[0]} has {len(data[bad[0]])} values for {len(names)} columns"
            )
        columns = [list(c) for c in zip(*data, strict=True)] if data else [[] for _ in names]
    return pa.table({n: pa.array(c) for n, c in zip(names, columns, strict=True)})


# -- column mapping --------------------------------------------------------------------------
@cache
def column_map() -> dict[str, Any]:
    """The packaged ``column_map.json``."""
    out: dict[str, Any] = json.loads((Path(__file__).parent / "column_map.json").read_text())
    return out


def accepted_names(kind: str, target: str) -> list[str]:
    """Source names accepted for stored column ``target`` of ``kind``, in priority order."""
    spec = column_map()[kind]
    for g in spec.get("groups", []):
        if target in g["members"]:
            i = g["members"].index(target)
            return [v["names"][i] for v in g["variants"]]
    return list(spec["columns"][target].get("variants", []))


def _joined(name: str, names: tuple[str, ...]) -> list[str]:
    """Columns named ``name`` plus a join suffix (``_x``, ``_1``, ``_x_2`` ...)."""
    rx = re.compile(re.escape(name) + column_map()["join_suffix_regex"] + "$")
    return [n for n in names if rx.fullmatch(n)]


def resolve_columns(
    src: SourceTable, kind: str, overrides: Mapping[str, str | None] | None = None
) -> Resolution:
    """Choose the source column of every stored column of ``kind``.

    Parameters
    ----------
    src
        The input file.
    kind
        ``"gaia"`` or ``"ps1"``.
    overrides
        Stored column -> source column name, or ``None`` for "absent: store null/default".

    Raises
    ------
    RefcatError
        A required column is absent, a name is ambiguous, or an override names no column.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    spec = column_map()[kind]
    targets = list(spec["columns"])
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(targets))
    if unknown:
        raise RefcatError(
            f"--column names unknown {kind} column(s) {unknown}; the {kind} columns are {targets}"
        )
    sources: dict[str, str | None] = {}
    implied: dict[str, float] = {}
    notes: list[str] = []
    for target, name in overrides.items():
        if name is not None and name not in src.names:
            raise RefcatError(
                f"{src.path}: --column {target}={name}: the file has no column {name!r}"
            )
        if name is None and spec["columns"][target].get("required"):
            raise RefcatError(f"{kind} column {target!r} is required and cannot be set absent")
        sources[target] = name
    grouped = {m for g in spec.get("groups", []) for m in g["members"]}
    for g in spec.get("groups", []):
        members = [m for m in g["members"] if m not in sources]
        if len(members) < len(g["members"]):  # partly overridden: the rest resolve alone
            for m in members:
                idx = g["members"].index(m)
                names = [[v["names"][idx]] for v in g["variants"]]
                sources[m] = _pick(src, kind, [m], names, notes)[0][0]
            continue
        chosen, i = _pick(src, kind, members, [v["names"] for v in g["variants"]], notes)
        sources.update(dict(zip(members, chosen, strict=True)))
        if i is not None:
            implied.update(g["variants"][i].get("implies", {}))
    for target, cspec in spec["columns"].items():
        if target in sources or target in grouped:
            continue
        sources[target] = _pick(
            src, kind, [target], [[v] for v in cspec.get("variants", [])], notes
        )[0][0]
    for target, cspec in spec["columns"].items():
        if sources[target] is None and cspec.get("required"):
            raise RefcatError(
                f"{src.path}: no column for required {kind} column {target!r}; accepted names: "
                f"{accepted_names(kind, target)} (file has {len(src.names)} columns: "
                f"{_preview(src.names)}). Rename the column or pass --column {target}=NAME."
            )
        if sources[target] is None and target not in implied:
            default = cspec.get("default")
            notes.append(f"{target}: absent, stored as {'null' if default is None else default}")
    return Resolution({t: sources[t] for t in spec["columns"]}, implied, tuple(notes))


def _pick(
    src: SourceTable, kind: str, members: list[str], variants: list[list[str]], notes: list[str]
) -> tuple[list[str | None], int | None]:
    """First variant (a name per member) present in ``src``; joins make it ambiguous."""
    for i, names in enumerate(variants):
        exact = [n in src.names for n in names]
        suffixed = [_joined(n, src.names) for n in names]
        if not any(exact) and not any(suffixed):
            continue
        if all(exact) and not any(suffixed):
            return list(names), i
        if not any(exact) and all(len(s) == 1 for s in suffixed):
            picked = [s[0] for s in suffixed]
            notes.append(f"{', '.join(members)}: taken from {', '.join(picked)} (join suffix)")
            return list(picked), i
        found = sorted(
            {n for n, e in zip(names, exact, strict=True) if e} | {x for s in suffixed for x in s}
        )
        flags = " ".join(f"--column {m}=NAME" for m in members)
        raise RefcatError(
            f"{src.path}: {kind} column(s) {members} are ambiguous: the file has {found} (a "
            f"joined table?) and it is not clear which belong to {kind}. Choose with {flags}."
        )
    return [None] * len(members), None


def _preview(names: tuple[str, ...], n: int = 12) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


# -- building the stored rows ----------------------------------------------------------------
@dataclass
class Mapped:
    """One file's rows in the contract's columns, with what was dropped and why."""

    table: pa.Table
    n_rows: int
    dropped: dict[str, int]
    resolution: Resolution
    filled: dict[str, int] = field(default_factory=dict)


def map_rows(src: SourceTable, kind: str, resolution: Resolution, schema: pa.Schema) -> Mapped:
    """Build the contract columns of ``kind`` from ``src`` and drop unusable rows.

    Floats: NaN becomes null (FITS and astropy mark missing values so). Rows whose id is null,
    or whose position is null, not finite or outside -90 <= dec <= 90, are dropped and counted
    by reason; ra is wrapped into [0, 360).
    """
    spec = column_map()[kind]
    n = src.n_rows
    cols: dict[str, pa.Array] = {}
    filled: dict[str, int] = {}
    for target, cspec in spec["columns"].items():
        ftype = schema.field(target).type
        name = resolution.sources[target]
        if name is None:
            value = resolution.implied.get(target, cspec.get("default"))
            cols[target] = (
                pa.nulls(n, ftype) if value is None else pa.array(np.full(n, value), ftype)
            )
            continue
        arr, unit = src.get(name)
        cols[target] = _typed(src, target, name, arr, unit, cspec, ftype)
        default = cspec.get("default")
        if default is not None and cols[target].null_count:
            # a column with a default (ref_epoch) is never null in the store
            filled[target] = cols[target].null_count
            cols[target] = cols[target].fill_null(pa.scalar(default, ftype))
    id_col, ra_col, dec_col = spec["id"], spec["ra"], spec["dec"]
    ok_id = cols[id_col].is_valid().to_numpy(zero_copy_only=False)
    ra = cols[ra_col].to_numpy(zero_copy_only=False).astype(np.float64)
    dec = cols[dec_col].to_numpy(zero_copy_only=False).astype(np.float64)
    has_pos = np.isfinite(ra) & np.isfinite(dec)
    in_range = np.abs(np.where(has_pos, dec, 0.0)) <= 90.0
    keep = ok_id & has_pos & in_range
    dropped = {
        "null_id": int(np.sum(~ok_id)),
        "null_position": int(np.sum(ok_id & ~has_pos)),
        "position_out_of_range": int(np.sum(ok_id & has_pos & ~in_range)),
    }
    cols[ra_col] = pa.array(np.where(has_pos, np.mod(ra, 360.0), np.nan), pa.float64())
    table = pa.table(cols).filter(pa.array(keep))
    return Mapped(table, n, dropped, resolution, filled)


def _typed(
    src: SourceTable,
    target: str,
    name: str,
    arr: pa.Array,
    unit: str | None,
    cspec: Mapping[str, Any],
    ftype: pa.DataType,
) -> pa.Array:
    """Cast one source column to its stored type and unit."""
    if pa.types.is_integer(ftype):
        if pa.types.is_floating(arr.type):
            # floats cannot hold 64-bit ids exactly: refuse rather than store rounded ids
            raise RefcatError(
                f"{src.path}: id column {name!r} is stored as floating point, "
                "which cannot hold 64-bit ids exactly; export it as an integer"
            )
        try:
            return pc.cast(arr, ftype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise RefcatError(
                f"{src.path}: id column {name!r} (for {target}) is not an "
                f"integer column ({arr.type}): {exc}"
            ) from None
    try:
        out = pc.cast(arr, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise RefcatError(
            f"{src.path}: column {name!r} (for {target}) is not numeric ({arr.type})"
        ) from None
    vals = out.to_numpy(zero_copy_only=False).astype(np.float64)
    valid = out.is_valid().to_numpy(zero_copy_only=False) & ~np.isnan(vals)
    want = cspec.get("unit")
    if unit and want in _CONVERTIBLE and unit != want:
        try:
            vals = (vals * u.Unit(unit)).to_value(u.Unit(want))
        except (ValueError, u.UnitConversionError):
            raise RefcatError(
                f"{src.path}: column {name!r} has unit {unit!r}, which cannot be "
                f"converted to {want!r} for {target}"
            ) from None
    lo_hi = cspec.get("valid_range")
    if lo_hi is not None and np.any(valid):
        bad = valid & ((vals < lo_hi[0]) | (vals > lo_hi[1]))
        if np.any(bad):
            raise RefcatError(
                f"{src.path}: column {name!r} mapped to {target} has values like "
                f"{vals[bad][0]:g}, outside {lo_hi[0]:g}..{lo_hi[1]:g} (an MJD or another "
                f"catalogue's column?). Choose the right column with --column {target}=NAME, "
                f"or --column {target}= to use the default {cspec.get('default')}."
            )
    return pa.array(vals, pa.float64(), mask=~valid).cast(ftype)
