"""The refcat stage: Gaia / PS1 files in, ``gaia`` / ``ps1`` HATS Parquet leaves out.

Idempotent: a file whose bytes are in ``refcat_ledger`` for the same table is skipped
without reading. Id policy, documented in ``schemas/gaia.json`` and ``schemas/ps1.json``:
the **first delivery wins**. Within one call the first occurrence (files in the order
given, rows in file order) is kept; an id already stored is never replaced. Both kinds of
duplicate are counted per file and reported, never dropped silently. Atomic: rows are
staged under ``_staging/<run_id>/`` and committed by :func:`lamostdb.catalog.commit.commit_run`
with the ledger rows in the same DuckDB transaction.

Streaming: files are read in batches (:func:`lamostdb.refcat.readers.iter_batches`); each
batch is mapped, stripped of duplicate ids and split by partition
(:func:`lamostdb.refcat.partition.partition_rows`) into pieces spilled under
``_staging/<run_id>/spill/``; then each partition's pieces are merged into its staged file
(:func:`merge_task`, on an executor). Memory holds one batch, one partition and the ids
seen so far (8 bytes each), whatever the file size.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from lamostdb.catalog.commit import STAGING, StagedFile, commit_run, new_run_id, staging_dir
from lamostdb.catalog.hats import leaf_relpath
from lamostdb.catalog.recovery import remove_tree
from lamostdb.catalog.schema import load_schema
from lamostdb.catalog.store import Catalog
from lamostdb.execute import open_executor
from lamostdb.io.parquet import write_parquet
from lamostdb.io.sqlfiles import statement
from lamostdb.refcat.partition import RefcatConfig, merge_pieces, partition_rows
from lamostdb.refcat.readers import (
    BATCH_ROWS,
    KINDS,
    column_map,
    iter_batches,
    map_rows,
    resolve_columns,
)

# Reference rows are ~80 bytes: 512-row groups (the spectra setting) would make the
# footer dominate; 64 k rows keeps row-group statistics useful for pixel pruning.
ROW_GROUP_SIZE = 65_536


@dataclass
class FileReport:
    """What one input file contributed."""

    path: str
    sha256: str
    n_rows: int = 0
    n_added: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    n_duplicates_in_input: int = 0
    n_already_stored: int = 0
    unchanged: bool = False
    column_map: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())


@dataclass
class RefcatReport:
    """Summary of one ``ingest_refcat`` call (also stored as the run's JSON summary)."""

    run_id: str
    kind: str
    n_files: int = 0
    n_unchanged: int = 0
    n_rows_read: int = 0
    n_added: int = 0
    n_dropped: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    n_duplicates_in_input: int = 0
    n_already_stored: int = 0
    elapsed_s: float = 0.0
    files: list[FileReport] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _new_run_id() -> str:
    return new_run_id()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ingest_refcat(
    cat: Catalog,
    kind: str,
    files: Sequence[str | Path],
    *,
    columns: Mapping[str, str | None] | None = None,
    progress: bool = True,
    batch_rows: int = BATCH_ROWS,
    workers: int | None = 1,
    cluster: str | None = None,
) -> RefcatReport:
    """Ingest reference-catalogue files into table ``kind`` of ``cat`` (opened ``mode='w'``).

    Parameters
    ----------
    cat
        The catalogue.
    kind
        ``"gaia"`` or ``"ps1"``.
    files
        Parquet, CSV, ECSV, FITS, VOTable or archive-JSON files.
    columns
        Overrides of ``column_map.json`` for every file of this call: stored column ->
        source column, or ``None`` for "absent" (null, or the column's default).
    progress
        Show a progress bar.
    batch_rows
        Rows read at a time from a file that can be streamed (Parquet, CSV, ECSV): memory
        holds one batch plus 8 bytes per id of the call (duplicate detection), never a
        whole file. FITS, VOTable and JSON files are read whole.
    workers, cluster
        Where the partitions are merged into their stored files
        (:func:`lamostdb.execute.open_executor`); the default is this process.

    Raises
    ------
    RefcatError
        A file cannot be read or mapped; nothing is stored.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    t0 = time.perf_counter()
    report = RefcatReport(_new_run_id(), kind)
    paths = list(dict.fromkeys(Path(f).resolve() for f in files))
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file")
    report.n_files = len(paths)
    schema = load_schema(kind).arrow_schema()
    with cat.write_lock():
        cat.con.execute(statement("refcat.sql", "create_refcat_ledger"))
        shas = [file_sha256(p) for p in paths]
        known = {
            r[0]
            for r in cat.con.execute(
                statement("refcat.sql", "known_refcat_files"), {"shas": shas, "kind": kind}
            ).fetchall()
        }
        config = RefcatConfig(kind, cat.partition_order, report.run_id)
        spill = staging_dir(cat, report.run_id) / "spill"
        ingested: list[FileReport] = []
        seen = _SeenIds()
        n_pieces = 0
        bar = tqdm(
            total=sum(p.stat().st_size for p in paths),
            unit="B",
            unit_scale=True,
            desc=f"refcat {kind}",
            disable=not progress,
        )
        try:
            for p, sha in zip(paths, shas, strict=True):
                fr = FileReport(str(p), sha)
                report.files.append(fr)
                if sha in known or sha in seen.files:
                    fr.unchanged = True
                    report.n_unchanged += 1
                    bar.update(p.stat().st_size)
                    continue
                seen.files.add(sha)
                ingested.append(fr)
                filled: dict[str, int] = {}
                res = None
                for src in iter_batches(p, batch_rows):
                    res = res or resolve_columns(src, kind, columns)
                    m = map_rows(src, kind, res, schema)
                    fr.n_rows += m.n_rows
                    for reason, n in m.dropped.items():
                        fr.dropped[reason] = fr.dropped.get(reason, 0) + n
                    for c, n in m.filled.items():
                        filled[c] = filled.get(c, 0) + n
                    rows = _new_rows(cat, kind, m.table, fr, seen)
                    for npix, piece in partition_rows(rows, config).items():
                        write_parquet(
                            piece,
                            spill / f"Npix={npix}" / f"{n_pieces:06d}.parquet",
                            row_group_size=ROW_GROUP_SIZE,
                        )
                        n_pieces += 1
                    del m, rows
                assert res is not None  # iter_batches yields at least one batch
                fr.column_map = res.sources
                fr.notes = list(res.notes) + [
                    f"{c}: {n} null value(s) set to the default" for c, n in filled.items()
                ]
                bar.update(p.stat().st_size)
        except BaseException:
            remove_tree(staging_dir(cat, report.run_id))
            raise
        finally:
            bar.close()
        staged = _stage(cat, kind, spill, report.run_id, workers=workers, cluster=cluster)
        _summarise(report, ingested)
        report.elapsed_s = round(time.perf_counter() - t0, 3)
        ledger = _ledger_table(kind, ingested, report.run_id)

        def ledger_writes() -> None:
            if ledger.num_rows:
                cat.con.register("staged_refcat_ledger", ledger)
                cat.con.execute(statement("refcat.sql", "insert_refcat_ledger_rows"))
                cat.con.unregister("staged_refcat_ledger")

        if ingested:
            commit_run(cat, report.run_id, "refcat", staged, ledger_writes, report.as_dict())
        else:
            remove_tree(staging_dir(cat, report.run_id))
    report.elapsed_s = round(time.perf_counter() - t0, 3)
    return report


class _SeenIds:
    """Ids met so far in this call (8 bytes each) and the file contents read.

    One sorted array per batch, never merged: merging would need temporaries of the size of
    everything seen so far at every batch.
    """

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []
        self.files: set[str] = set()

    def first_here(self, ids: np.ndarray) -> np.ndarray:
        """Mask of the rows of ``ids`` whose id occurs here first (then remember them)."""
        uniq, first = np.unique(ids, return_index=True)
        fresh = np.ones(uniq.size, bool)
        for run in self.runs:
            pos = np.minimum(np.searchsorted(run, uniq), run.size - 1)
            fresh &= run[pos] != uniq
        keep = np.zeros(ids.size, bool)
        keep[first[fresh]] = True
        if fresh.any():
            self.runs.append(uniq[fresh])
        return keep


def _new_rows(cat: Catalog, kind: str, rows: pa.Table, fr: FileReport, seen: _SeenIds) -> pa.Table:
    """Drop ids met earlier in this call and ids already stored; count both in ``fr``."""
    ids = rows.column(column_map()[kind]["id"]).to_numpy()
    keep = seen.first_here(ids)
    fr.n_duplicates_in_input += int(np.sum(~keep))
    stored = _stored_ids(cat, kind, ids[keep])
    old = keep & np.isin(ids, stored)
    fr.n_already_stored += int(np.sum(old))
    keep &= ~old
    fr.n_added += int(np.sum(keep))
    return rows.filter(pa.array(keep))


def _stored_ids(cat: Catalog, kind: str, ids: np.ndarray) -> np.ndarray:
    if ids.size == 0 or not cat.table_files(kind):
        return np.empty(0, np.int64)
    cat.con.register("refcat_candidate_ids", pa.table({"id": pa.array(ids, pa.int64())}))
    try:
        rows = cat.con.execute(statement("refcat.sql", f"stored_{kind}_ids")).fetchall()
    finally:
        cat.con.unregister("refcat_candidate_ids")
    return np.array([r[0] for r in rows], np.int64)


@dataclass(frozen=True)
class MergeTask:
    """One partition of a refcat run: its spilled pieces, merged into one staged file."""

    root: str
    kind: str
    run_id: str
    norder: int
    npix: int
    index: int


def merge_task(task: MergeTask) -> StagedFile:
    """Merge the spilled pieces of one partition into its staged Parquet file."""
    root = Path(task.root)
    folder = root / STAGING / task.run_id / "spill" / f"Npix={task.npix}"
    pieces = sorted(folder.iterdir())
    table = merge_pieces([pq.read_table(f) for f in pieces], task.kind)
    leaf = leaf_relpath(task.kind, task.norder, task.npix)
    name = f"part-{task.run_id}-{task.index:05d}.parquet"
    rel = f"{STAGING}/{task.run_id}/{leaf}/{name}"
    nbytes = write_parquet(table, root / rel, row_group_size=ROW_GROUP_SIZE)
    for f in pieces:
        f.unlink()
    return StagedFile(
        task.kind, rel, f"{leaf}/{name}", task.norder, task.npix, table.num_rows, nbytes
    )


def _stage(
    cat: Catalog, kind: str, spill: Path, run_id: str, *, workers: int | None, cluster: str | None
) -> list[StagedFile]:
    """One staged Parquet file per partition pixel, merged from the spilled pieces."""
    if not spill.is_dir():
        return []
    pixels = sorted(int(d.name.partition("=")[2]) for d in spill.iterdir() if any(d.iterdir()))
    tasks = [
        MergeTask(str(cat.root), kind, run_id, cat.partition_order, npix, i)
        for i, npix in enumerate(pixels)
    ]
    staged: list[StagedFile] = []
    with open_executor(
        cluster,
        workers=workers,
        n_tasks=len(tasks),
        root=cat.root,
        staging=STAGING,
        run_id=run_id,
        preload="lamostdb.refcat.stage",
    ) as ex:
        for _, sf in ex.run(merge_task, tasks):
            if sf.n_rows:
                staged.append(sf)
    remove_tree(spill)
    return sorted(staged, key=lambda f: f.final)


def _summarise(report: RefcatReport, files: list[FileReport]) -> None:
    for fr in files:
        report.n_rows_read += fr.n_rows
        report.n_added += fr.n_added
        report.n_duplicates_in_input += fr.n_duplicates_in_input
        report.n_already_stored += fr.n_already_stored
        for reason, n in fr.dropped.items():
            report.dropped[reason] = report.dropped.get(reason, 0) + n
    report.n_dropped = sum(report.dropped.values())


def _ledger_table(kind: str, files: list[FileReport], run_id: str) -> pa.Table:
    rows = [
        {
            "sha256": fr.sha256,
            "kind": kind,
            "path": fr.path,
            "size_bytes": Path(fr.path).stat().st_size,
            "n_rows": fr.n_rows,
            "n_added": fr.n_added,
            "n_dropped": fr.n_dropped,
            "n_duplicates": fr.n_duplicates_in_input + fr.n_already_stored,
            "column_map": json.dumps(fr.column_map, sort_keys=True),
            "ingest_run": run_id,
        }
        for fr in files
    ]
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("sha256", pa.string()),
                ("kind", pa.string()),
                ("path", pa.string()),
                ("size_bytes", pa.int64()),
                ("n_rows", pa.int64()),
                ("n_added", pa.int64()),
                ("n_dropped", pa.int64()),
                ("n_duplicates", pa.int64()),
                ("column_map", pa.string()),
                ("ingest_run", pa.string()),
            ]
        ),
    )
