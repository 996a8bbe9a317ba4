"""The classify stage driver: ``spectra`` in, ``results`` and ``candidates`` out.

Only spectra without a result of the current engine version are fitted (``rerun=True``
fits all current spectra again). Work is planned per ``spectra`` file (one HEALPix
partition's rows of one run); each task streams its file in slabs of record batches and
calls the pure partition function :func:`lamostdb.classify.partition.classify_partition`,
then writes one staged ``results`` and one ``candidates`` Parquet file. Tasks run on an
executor (:mod:`lamostdb.execute`: the local process pool, or a Dask cluster); the driver
alone commits, atomically with the run record, like ingest.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from lamostdb.catalog.commit import STAGING, StagedFile, commit_run, new_run_id
from lamostdb.catalog.hats import leaf_relpath
from lamostdb.catalog.workers import keep_freed_memory
from lamostdb.classify.forkserver import start_workers_early
from lamostdb.execute import open_executor
from lamostdb.io.parquet import write_parquet
from lamostdb.io.sqlfiles import statement
from lamostdb.match.batch import ENGINE_COLUMNS
from lamostdb.match.config import DEFAULT_CONFIG, EngineConfig
from lamostdb.match.version import ENGINE_VERSION

if TYPE_CHECKING:  # the workers import this module: the store (DuckDB, astropy) stays out
    from lamostdb.catalog.store import Catalog

#: Rows read from a spectra file per call of the partition function: bounds a worker's
#: memory (about 50 kB per spectrum in the frame) whatever the partition's size.
SLAB_ROWS = 1024


@dataclass
class ClassifyReport:
    run_id: str
    n_todo: int = 0
    n_fitted: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    spectra_per_s: float = 0.0
    peak_worker_rss_mb: float = 0.0
    #: "pruned" (the default search) or "exhaustive" (``--exhaustive``)
    search: str = "pruned"
    #: (specid, reason) of spectra fitted as having no usable pixel (zwarning UNPLUGGED)
    unusable: list[tuple[str, str]] = field(default_factory=list)
    #: where the partitions ran (:meth:`lamostdb.execute.Executor.summary`)
    executor: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        d["unusable"] = [list(u) for u in self.unusable]
        return d


@dataclass(frozen=True)
class _Task:
    index: int
    spectra_file: str
    specids: tuple[str, ...]
    root: str
    run_id: str
    norder: int
    npix: int
    config: EngineConfig = DEFAULT_CONFIG
    single_thread: bool = True


_Outcome = tuple[list[StagedFile], dict[str, int], int, float, list[tuple[str, str]]]


def _classify_file(task: _Task) -> _Outcome:
    """Task function: read one spectra file's wanted rows, classify, stage the two tables."""
    # one BLAS thread per worker process, also with --workers 1: the engine's products are
    # small, and threads fighting over the cores made a 640-spectrum run 2.7x slower
    # (33.7 s with the default threads, 12.3 s with one, on the shared 2-core machine)
    if mp.parent_process() is not None:  # a worker process (not the caller's, with --workers 1)
        keep_freed_memory()
    if task.single_thread:
        with threadpool_limits(limits=1):
            return _classify_file_inner(task)
    return _classify_file_inner(task)


def _classify_file_inner(task: _Task) -> _Outcome:
    # here, not at the top: the driver process plans and commits without the engine
    # (scipy, the kernels, the templates), which only the workers import
    from lamostdb.classify.partition import classify_partition

    wanted = pl.Series("key", task.specids).implode()  # "specid|source_sha256" to fit
    pf = pq.ParquetFile(task.spectra_file)
    res_parts: list[pa.Table] = []
    cand_parts: list[pa.Table] = []
    unusable: list[tuple[str, str]] = []
    slab: list[pl.DataFrame] = []

    def flush() -> None:
        if not slab:
            return
        part = classify_partition(pl.concat(slab).to_arrow(), task.config, run_id=task.run_id)
        res_parts.append(part.results)
        cand_parts.append(part.candidates)
        unusable.extend(part.unusable)
        slab.clear()

    n_slab = 0
    for batch in pf.iter_batches(batch_size=256, columns=list(ENGINE_COLUMNS)):
        df = pl.from_arrow(batch)
        assert isinstance(df, pl.DataFrame)
        df = df.filter((pl.col("specid") + "|" + pl.col("source_sha256")).is_in(wanted))
        if df.height:
            slab.append(df)
            n_slab += df.height
        if n_slab >= SLAB_ROWS:
            flush()
            n_slab = 0
    flush()
    staged = []
    counts: dict[str, int] = defaultdict(int)
    n = 0
    for table_name, parts in (("results", res_parts), ("candidates", cand_parts)):
        if not parts:
            continue
        table = pa.concat_tables(parts)
        table = table.sort_by("_healpix_29")
        leaf = leaf_relpath(table_name, task.norder, task.npix)
        name = f"part-{task.run_id}-{task.index:05d}.parquet"
        rel = f"{STAGING}/{task.run_id}/{leaf}/{name}"
        nbytes = write_parquet(table, Path(task.root) / rel)
        staged.append(
            StagedFile(
                table_name, rel, f"{leaf}/{name}", task.norder, task.npix, table.num_rows, nbytes
            )
        )
        if table_name == "results":
            n = table.num_rows
            for k, v in zip(
                *np.unique(
                    table.column("class").to_numpy(zero_copy_only=False), return_counts=True
                ),
                strict=True,
            ):
                counts[str(k)] += int(v)
    return (
        staged,
        dict(counts),
        n,
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        unusable,
    )


