"""Retired files: committed files that a later run replaced, kept while readers may read them.

A run that *replaces* files (``lamostdb compact``) takes them out of the ``files`` table
and records them in ``retired_files``, in its committing transaction. After the commit
they are moved out of their leaf folders to ``_retired/<their path>`` (one rename each),
so that ``lsdb``/``hats``, which read every Parquet file of a leaf folder, never see them
beside the files that replace them, while a reader whose snapshot predates the commit still
finds them there (:func:`resolve`). A crash between the commit and the last move leaves
some in place: the next writer's open (:func:`lamostdb.catalog.recovery.recover`) finishes
the moves. :func:`collect_garbage` removes those no published snapshot lists any more
(snapshots are kept :data:`~lamostdb.catalog.snapshot.GRACE_S` after they are superseded).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import duckdb

from lamostdb.catalog import snapshot
from lamostdb.io.sqlfiles import statement

#: Folder under the catalogue root where retired files wait for their removal.
RETIRED = "_retired"


def resolve(root: Path, path: str) -> Path:
    """Where the committed or retired file ``path`` (relative to ``root``) is now."""
    here = root / path
    if here.exists():
        return here
    moved = root / RETIRED / path
    return moved if moved.exists() else here


def record_retired(con: duckdb.DuckDBPyConnection, paths: Sequence[str], run_id: str) -> None:
    """Move ``paths`` from ``files`` to ``retired_files`` (inside the run's transaction)."""
    params = {"paths": list(paths)}
    con.execute(statement("compact.sql", "record_retired"), {**params, "run_id": run_id})
    con.execute(statement("compact.sql", "drop_files"), params)


def _pending(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [str(r[0]) for r in con.execute(statement("compact.sql", "retired_paths")).fetchall()]


def move_retired(root: Path, con: duckdb.DuckDBPyConnection, on_first: object = None) -> int:
    """Move every retired file still in its leaf folder to ``_retired/``; return how many.

    ``on_first`` (a callable, crash tests) is called after the first move.
    """
    n = 0
    for path in _pending(con):
        src = root / path
        if not src.exists():
            continue
        dst = root / RETIRED / path
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        n += 1
        if n == 1 and callable(on_first):
            on_first()
    return n


def _listed_by_snapshots(root: Path) -> set[str]:
    """Data files any published snapshot on disk lists (a reader may be on any of them)."""
    listed: set[str] = set()
    base = snapshot.snapshot_root(root)
    if not base.is_dir():
        return listed
    for folder in base.iterdir():
        manifest = folder / snapshot.MANIFEST
        if not folder.is_dir() or folder.name.startswith(".") or not manifest.exists():
            continue
        for paths in json.loads(manifest.read_text()).get("files", {}).values():
            listed.update(paths)
    return listed


def collect_garbage(
    root: Path,
    con: duckdb.DuckDBPyConnection,
    *,
    keep: int = snapshot.KEEP,
    grace_s: float = snapshot.GRACE_S,
) -> int:
    """Remove retired files no snapshot lists any more; return how many were removed.

    Old snapshots are cleaned up first (``keep``, ``grace_s``: as
    :func:`lamostdb.catalog.snapshot.cleanup`). Call with the write lock held.
    """
    snapshot.cleanup(root, keep=keep, grace_s=grace_s)
    listed = _listed_by_snapshots(root)
    n = 0
    for path in _pending(con):
        if path in listed:
            continue
        for where in (root / RETIRED / path, root / path):
            where.unlink(missing_ok=True)
        con.execute(statement("compact.sql", "forget_retired"), {"path": path})
        n += 1
    _prune_empty(root / RETIRED)
    return n


def _prune_empty(folder: Path) -> None:
    """Remove empty folders under (and including) ``folder``."""
    if not folder.is_dir():
        return
    for sub in sorted(
        (p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        try:
            sub.rmdir()
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass
