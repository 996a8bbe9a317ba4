"""Reader snapshots: what a commit publishes so that readers never open ``catalog.duckdb``.

A writing stage holds ``catalog.duckdb`` open for its whole run, and DuckDB's file lock
lets no other process open it meanwhile. So readers never do. Instead, every commit (and
every open for writing, which may have migrated or recovered something) publishes an
immutable snapshot of the committed state:

* ``_snapshots/<id>/<table>.parquet``: every table of ``catalog.duckdb`` (the bookkeeping:
  ``files``, ``runs``, ``quarantine``, ``spectrum_versions``, ``uid_aliases``, ...), read
  through a fresh cursor, which sees committed transactions only. Tables are found in the
  database itself, so a table a new stage creates is published with no change here
  (:data:`UNPUBLISHED` names any that must not be);
* ``_snapshots/<id>/manifest.json``: the table files above with a fingerprint of each
  (columns, row count, sum of row hashes) and, per Parquet table, the committed data files
  (the ``files`` table), which are immutable once committed. A table whose fingerprint is
  that of the current snapshot is hard-linked from it instead of written again, so a commit
  of ``classify`` does not rewrite the ingest ledger;
* ``_snapshots/CURRENT``: the id of the newest snapshot, replaced atomically (write beside,
  fsync, ``os.replace``) after the snapshot folder is complete and renamed into place.

A reader reads ``CURRENT`` once, at open, and from then on only that snapshot's files and
the data files it lists: it sees the catalogue as it was after one commit, never between
two, and holds no lock. Old snapshots are removed by the writer when it publishes: the
newest :data:`KEEP` and the current one are always kept, and an older one only goes once a
newer one has existed for :data:`GRACE_S` seconds, so a reader that opened it has that long
to finish (reopening the catalogue moves it to the newest state).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from lamostdb.io.parquet import write_parquet
from lamostdb.io.sqlfiles import statement

SNAPSHOTS = "_snapshots"
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
FORMAT = 1
#: Snapshots always kept (besides the current one).
KEEP = 3
#: Seconds an older snapshot is kept after a newer one was published (readers still on it).
GRACE_S = 3600.0
#: Tables of ``catalog.duckdb`` that readers do not get (none today).
UNPUBLISHED: tuple[str, ...] = ()
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Snapshot:
    """A published snapshot as a reader sees it.

    Attributes
    ----------
    folder
        The snapshot's folder (absolute).
    tables
        Bookkeeping table name -> its Parquet file (absolute).
    files
        Parquet table (schema name, as in the ``files`` table) -> committed data files,
        relative to the catalogue root, in path order.
    """

    folder: Path
    tables: dict[str, Path]
    files: dict[str, list[str]] = field(default_factory=dict)


def snapshot_root(root: Path) -> Path:
    return root / SNAPSHOTS


def _new_id() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + uuid.uuid4().hex[:8]


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(
    con: duckdb.DuckDBPyConnection, root: Path, *, keep: int = KEEP, grace_s: float = GRACE_S
) -> str:
    """Publish the committed state of ``con`` (the writer's ``catalog.duckdb``) for readers.

    Parameters
    ----------
    con
        The writer's connection; a new cursor on it reads committed data only, so an open
        transaction on ``con`` is not published.
    root
        Catalogue folder.
    keep, grace_s
        Clean-up of older snapshots (see the module docstring).

    Returns
    -------
    str
        The id of the snapshot ``CURRENT`` now names: a new one, or the current one when
        nothing changed since it was published.
    """
    base = snapshot_root(root)
    base.mkdir(exist_ok=True)
    snap_id = _new_id()
    previous = _current_manifest(root)
    prev_fp: dict[str, str] = previous[1].get("fingerprints", {}) if previous else {}
    tmp = base / f"{_TMP_PREFIX}{snap_id}"
    cur = con.cursor()
    try:
        cur.execute("BEGIN TRANSACTION")  # one read snapshot for every table
        names = [
            str(r[0])
            for r in cur.execute(statement("snapshot.sql", "published_tables")).fetchall()
            if r[0] not in UNPUBLISHED
        ]
        fingerprints = {name: _fingerprint(cur.table(name)) for name in names}
        files: dict[str, list[str]] = {}
        for table_name, path in cur.execute(
            statement("snapshot.sql", "committed_files")
        ).fetchall():
            files.setdefault(str(table_name), []).append(str(path))
        if previous and prev_fp == fingerprints and previous[1].get("files") == files:
            cur.execute("COMMIT")
            cleanup(root, keep=keep, grace_s=grace_s)
            return str(previous[1]["snapshot"])  # nothing changed since: no new snapshot
        tmp.mkdir()
        tables: dict[str, str] = {}
        for name in names:
            fname = f"{name}.parquet"
            if not (
                previous
                and prev_fp.get(name) == fingerprints[name]
                and name in previous[1]["tables"]
                and _link(previous[0] / previous[1]["tables"][name], tmp / fname)
            ):
                write_parquet(cur.table(name).to_arrow_table(), tmp / fname, row_group_size=65536)
            tables[name] = fname
        cur.execute("COMMIT")
    finally:
        cur.close()
    manifest = {
        "format": FORMAT,
        "snapshot": snap_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
        "tables": tables,
        "fingerprints": fingerprints,
        "files": files,
    }
    _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    _fsync_path(tmp)
    os.replace(tmp, base / snap_id)
    _fsync_path(base)
    _write_synced(base / f"{CURRENT}.tmp", snap_id + "\n")
    os.replace(base / f"{CURRENT}.tmp", base / CURRENT)
    _fsync_path(base)
    cleanup(root, keep=keep, grace_s=grace_s)
    return snap_id


def _fingerprint(rel: duckdb.DuckDBPyRelation) -> str:
    """Columns, types, row count and the sum of the row hashes of a table."""
    result = rel.query("published_table", statement("snapshot.sql", "table_fingerprint"))
    if result is None:  # DuckDB returns no relation only for a statement that is not a query
        raise RuntimeError("snapshot.sql table_fingerprint must be a SELECT")
    n, hash_sum = result.fetchall()[0]
    cols = ",".join(f"{c} {t}" for c, t in zip(rel.columns, rel.types, strict=True))
    return f"{cols}|{n}|{hash_sum}"


def _current_manifest(root: Path) -> tuple[Path, dict[str, Any]] | None:
    """The current snapshot's folder and manifest; None when there is none (or unreadable)."""
    try:
        snap_id = current_id(root)
        if snap_id is None:
            return None
        folder = snapshot_root(root) / snap_id
        return folder, json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):  # nothing to reuse: every table is written
        return None