def classify(
    catalog: Catalog,
    *,
    config: EngineConfig = DEFAULT_CONFIG,
    rerun: bool = False,
    workers: int | None = None,
    cluster: str | None = None,
    progress: bool = True,
) -> ClassifyReport:
    """Classify every current spectrum that has no result of this engine version.

    Parameters
    ----------
    catalog
        The catalogue, opened with ``mode='w'``.
    config
        The engine (templates, continuum, confidence parameters, grids); checked here, then
        passed to every worker.
    rerun
        Fit every current spectrum again.
    workers
        Local worker processes (default: all cores; 1 runs in this process).
    cluster
        ``None`` (the local pool), ``"local:N"`` or ``"tcp://HOST:PORT"`` (Dask).
    progress
        Show a progress bar.
    """
    t0 = time.perf_counter()
    config = config.checked()
    run_id = new_run_id()
    report = ClassifyReport(run_id, search="exhaustive" if config.search.exhaustive else "pruned")
    with catalog.write_lock():
        files = catalog.table_files("spectra")
        paths = [str(catalog.root / f.path) for f in files]
        if not paths:
            return report
        preload = start_workers_early(config, workers=workers, cluster=cluster)
        if rerun:
            rows = catalog.con.execute(
                statement("classify.sql", "all_current"), {"files": paths}
            ).fetchall()
        else:
            rows = catalog.con.execute(
                statement("classify.sql", "unclassified"),
                {"files": paths, "engine_version": ENGINE_VERSION},
            ).fetchall()
        by_file: dict[str, list[str]] = defaultdict(list)
        for fname, specid, sha in rows:
            by_file[str(fname)].append(f"{specid}|{sha}")
        meta = {str(catalog.root / f.path): f for f in files}
        tasks = [
            _Task(
                i,
                fname,
                tuple(ids),
                str(catalog.root),
                run_id,
                meta[fname].norder,
                meta[fname].npix,
                config,
            )
            # largest files first, so that no worker starts a big file while the
            # others run out of work (the batches inside each file are unchanged)
            for i, (fname, ids) in enumerate(
                sorted(by_file.items(), key=lambda kv: (-len(kv[1]), kv[0]))
            )
        ]
        report.n_todo = len(rows)
        staged: list[StagedFile] = []
        counts: dict[str, int] = defaultdict(int)
        with (
            tqdm(
                total=report.n_todo,
                unit="spectrum",
                desc="classify",
                disable=not progress or not tasks,
            ) as bar,
            open_executor(
                cluster,
                workers=workers,
                n_tasks=len(tasks),
                root=catalog.root,
                staging=STAGING,
                run_id=run_id,
                preload=preload,
            ) as ex,
        ):
            for _, (st, cnt, n, rss, bad) in ex.run(_classify_file, tasks):
                staged += st
                report.unusable += bad
                for k, v in cnt.items():
                    counts[k] += v
                report.n_fitted += n
                report.peak_worker_rss_mb = max(report.peak_worker_rss_mb, rss)
                bar.update(n)
            report.executor = ex.summary().as_dict()
        report.counts = dict(counts)
        report.elapsed_s = round(time.perf_counter() - t0, 3)
        report.spectra_per_s = round(report.n_fitted / max(report.elapsed_s, 1e-9), 1)
        if staged:
            staged.sort(key=lambda s: s.final)
            commit_run(catalog, run_id, "classify", staged, lambda: None, report.as_dict())
    return report
