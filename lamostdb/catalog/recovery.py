"""Recovery of a writer's catalogue after a crash (the "recover" step of the commit protocol).

It sits below :mod:`lamostdb.catalog.store` (which runs it when a writer opens the catalogue)
and :mod:`lamostdb.catalog.commit` (which re-exports it), so the import arrows point one way:
it needs of the catalogue only its folder, its ledger connection and the metadata writer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import duckdb

from lamostdb.catalog.retire import move_retired
from lamostdb.catalog.workers import end_leftover_workers
from lamostdb.io.sqlfiles import statement

#: Folder under the catalogue root where stages write their files before the commit.
STAGING = "_staging"


class WritableCatalog(Protocol):
    """What :func:`recover` uses of a :class:`lamostdb.catalog.store.Catalog` opened for writing."""

    root: Path

    @property
    def con(self) -> duckdb.DuckDBPyConnection: ...

    def write_hats_metadata(self, table: str) -> None: ...


def recover(cat: WritableCatalog) -> list[str]:
    """Roll back runs that died while committing; clear staging debris.

    Returns the ids of the runs rolled back. Call with the write lock held.
    """
    con = cat.con
    rolled: list[str] = []
    touched_tables: set[str] = set()
    for run_id, moves_json in con.execute(statement("ledger.sql", "unfinished_runs")).fetchall():
        for _staged, final in json.loads(moves_json):
            path = cat.root / final
            if path.exists():
                path.unlink()
            touched_tables.add(final.split("/", 1)[0])
        con.execute(statement("ledger.sql", "mark_rolled_back"), {"run_id": run_id})
        rolled.append(str(run_id))
    for table in sorted(touched_tables):
        cat.write_hats_metadata(table)
    # a replacing run (compact) that died after its commit: finish moving out what it retired
    move_retired(cat.root, con)
    # workers of a killed run may still be writing there: end them first (issue 11)
    end_leftover_workers(cat.root / STAGING)
    remove_tree(cat.root / STAGING)
    return rolled


def remove_tree(path: Path) -> None:
    """Remove a folder and everything in it (nothing when it does not exist)."""
    if not path.exists():
        return
    for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if child.is_dir():
            child.rmdir()
        else:
            child.unlink()
    path.rmdir()