def _link(src: Path, dst: Path) -> bool:
    """Put the (immutable) ``src`` at ``dst`` too: a hard link, else a copy."""
    try:
        os.link(src, dst)
        return True
    except OSError:
        pass
    try:
        shutil.copyfile(src, dst)
        return True
    except OSError:
        return False


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def current_id(root: Path) -> str | None:
    """The id ``CURRENT`` names, or None when nothing was published yet."""
    try:
        text = (snapshot_root(root) / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def cleanup(root: Path, *, keep: int = KEEP, grace_s: float = GRACE_S) -> list[str]:
    """Remove old snapshots and debris of interrupted publishes; return the ids removed.

    Only the writer calls this (it holds ``catalog.duckdb``, so no other publish runs).
    """
    base = snapshot_root(root)
    if not base.is_dir():
        return []
    cur = current_id(root)
    for debris in base.glob(f"{_TMP_PREFIX}*"):
        shutil.rmtree(debris, ignore_errors=True)
    ids = sorted(
        p.name
        for p in base.iterdir()
        if p.is_dir() and p.name != cur and not p.name.startswith(".")
    )
    everything = sorted([*ids, *([cur] if cur else [])])
    removed: list[str] = []
    now = time.time()
    for snap_id in ids:
        newer = [s for s in everything if s > snap_id]
        if len(newer) < keep:
            continue  # among the newest `keep`
        # superseded when the next newer snapshot was published
        try:
            superseded_at = (base / newer[0]).stat().st_mtime
        except FileNotFoundError:
            continue
        if now - superseded_at < grace_s:
            continue
        shutil.rmtree(base / snap_id, ignore_errors=True)
        removed.append(snap_id)
    return removed


def load_current(root: Path, *, retries: int = 3) -> Snapshot | None:
    """The snapshot ``CURRENT`` names (read once), or None when nothing was published."""
    for _ in range(retries):
        snap_id = current_id(root)
        if snap_id is None:
            return None
        folder = snapshot_root(root) / snap_id
        try:
            manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
        except FileNotFoundError:  # removed between reading CURRENT and here: read again
            continue
        if manifest.get("format") != FORMAT:
            raise ValueError(
                f"{folder / MANIFEST}: snapshot format {manifest.get('format')} "
                f"is not {FORMAT}; upgrade lamostdb to read this catalogue"
            )
        return Snapshot(
            folder,
            {k: folder / v for k, v in manifest["tables"].items()},
            {k: list(v) for k, v in manifest["files"].items()},
        )
    raise FileNotFoundError(
        f"{snapshot_root(root) / CURRENT} names a snapshot that keeps "
        "disappearing; is another program deleting files there?"
    )
