"""Table contracts from ``schemas/*.json``: Arrow schemas with units and descriptions.

Each JSON file names a table or view, its key and its columns (name, type, nullable,
unit, description). Code builds Arrow schemas from them; tests check that every
DuckDB table and view has exactly these columns and types, so a contract cannot
drift from its SQL.
"""

from __future__ import annotations

import json
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


@dataclass(frozen=True)
class Column:
    """One column of a table contract."""

    name: str
    type: str
    nullable: bool
    description: str
    unit: str | None = None

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


@cache
def load_schema(name: str) -> TableSchema:
    """Load ``schemas/<name>.json``."""
    path = resource_dir("schemas") / f"{name}.json"
    if not path.exists():
        raise KeyError(f"no schema file for table {name!r} (looked for {path})")
    raw = json.loads(path.read_text())
    for c in raw["columns"]:
        if c["type"] not in _ARROW:
            raise ValueError(f"{path}: column {c['name']} has unknown type {c['type']!r}")
    cols = tuple(Column(c["name"], c["type"], bool(c.get("nullable", True)), c["description"],
                        c.get("unit")) for c in raw["columns"])
    return TableSchema(raw["name"], raw["kind"], raw["description"],
                       tuple(raw.get("primary_key", ())), cols,
                       raw.get("hats_col_ra", "ra"), raw.get("hats_col_dec", "dec"))


def all_schema_names() -> list[str]:
    """Every contract in ``schemas/``."""
    return sorted(p.stem for p in resource_dir("schemas").glob("*.json"))
