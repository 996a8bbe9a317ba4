"""Upgrade committed Parquet files to the current schema contract of their table.

A new engine version may add columns to ``results`` and ``candidates`` (0.2.0 added the
confidence and ZWARNING columns). Files written by an older version stay valid history, but
one HATS table needs one schema (its ``_metadata`` joins the row groups of every file), so
before a run commits into a table, each committed file of that table that lacks contract
columns is rewritten with those columns added as nulls: same rows, same values, same path.

Each rewrite is atomic (write beside, ``os.replace``); a crash between rewrites leaves some
files upgraded and some not, which readers accept (the tables are registered with
``union_by_name``) and the next commit finishes.

The scan reads one footer per file, so it runs once per contract, not at every commit: when
every file of a table has the contract's columns, the contract's fingerprint is recorded in
``catalog_meta`` (``schema_checked:<table>``), and later commits skip the scan until the
contract changes (stages write their files with the contract's schema). On 10^5 files the
scan alone was 2 minutes per commit (``benchmarks/plan_full_release.py``: 1.1 ms per file).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lamostdb.catalog.schema import load_schema
from lamostdb.io.parquet import write_parquet
from lamostdb.io.sqlfiles import statement


def contract_mark(schema: pa.Schema) -> str:
    """Fingerprint of a contract's columns (names and types, in order)."""
    text = ";".join(f"{f.name}:{f.type}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def upgrade_table_files(cat, table: str) -> int:  # noqa: ANN001 (Catalog; import cycle)
    """Rewrite the committed files of ``table`` that lack contract columns; return how many.

    Nothing is read when the table was already checked against this contract.
    """
    target = load_schema(table).arrow_schema()
    key, mark = f"schema_checked:{table}", contract_mark(target)
    row = cat.con.execute(statement("ledger.sql", "get_meta"), {"key": key}).fetchone()
    if row is not None and row[0] == mark:
        return 0
    n = 0
    for f in cat.table_files(table):
        path = cat.root / f.path
        have = pq.read_schema(path)
        missing = [fld for fld in target if fld.name not in have.names]
        if not missing:
            continue
        old = pq.read_table(path)
        cols = {name: old.column(name) for name in old.column_names}
        for fld in missing:
            cols[fld.name] = pa.nulls(old.num_rows, type=fld.type)
        extra = [c for c in old.column_names if c not in target.names]
        fields = list(target) + [old.schema.field(c) for c in extra]
        new = pa.Table.from_arrays(
            [cols[fl.name] for fl in fields], schema=pa.schema(fields, metadata=target.metadata)
        )
        tmp = Path(str(path) + ".upgrade")
        nbytes = write_parquet(new, tmp)
        os.replace(tmp, path)
        cat.con.execute(
            statement("ledger.sql", "update_file_bytes"), {"n_bytes": nbytes, "path": f.path}
        )
        n += 1
    cat.con.execute(statement("ledger.sql", "set_meta"), {"key": key, "value": mark})
    return n
