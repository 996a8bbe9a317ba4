"""Table contracts from ``schemas/*.json``: Arrow schemas with units and descriptions.

Each JSON file names a table or view, its key and its columns (name, type, nullable,
unit, description, and optionally ``tdisp``, the FITS display format used when the
column is exported, e.g. ``F11.6`` for positions). Code builds Arrow schemas from them;
tests check that every DuckDB table and view has exactly these columns and types, so a
contract cannot drift from its SQL.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache

import pyarrow as pa

from lamostdb.resources import resource_dir

_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "list<float32>": pa.list_(pa.float32()),
    "list<float64>": pa.list_(pa.float64()),
    "list<int32>": pa.list_(pa.int32()),
    "list<int64>": pa.list_(pa.int64()),
    "list<string>": pa.list_(pa.string()),
}
_DUCKDB: dict[str, str] = {
    "string": "VARCHAR",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "list<float32>": "FLOAT[]",
    "list<float64>": "DOUBLE[]",
    "list<int32>": "INTEGER[]",
    "list<int64>": "BIGINT[]",
    "list<string>": "VARCHAR[]",
}

#: FITS display formats (Standard 4.0, table 20) allowed for each contract type family.
_TDISP_RE = {
    "string": re.compile(r"^A[1-9]\d*$"),
    "int": re.compile(r"^(I|B|O|Z)[1-9]\d*(\.\d+)?$"),
    "float": re.compile(
        r"^((F|D)[1-9]\d*\.\d+|(E|EN|ES)[1-9]\d*\.\d+(E\d+)?"
        r"|G[1-9]\d*\.\d+(E\d+)?)$"
    ),
    "boolean": re.compile(r"^L[1-9]\d*$"),
}


def _type_family(type_name: str) -> str:
    element = type_name.removeprefix("list<").removesuffix(">")
    if element.startswith("int"):
        return "int"
    if element.startswith("float"):
        return "float"
    return element


def check_tdisp(type_name: str, tdisp: str) -> None:
    """Raise ``ValueError`` unless ``tdisp`` is a FITS display format for ``type_name``.

    >>> check_tdisp("float64", "F11.6")
    >>> check_tdisp("int64", "F11.6")
    Traceback (most recent call last):
    ...
    ValueError: TDISP 'F11.6' is not a FITS display format for type int64
    """
    pattern = _TDISP_RE.get(_type_family(type_name))
    if pattern is None or not pattern.match(tdisp):
        raise ValueError(f"TDISP {tdisp!r} is not a FITS display format for type {type_name}")


@dataclass(frozen=True)
class Column:
    """One column of a table contract."""

    name: str
    type: str
    nullable: bool
    description: str
    unit: str | None = None
    tdisp: str | None = None  # FITS display format on export (TDISPn)

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW[self.type]

    @property
    def duckdb_type(self) -> str:
        return _DUCKDB[self.type]


@dataclass(frozen=True)
class TableSchema:
    """A table or view contract."""

    name: str
    kind: str
    description: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    ra_column: str = "ra"  # position columns named in the HATS properties
    dec_column: str = "dec"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        """Arrow schema with ``unit`` and ``description`` in each field's metadata."""
        fields = []
        for c in self.columns:
            meta = {"description": c.description}
            if c.unit:
                meta["unit"] = c.unit
            fields.append(pa.field(c.name, c.arrow_type, nullable=c.nullable, metadata=meta))
        return pa.schema(fields, metadata={"table": self.name})

    def empty_table(self) -> pa.Table:
        """A table of no rows with :meth:`arrow_schema` (see :func:`empty_table`)."""
        return empty_table(self.arrow_schema())


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table of no rows with ``schema``.

    Not ``schema.empty_table()``: that imports pandas (when installed, 0.2 s) on its first
    call, in the driver at every catalogue open and in every classify worker.
    """
    return pa.Table.from_batches([], schema=schema)


@cache
def load_schema(name: str) -> TableSchema:
    """Load ``schemas/<name>.json``."""
    path = resource_dir("schemas") / f"{name}.json"
    if not path.exists():
        raise KeyError(f"no schema file for table {name!r} (looked for {path})")
    return parse_schema(json.loads(path.read_text()), str(path))


def parse_schema(raw: dict, source: str) -> TableSchema:
    """A contract from its JSON object (``source`` names it in errors)."""
    for c in raw["columns"]:
        if c["type"] not in _ARROW:
            raise ValueError(f"{source}: column {c['name']} has unknown type {c['type']!r}")
        if "tdisp" in c:
            try:
                check_tdisp(c["type"], c["tdisp"])
            except ValueError as exc:
                raise ValueError(f"{source}: column {c['name']}: {exc}") from None
    cols = tuple(
        Column(
            c["name"],
            c["type"],
            bool(c.get("nullable", True)),
            c["description"],
            c.get("unit"),
            c.get("tdisp"),
        )
        for c in raw["columns"]
    )
    return TableSchema(
        raw["name"],
        raw["kind"],
        raw["description"],
        tuple(raw.get("primary_key", ())),
        cols,
        raw.get("hats_col_ra", "ra"),
        raw.get("hats_col_dec", "dec"),
    )


def all_schema_names() -> list[str]:
    """Every contract in ``schemas/``."""
    return sorted(p.stem for p in resource_dir("schemas").glob("*.json"))
