"""Registering a catalogue's tables and views on a DuckDB connection (writers and readers).

Tables are *registered* (no CREATE VIEW in a database file), so a read-only or in-memory
connection can hold them too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from lamostdb.catalog.schema import load_schema
from lamostdb.io.sqlfiles import load_sql, statement
from lamostdb.resources import resource_dir

_DDL_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS\s+(\w+)", re.IGNORECASE)


def register_parquet(
    con: duckdb.DuckDBPyConnection, name: str, schema_name: str, files: Sequence[str]
) -> None:
    """Register ``name`` on ``con`` over ``files`` (no CREATE VIEW: works read-only too)."""
    if files:
        # union_by_name: files of an older schema read with nulls in the newer columns;
        # contract columns no file has yet (a catalogue not upgraded since) read as nulls
        rel = con.read_parquet(list(files), union_by_name=True)
        contract = con.from_arrow(load_schema(schema_name).empty_table())
        types = dict(zip(contract.columns, contract.types, strict=True))
        missing = [c for c in contract.columns if c not in rel.columns]
        if missing:
            rel = rel.project(
                ", ".join(["*"] + [f'CAST(NULL AS {types[c]}) AS "{c}"' for c in missing])
            )
        register(con, name, rel)
    else:
        register(con, name, load_schema(schema_name).empty_table())


def register(con: duckdb.DuckDBPyConnection, name: str, obj: object) -> None:
    """Register ``obj`` (relation, Arrow table) as ``name``, replacing what was there."""
    try:
        con.unregister(name)
    except duckdb.Error:
        pass
    con.register(name, obj)


def bookkeeping_ddl(statements: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(table, DDL) of the ``(sql file, statement name)`` pairs that create a table."""
    out = []
    for fname, name in statements:
        ddl = statement(fname, name)
        m = _DDL_TABLE.search(ddl)
        if m:
            out.append((m.group(1), ddl))
    return out


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    """The views of ``sql/views.sql``, then each stage's ``views_<stage>.sql`` in name order."""
    view_files = ["views.sql"] + sorted(p.name for p in resource_dir("sql").glob("views_*.sql"))
    for fname in view_files:
        for stmt in load_sql(fname).values():
            con.execute(stmt)


def legacy_tables(db: Path) -> dict[str, pa.Table]:
    """Every table of ``db`` (a catalogue with no published snapshot yet), read briefly.

    Raises ``duckdb.IOException`` when a writer holds ``db``.
    """
    src = duckdb.connect(str(db), read_only=True)
    try:
        names = [
            r[0] for r in src.execute(statement("snapshot.sql", "published_tables")).fetchall()
        ]
        return {n: src.table(n).to_arrow_table() for n in names}
    finally:
        src.close()
