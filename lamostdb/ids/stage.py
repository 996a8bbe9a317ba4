"""The ids stage: ``xmatch`` in, ``objects`` (and ``uid_aliases``) out.

Identifiers are recomputed over *all* current spectra on every run (friends-of-friends
links any night to any other), and only the rows that changed are written: the
``objects`` view shows the latest run of each spectrum, so unchanged rows keep their
earlier run. A rerun on the same input writes nothing. Files are staged per partition
and committed atomically with the run record and the new alias rows, like classify.

The friends-of-friends links are found per group of partitions
(:mod:`lamostdb.ids.partition`, one task each, on the executor chosen by ``cluster``);
the union of the links (connected components) and the identifiers are computed here,
centrally, from all links at once, so the answer is the one of a single global join.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
from tqdm import tqdm

from lamostdb.catalog.commit import STAGING, StagedFile, commit_run
from lamostdb.catalog.hats import leaf_relpath
from lamostdb.catalog.schema import load_schema
from lamostdb.catalog.store import Catalog, CatalogError
from lamostdb.execute import open_executor, parse_cluster
from lamostdb.healpix import healpix_29, pixel_at_order
from lamostdb.ids.assign import ids_from_links, sorted_xmatch, uid_aliases
from lamostdb.ids.partition import (
    GROUP_ROWS,
    LinkConfig,
    LinkGroup,
    link_partition,
    plan_link_groups,
)
from lamostdb.io.parquet import write_parquet
from lamostdb.io.sqlfiles import statement

_ALIASES_VIEW = "ids_new_aliases"


@dataclass
class IdsReport:
    """What an ids run did."""

    run_id: str
    n_spectra: int = 0
    n_objects: int = 0
    n_lids: int = 0
    gp_types: dict[str, int] = field(default_factory=dict)
    n_written: int = 0
    n_aliases: int = 0
    committed: bool = False
    elapsed_s: float = 0.0
    n_link_tasks: int = 0
    executor: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _new_run_id() -> str:
    # microseconds: the objects view picks a spectrum's latest run by run_id order, and
    # two runs can fall in one second (tests, scripted pipelines)
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now % 1 * 1e6):06d}Z-{uuid.uuid4().hex[:8]}"


def _changed_rows(new: pl.DataFrame, previous: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``new`` absent from ``previous`` or different in any column but run_id."""
    cols = [c for c in new.columns if c != "run_id"]
    if previous.height == 0:
        return new
    prev = previous.select(cols).cast({c: new.schema[c] for c in cols})
    return new.join(prev, on=cols, how="anti", nulls_equal=True, maintain_order="left")


@dataclass(frozen=True, eq=False)
class LinkTask:
    """A picklable unit of work for the executor: one group of partitions and the radius."""

    group: LinkGroup
    config: LinkConfig


_CON: list[duckdb.DuckDBPyConnection] = []


def link_task(task: LinkTask) -> pa.Table:
    """Run :func:`~lamostdb.ids.partition.link_partition` on one task (module level, so
    that a worker process can run it); one DuckDB connection per process serves them all."""
    if not _CON:
        _CON.append(duckdb.connect())
    return link_partition(task.group.core, task.group.margin, task.config, con=_CON[0])


