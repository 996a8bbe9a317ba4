"""The ingest stage: FITS files in, ``spectra`` Parquet leaves and ledger rows out.

Incremental and idempotent: files whose path, size and mtime are in the ledger are
skipped without reading; files whose bytes are already in (under another path, or
twice in one call) add nothing. Atomic: see :mod:`lamostdb.catalog.commit`.
Unreadable files go to ``quarantine`` with the reason, and the rest goes on.

Re-delivery policy: a specid delivered again with different bytes is stored as a new
version; it becomes the current one (the row the ``spectra`` view shows) unless its
data release (``DATA_V`` "LAMOST DRn") is older than the current version's. Superseded
versions stay in ``spectra_history``; ``spectrum_versions`` records who replaced whom.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import resource
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from lamostdb.catalog import ledger
from lamostdb.catalog.commit import STAGING, StagedFile, commit_run, fault, new_run_id
from lamostdb.catalog.hats import leaf_relpath
from lamostdb.catalog.ledger import FileOutcome, IngestReport, release_rank
from lamostdb.catalog.store import Catalog
from lamostdb.execute import ExecutorSummary, LocalExecutor, WorkerLost, open_executor
from lamostdb.ingest.partition import spectra_partitions
from lamostdb.io.bounded import read_bounded, storable_path
from lamostdb.io.parquet import SPECTRA_ENCODING, write_parquet
from lamostdb.io.record import SpectrumReadError, SpectrumRecord
from lamostdb.io.spectrum import parse_spectrum_bytes
from lamostdb.io.sqlfiles import statement
from lamostdb.io.validate import DEFAULT_LIMITS, ReadLimits

SPECTRUM_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fit.gz", ".fts")
_PRELOAD = "lamostdb.ingest.stage"


def discover(
    inputs: Iterable[str | Path], unreadable: list[tuple[str, str]] | None = None
) -> list[Path]:
    """Expand files, folders (recursively) and glob patterns into spectrum files.

    Folders that cannot be listed go to ``unreadable`` as ``(folder, reason)``; with
    ``unreadable=None`` the first one raises ``PermissionError``.
    """
    return ledger.discover(inputs, SPECTRUM_SUFFIXES, unreadable)


@dataclass(frozen=True)
class _ChunkTask:
    index: int
    paths: tuple[str, ...]
    root: str
    run_id: str
    order: int
    limits: ReadLimits = DEFAULT_LIMITS


def _failed(
    name: str, path: str, size: int | None, mtime: int, raw: bytes, exc: BaseException
) -> FileOutcome:
    """The quarantine outcome of a file whose reading raised ``exc`` (any kind)."""
    if isinstance(exc, SpectrumReadError):
        reason = exc.reason
    else:  # a reader bug or a case nobody foresaw: this file only, and say so
        reason = (
            f"unexpected {type(exc).__name__} while reading: {exc}; the file is not "
            "stored. Report it (with the file) to the lamostdb maintainers"
        )
    if name != path:
        reason += (
            " [the file name is not valid UTF-8: the path is stored with \\x escapes "
            "for its undecodable bytes]"
        )
    # the content's checksum when it is known (an empty file is known to be empty), else a
    # stand-in per path: a file refused before reading, or one that could not be opened
    known = bool(raw) or size == 0
    sha = hashlib.sha256(raw if known else f"unreadable:{name}".encode()).hexdigest()
    return FileOutcome(name, size or 0, mtime, sha, None, None, None, None, reason or "unreadable")


def _read_one(path: str, limits: ReadLimits) -> tuple[FileOutcome, SpectrumRecord | None]:
    """Read, check and validate one file; never raises (a failure is a quarantine outcome)."""
    name = storable_path(path)
    size: int | None = None  # unknown until stat succeeds
    mtime, raw = 0, b""
    fault(f"read:{os.path.basename(name)}", "ingest")  # crash tests: a reader that dies here
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime_ns
        raw, data = read_bounded(path, limits, name)
        rec = parse_spectrum_bytes(raw, data, name, limits=limits)
    except Exception as exc:  # per-file isolation: nothing here stops the run
        return _failed(name, path, size, mtime, raw, exc), None
    return FileOutcome(
        name,
        st.st_size,
        mtime,
        rec.source_sha256,
        rec.specid,
        rec.obsid,
        rec.lmjd,
        rec.data_v,
        None,
    ), rec


def _process_chunk(task: _ChunkTask) -> tuple[list[FileOutcome], list[StagedFile], float]:
    """Task function: read one chunk of files, partition the rows, write them staged.

    Per-file isolation: whatever goes wrong with one file (damage, caps, a reader bug,
    a value the table cannot hold) becomes its quarantine outcome; the others go on.
    """
    outcomes: list[FileOutcome] = []
    records: list[SpectrumRecord] = []
    where: list[int] = []  # outcome index of each record
    for path in task.paths:
        outcome, rec = _read_one(path, task.limits)
        if rec is not None:
            records.append(rec)
            where.append(len(outcomes))
        outcomes.append(outcome)
    staged: list[StagedFile] = []
    parts = spectra_partitions(records, run_id=task.run_id, order=task.order)
    for i, reason in parts.refused.items():
        k = where[i]
        outcomes[k] = dataclasses.replace(
            outcomes[k], specid=None, obsid=None, night=None, data_v=None, reason=reason
        )
    for p, part in parts.tables.items():
        leaf = leaf_relpath("spectra", task.order, p)
        name = f"part-{task.run_id}-{task.index:05d}.parquet"
        staged_rel = f"{STAGING}/{task.run_id}/{leaf}/{name}"
        nbytes = write_parquet(part, Path(task.root) / staged_rel, **SPECTRA_ENCODING)
        staged.append(
            StagedFile(
                "spectra", staged_rel, f"{leaf}/{name}", task.order, p, part.num_rows, nbytes
            )
        )
    return outcomes, staged, _peak_rss_mb()


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (MB): ``VmHWM`` where Linux has it.

    ``ru_maxrss`` survives ``exec``, so a process started from a big one reports the
    parent's size; ``VmHWM`` belongs to this process's own memory map.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _chunks(paths: Sequence[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(paths[i : i + size]) for i in range(0, len(paths), size)]


def ingest(
    catalog: Catalog,
    inputs: Iterable[str | Path],
    *,
    workers: int | None = None,
    chunk_size: int = 500,
    progress: bool = True,
    limits: ReadLimits = DEFAULT_LIMITS,
    cluster: str | None = None,
) -> IngestReport:
    """Ingest spectrum files into ``catalog`` (opened with ``mode='w'``).

    Parameters
    ----------
    catalog
        The catalogue.
    inputs
        Files, folders (searched recursively for ``*.fits[.gz]``) and glob patterns.
    workers
        Reader processes (default: all cores); 1 runs in this process.
    cluster
        ``None`` (the local pool), ``"local:N"`` or ``"tcp://HOST:PORT"`` (Dask): see
        :mod:`lamostdb.execute`. Workers must see the catalogue folder and the inputs.
    chunk_size
        Files per work unit; bounds memory (about 0.1 MB per spectrum per worker).
    progress
        Show a progress bar.
    limits
        Size caps and validation thresholds applied to every file; a file beyond them
        is quarantined with the reason (:class:`~lamostdb.io.validate.ReadLimits`).
    """
    t0 = time.perf_counter()
    run_id = new_run_id()
    report = IngestReport(run_id)
    with catalog.write_lock():
        files = [str(p) for p in discover(inputs, report.unreadable_dirs)]
        report.n_inputs = len(files)
        todo, stats, prior = ledger.skip_unchanged(catalog, files, report)
        outcomes, staged, report.peak_worker_rss_mb, report.executor = _read_all(
            catalog, todo, run_id, workers, chunk_size, progress, limits, cluster
        )
        report.bytes_read = sum(o.size_bytes for o in outcomes)
        fresh, quarantined, restore, drop, paths = ledger.sort_outcomes(
            catalog, outcomes, stats, prior, run_id, report
        )
        lgr, versions, superseded = _decide(catalog, fresh, run_id, report)
        quarantine = _quarantine_table(quarantined, run_id)
        paths = pa.concat_tables([paths, ledger.fresh_path_rows(fresh, stats, run_id)])
        restored = ledger.restored_table(restore, run_id)
        cleared = ledger.cleared_table(fresh, restore, paths)
        if cleared.num_rows:
            report.n_quarantine_cleared = len(
                catalog.con.execute(
                    statement("ledger.sql", "quarantine_to_clear"),
                    {
                        "paths": cleared.column("path").to_pylist(),
                        "shas": cleared.column("sha256").to_pylist(),
                    },
                ).fetchall()
            )
        staged = _drop_rows(catalog, staged, drop)
        report.n_rows_written = sum(s.n_rows for s in staged)
        report.elapsed_s = round(time.perf_counter() - t0, 3)

        def ledger_writes() -> None:
            con = catalog.con
            for view, tbl, stmt in (
                ("staged_ledger", lgr, "insert_ledger_rows"),
                ("staged_versions", versions, "insert_versions"),
                ("staged_superseded", superseded, "supersede_versions"),
                ("staged_restored", restored, "restore_versions"),
                ("staged_cleared", cleared, "clear_quarantine"),
                ("staged_quarantine", quarantine, "insert_quarantine_rows"),
                ("staged_paths", paths, "upsert_paths"),
            ):
                if tbl.num_rows:
                    con.register(view, tbl)
                    con.execute(statement("ledger.sql", stmt))

        if staged or paths.num_rows or quarantine.num_rows:
            commit_run(catalog, run_id, "ingest", staged, ledger_writes, report.as_dict())
        else:
            fault("staged", "ingest")
    report.elapsed_s = round(time.perf_counter() - t0, 3)
    return report


def _read_all(
    catalog: Catalog,
    files: list[str],
    run_id: str,
    workers: int | None,
    chunk_size: int,
    progress: bool,
    limits: ReadLimits = DEFAULT_LIMITS,
    cluster: str | None = None,
) -> tuple[list[FileOutcome], list[StagedFile], float, dict[str, object]]:
    """Read every file on an executor (see :func:`_read_tasks`).

    Returns the outcomes, the staged files, the workers' peak RSS (MB) and where the
    tasks ran (:meth:`lamostdb.execute.Executor.summary`).
    """
    tasks = [
        _ChunkTask(i, c, str(catalog.root), run_id, catalog.partition_order, limits)
        for i, c in enumerate(_chunks(files, chunk_size))
    ]
    outcomes: list[FileOutcome] = []
    staged: list[StagedFile] = []
    peak = 0.0
    bar = tqdm(total=len(files), unit="file", desc="ingest", disable=not progress or not files)

    def take(result: tuple[list[FileOutcome], list[StagedFile], float]) -> None:
        nonlocal peak
        out, st, rss = result
        outcomes.extend(out)
        staged.extend(st)
        peak = max(peak, rss)
        bar.update(len(out))

    summaries: list[ExecutorSummary] = []
    try:
        _read_tasks(catalog, run_id, tasks, workers, cluster, chunk_size, take, outcomes, summaries)
    finally:
        bar.close()
    outcomes.sort(key=lambda o: o.path)
    staged.sort(key=lambda s: s.final)
    return outcomes, staged, peak, _merged(summaries)


def _merged(summaries: list[ExecutorSummary]) -> dict[str, object]:
    if not summaries:
        return {}
    tasks: dict[str, int] = defaultdict(int)
    for s in summaries:
        for w, n in s.tasks_per_worker.items():
            tasks[w] += n
    first = summaries[0]
    return ExecutorSummary(
        first.cluster, first.n_workers, dict(tasks), sum(s.retries for s in summaries)
    ).as_dict()


def _read_tasks(
    catalog: Catalog,
    run_id: str,
    tasks: list[_ChunkTask],
    workers: int | None,
    cluster: str | None,
    chunk_size: int,
    take: Callable[[tuple], None],
    outcomes: list[FileOutcome],
    summaries: list[ExecutorSummary],
) -> None:
    """Run ``tasks``, surviving worker processes that die.

    A worker that dies (a signal, the OOM killer) must not stop the night or lose files:
    the chunks left unfinished are read again one file per task on ONE local worker
    process, in order, so the first unfinished file after the next death is the one that
    kills its reader. It is quarantined with that reason, and the rest go on in chunks on
    the chosen executor again. (A Dask cluster first retries a lost task on other workers.)
    """
    next_index = len(tasks)
    isolate = False  # one file per task, one local worker: after a death, to find the file
    while tasks:
        done: set[int] = set()
        lost: WorkerLost | None = None
        ex = (
            LocalExecutor(1, root=catalog.root, staging=STAGING, run_id=run_id, preload=_PRELOAD)
            if isolate
            else open_executor(
                cluster,
                workers=workers,
                n_tasks=len(tasks),
                root=catalog.root,
                staging=STAGING,
                run_id=run_id,
                preload=_PRELOAD,
            )
        )
        with ex:
            try:
                for t, result in ex.run(_process_chunk, tasks):
                    take(result)
                    done.add(t.index)
            except WorkerLost as exc:
                lost = exc
            summaries.append(ex.summary())
        left = [t for t in tasks if t.index not in done]
        if lost is None:
            return
        if isolate:  # in order on one worker: the first unfinished file killed it
            culprit, rest = left[0], left[1:]
            outcomes.append(_died(culprit.paths[0]))
            paths = [p for t in rest for p in t.paths]
            isolate = False
        else:
            paths = [p for t in left for p in t.paths]
            isolate = True
        size = 1 if isolate else chunk_size
        tasks = []
        for c in _chunks(paths, size):
            tasks.append(dataclasses.replace(left[0], index=next_index, paths=c))
            next_index += 1


def _died(path: str) -> FileOutcome:
    """The quarantine outcome of a file whose reading killed the worker process."""
    name = storable_path(path)
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime = 0, 0
    reason = (
        "the reading process died (killed by a signal, or out of memory) while reading "
        "this file, so it was not stored; the other files were read. Report it (with "
        "the file) to the lamostdb maintainers"
    )
    sha = ledger.unreadable_sha(name)  # the bytes are not read again here
    return FileOutcome(name, size, mtime, sha, None, None, None, None, reason)


def _decide(
    catalog: Catalog, fresh: list[FileOutcome], run_id: str, report: IngestReport
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Ledger rows, versions and supersessions of the fresh contents of one run."""
    con = catalog.con
    specids = sorted({o.specid for o in fresh if o.specid})
    existing: dict[str, list[tuple[int, str, str | None, bool]]] = defaultdict(list)
    if specids:
        for sid, ver, sha, dv, cur in con.execute(
            statement("ledger.sql", "versions_of"), {"specids": specids}
        ).fetchall():
            existing[sid].append((int(ver), sha, dv, bool(cur)))
    by_spec: dict[str, list[FileOutcome]] = defaultdict(list)
    for o in fresh:
        by_spec[o.specid or ""].append(o)
    ledger_rows: list[dict[str, object]] = []
    version_rows: list[dict[str, object]] = []
    superseded_rows: list[dict[str, object]] = []
    for sid, new in by_spec.items():
        old = existing.get(sid, [])
        next_version = max((v for v, *_ in old), default=0) + 1
        # new deliveries in release order, then path order, so the newest release wins
        new.sort(key=lambda o: (release_rank(o.data_v), o.path))
        candidates = [(release_rank(dv), v, sha) for v, sha, dv, _ in old]
        assigned = []
        for o in new:
            assigned.append((o, next_version))
            candidates.append((release_rank(o.data_v), next_version, o.sha256))
            next_version += 1
        best = max(candidates)  # newest release, then latest delivery
        if old:
            report.n_new_versions += len(new)
        for v, _sha, _dv, cur in old:
            if cur and v != best[1]:
                superseded_rows.append({"specid": sid, "version": v, "ingest_run": run_id})
        for o, v in assigned:
            ledger_rows.append(
                {
                    "sha256": o.sha256,
                    "path": o.path,
                    "size_bytes": o.size_bytes,
                    "mtime_ns": o.mtime_ns,
                    "specid": sid,
                    "obsid": o.obsid,
                    "night": o.night,
                    "version": v,
                    "ingest_run": run_id,
                }
            )
            version_rows.append(
                {
                    "specid": sid,
                    "version": v,
                    "sha256": o.sha256,
                    "data_v": o.data_v,
                    "current": v == best[1],
                    "ingest_run": run_id,
                }
            )
    ledger_table = pa.Table.from_pylist(
        ledger_rows,
        schema=pa.schema(
            [
                ("sha256", pa.string()),
                ("path", pa.string()),
                ("size_bytes", pa.int64()),
                ("mtime_ns", pa.int64()),
                ("specid", pa.string()),
                ("obsid", pa.int64()),
                ("night", pa.int32()),
                ("version", pa.int32()),
                ("ingest_run", pa.string()),
            ]
        ),
    )
    versions = pa.Table.from_pylist(
        version_rows,
        schema=pa.schema(
            [
                ("specid", pa.string()),
                ("version", pa.int32()),
                ("sha256", pa.string()),
                ("data_v", pa.string()),
                ("current", pa.bool_()),
                ("ingest_run", pa.string()),
            ]
        ),
    )
    superseded = pa.Table.from_pylist(
        superseded_rows,
        schema=pa.schema(
            [("specid", pa.string()), ("version", pa.int32()), ("ingest_run", pa.string())]
        ),
    )
    return ledger_table, versions, superseded


