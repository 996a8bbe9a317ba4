"""Atomic commits of a stage's new files, and recovery after a crash.

Protocol (DESIGN.md section 3, "Writes are atomic"):

1. the stage writes its Parquet files under ``_staging/<run_id>/`` (invisible);
2. transaction 1 records the run as ``committing`` with the list of moves;
3. each staged file is renamed to its final leaf (rename is atomic on one file system);
4. the HATS metadata files are rewritten (each by write-then-rename);
5. transaction 2 adds the files, ledger rows and versions and marks the run ``committed``;
6. the committed state is published for readers (:mod:`lamostdb.catalog.snapshot`).

A crash before 2 leaves only staging debris. A crash between 2 and the end of 5 leaves a
``committing`` run: :func:`recover` removes its moved files and rewrites the metadata
from the committed file list, so the catalogue is exactly as before the run. After 5
the run is in. A run may also *replace* committed files (``compact``: ``replaces=``): they
leave the ``files`` table in transaction 2 and are moved out of their leaves after it
(:mod:`lamostdb.catalog.retire`). Readers only ever read files listed in the committed
``files`` table, as the last published snapshot lists them; a crash between 5 and 6 leaves
readers on the state before the run until the next writer opens the catalogue (opening for
writing publishes).

``LAMOSTDB_FAULT=<point>`` makes the process die at a named point (``os._exit``), which
the tests use to check each window; ``LAMOSTDB_FAULT=<stage>:<point>`` (``classify:moved``)
only in the commit of that stage, so that a multi-stage command (``lamostdb nightly``) can be
stopped inside any of its stages. ``LAMOSTDB_FAULT_ACTION`` says how: ``exit`` (default,
``os._exit(70)``), ``kill`` (SIGKILL to itself) or ``raise`` (:class:`FaultInjected`, for
in-process tests of a stage that fails with an exception).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lamostdb.catalog.leaves import LeafSet, align_staged
from lamostdb.catalog.migrate import upgrade_table_files
from lamostdb.catalog.recovery import STAGING, recover
from lamostdb.catalog.recovery import remove_tree as _remove_tree
from lamostdb.catalog.retire import move_retired, record_retired
from lamostdb.io.sqlfiles import statement
from lamostdb.version import VERSION

if TYPE_CHECKING:
    from lamostdb.catalog.store import Catalog

__all__ = [
    "STAGING",
    "FaultInjected",
    "StagedFile",
    "commit_run",
    "fault",
    "new_run_id",
    "recover",
    "staging_dir",
]

FAULT_POINTS = ("staged", "intent", "first_move", "moved", "metadata", "committed")
#: Only in a run that replaces files (compact): after the first replaced file is retired.
RETIRE_FAULT_POINT = "retiring"


def new_run_id() -> str:
    """A run id that sorts in start order (UTC, microseconds) and is unique."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + uuid.uuid4().hex[:8]


class FaultInjected(RuntimeError):
    """Raised at a fault point when ``LAMOSTDB_FAULT_ACTION=raise`` (tests only)."""


def fault(point: str, stage: str | None = None) -> None:
    """Stop here if ``LAMOSTDB_FAULT`` names ``point`` or ``stage:point`` (crash tests only).

    Parameters
    ----------
    point
        Name of the place in the code.
    stage
        The stage running it, if any (``LAMOSTDB_FAULT=<stage>:<point>`` matches only there).
    """
    wanted = os.environ.get("LAMOSTDB_FAULT")
    if not wanted or (wanted != point and (stage is None or wanted != f"{stage}:{point}")):
        return
    action = os.environ.get("LAMOSTDB_FAULT_ACTION", "exit")
    if action == "raise":
        raise FaultInjected(f"fault injected at {wanted}")
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(70)


@dataclass(frozen=True)
class StagedFile:
    """A Parquet file written by a stage, waiting to be committed."""

    table: str
    staged: str  # relative to the catalogue root
    final: str  # relative to the catalogue root
    norder: int
    npix: int
    n_rows: int
    n_bytes: int


def staging_dir(cat: Catalog, run_id: str) -> Path:
    return cat.root / STAGING / run_id


def commit_run(
    cat: Catalog,
    run_id: str,
    stage: str,
    files: Sequence[StagedFile],
    ledger_writes: Callable[[], None],
    summary: dict[str, object],
    *,
    replaces: Sequence[str] = (),
) -> None:
    """Move ``files`` into place and run ``ledger_writes`` in the committing transaction.

    ``files`` are first placed in their table's leaves (:func:`~lamostdb.catalog.leaves.
    align_staged`: a table compacted to leaves of other orders gets no overlapping leaf).
    ``replaces`` names committed files that ``files`` replace (``compact``): they leave the
    ``files`` table in the same transaction and are retired after it
    (:mod:`lamostdb.catalog.retire`).
    """
    con = cat.con
    replaced = set(replaces)
    files = align_staged(
        cat.root,
        files,
        {
            t: LeafSet((f.norder, f.npix) for f in cat.table_files(t) if f.path not in replaced)
            for t in sorted({f.table for f in files})
        },
    )
    moves = [[f.staged, f.final] for f in files]
    for table in sorted({f.table for f in files}):  # older-schema files join the contract
        upgrade_table_files(cat, table)
    fault("staged", stage)
    con.execute("BEGIN TRANSACTION")
    con.execute(
        statement("ledger.sql", "insert_run"),
        {"run_id": run_id, "stage": stage, "moves": json.dumps(moves), "version": VERSION},
    )
    con.execute("COMMIT")
    fault("intent", stage)
    for i, f in enumerate(files):
        final = cat.root / f.final
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(cat.root / f.staged, final)
        if i == 0:
            fault("first_move", stage)
    fault("moved", stage)
    con.execute("BEGIN TRANSACTION")
    try:
        for f in files:
            con.execute(
                statement("ledger.sql", "insert_file"),
                {
                    "table_name": f.table,
                    "path": f.final,
                    "norder": f.norder,
                    "npix": f.npix,
                    "n_rows": f.n_rows,
                    "n_bytes": f.n_bytes,
                    "run_id": run_id,
                },
            )
        if replaced:
            record_retired(con, sorted(replaced), run_id)
        # metadata is rewritten from the file list as it will be after the commit
        for table in sorted({f.table for f in files} | {p.split("/", 1)[0] for p in replaced}):
            cat.write_hats_metadata(table)
        fault("metadata", stage)
        ledger_writes()
        con.execute(
            statement("ledger.sql", "finish_run"),
            {"run_id": run_id, "summary": json.dumps(summary, sort_keys=True)},
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    cat.publish()  # readers move to the new state: all of it at once
    fault("committed", stage)
    if replaced:  # out of the leaf folders, where lsdb would read them beside their successors
        move_retired(cat.root, con, on_first=lambda: fault(RETIRE_FAULT_POINT, stage))
    _remove_tree(staging_dir(cat, run_id))
    try:  # the staging root too, when no other run is staging
        (cat.root / STAGING).rmdir()
    except OSError:
        pass
    cat.refresh_views()