def _links(
    cat: Catalog,
    df: pl.DataFrame,
    radius_arcsec: float,
    run_id: str,
    workers: int | None,
    cluster: str | None,
    group_rows: int,
    report: IdsReport,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """All friends-of-friends pairs of ``df``'s rows, found partition by partition."""
    ra = df["ra"].to_numpy().astype(np.float64)
    dec = df["dec"].to_numpy().astype(np.float64)
    points = pa.table(
        {
            "id": np.arange(df.height, dtype=np.int64),
            "ra": ra,
            "dec": dec,
            "_healpix_29": healpix_29(ra, dec) if df.height else np.zeros(0, np.int64),
        }
    )
    config = LinkConfig(float(radius_arcsec))
    tasks = [
        LinkTask(g, config)
        for g in plan_link_groups(
            points, partition_order=cat.partition_order, config=config, group_rows=group_rows
        )
    ]
    report.n_link_tasks = len(tasks)
    links: list[pa.Table] = []
    with open_executor(
        cluster,
        workers=workers,
        n_tasks=max(len(tasks), 1),
        root=cat.root,
        staging=STAGING,
        run_id=run_id,
        preload="lamostdb.ids.stage",
    ) as ex:
        for _, result in ex.run(link_task, tasks):
            links.append(result)
        report.executor = ex.summary().as_dict()
    if not links:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = pa.concat_tables(links)
    return (
        pairs.column("i").to_numpy().astype(np.int64, copy=False),
        pairs.column("j").to_numpy().astype(np.int64, copy=False),
    )


def _stage_files(cat: Catalog, table: pa.Table, run_id: str) -> list[StagedFile]:
    norder = cat.partition_order
    npix_all = pixel_at_order(table.column("_healpix_29").to_numpy(), norder)
    staged = []
    for k, npix in enumerate(np.unique(npix_all).tolist()):
        part = table.filter(pa.array(npix_all == npix)).sort_by("_healpix_29")
        leaf = leaf_relpath("objects", norder, npix)
        name = f"part-{run_id}-{k:05d}.parquet"
        rel = f"{STAGING}/{run_id}/{leaf}/{name}"
        nbytes = write_parquet(part, Path(cat.root) / rel)
        staged.append(
            StagedFile("objects", rel, f"{leaf}/{name}", norder, npix, part.num_rows, nbytes)
        )
    return staged


def assign_ids(
    cat: Catalog,
    *,
    radius_arcsec: float = 3.0,
    progress: bool = True,
    workers: int | None = 1,
    cluster: str | None = None,
    group_rows: int = GROUP_ROWS,
) -> IdsReport:
    """Compute UID, LID and GID of every current spectrum and commit what changed.

    Parameters
    ----------
    cat
        Catalogue opened for writing; its ``xmatch`` table must exist (run the
        cross-match stage first).
    radius_arcsec
        Friends-of-friends linking length between spectra.
    progress
        Show a progress bar over the steps.
    workers
        Local worker processes for the link tasks (default 1: in this process; the
        links of a night take milliseconds, less than starting a pool). ``None``: one per
        CPU.
    cluster
        ``None`` (the local pool), ``"local:N"`` (a Dask LocalCluster) or
        ``"tcp://HOST:PORT"`` (a running Dask scheduler): where the link tasks run
        (:func:`lamostdb.execute.open_executor`).
    group_rows
        About this many spectra (whole partitions) per link task.

    Returns
    -------
    IdsReport
        Counts, and whether a run was committed (nothing is written when no identifier
        changed).
    """
    parse_cluster(cluster)
    t0 = time.perf_counter()
    report = IdsReport(_new_run_id())
    con = cat.con
    with cat.write_lock():
        if not con.execute(statement("ids.sql", "relation_exists"), {"name": "xmatch"}).fetchall()[
            0
        ][0]:
            raise CatalogError(
                f"{cat.root} has no xmatch table: run the cross-match stage "
                "(`lamostdb xmatch`) before `lamostdb ids`"
            )
        con.execute(statement("ids.sql", "create_uid_aliases"))
        steps = tqdm(total=4, desc="ids", unit="step", disable=not progress)
        try:
            xm = sorted_xmatch(cat.sql(statement("ids.sql", "current_xmatch")))
            steps.update()
            i, j = _links(
                cat, xm, radius_arcsec, report.run_id, workers, cluster, group_rows, report
            )
            ids = ids_from_links(xm, i, j)
            ids = ids.with_columns(pl.lit(report.run_id).alias("run_id"))
            steps.update()
            previous = cat.sql(statement("ids.sql", "previous_objects"))
            schema = load_schema("objects").arrow_schema()
            ids = ids.select(schema.names)
            changed = _changed_rows(ids, previous)
            aliases = uid_aliases(previous, ids, report.run_id)
            steps.update()
            report.n_spectra = ids.height
            report.n_objects = ids["uid"].n_unique()
            report.n_lids = ids["lid"].n_unique()
            report.gp_types = {
                str(k): int(v) for k, v in ids.unique("uid")["gp_type"].value_counts().iter_rows()
            }
            report.n_written = changed.height
            report.n_aliases = aliases.height
            if changed.height:
                table = pa.Table.from_batches(changed.to_arrow().to_batches()).cast(schema)
                staged = sorted(_stage_files(cat, table, report.run_id), key=lambda s: s.final)
                alias_arrow = aliases.to_arrow()

                def ledger_writes() -> None:
                    if alias_arrow.num_rows:
                        con.register(_ALIASES_VIEW, alias_arrow)
                        try:
                            con.execute(statement("ids.sql", "insert_uid_aliases"))
                        finally:
                            con.unregister(_ALIASES_VIEW)

                report.elapsed_s = round(time.perf_counter() - t0, 3)
                report.committed = True
                commit_run(cat, report.run_id, "ids", staged, ledger_writes, report.as_dict())
            steps.update()
        finally:
            steps.close()
    report.elapsed_s = round(time.perf_counter() - t0, 3)
    return report