def _quarantine_table(quarantine: list[FileOutcome], run_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "path": o.path,
                "sha256": o.sha256,
                "size_bytes": o.size_bytes,
                "reason": o.reason,
                "ingest_run": run_id,
            }
            for o in quarantine
        ],
        schema=pa.schema(
            [
                ("path", pa.string()),
                ("sha256", pa.string()),
                ("size_bytes", pa.int64()),
                ("reason", pa.string()),
                ("ingest_run", pa.string()),
            ]
        ),
    )


def _drop_rows(
    catalog: Catalog, staged: list[StagedFile], drop_paths: set[str]
) -> list[StagedFile]:
    """Remove the rows of paths not stored (duplicates, withdrawn...) from the staged files."""
    if not drop_paths:
        return staged
    out: list[StagedFile] = []
    for s in staged:
        full = catalog.root / s.staged
        table = pq.read_table(full)
        keep = pc.invert(pc.is_in(table.column("source_path"), pa.array(sorted(drop_paths))))
        if pc.all(keep).as_py():
            out.append(s)
            continue
        table = table.filter(keep)
        if table.num_rows == 0:
            full.unlink()
            continue
        schema = table.schema
        nbytes = write_parquet(table.cast(schema), full, **SPECTRA_ENCODING)
        out.append(StagedFile(s.table, s.staged, s.final, s.norder, s.npix, table.num_rows, nbytes))
    return out
