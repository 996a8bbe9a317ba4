"""The xmatch stage driver: ``spectra`` + ``gaia`` + ``ps1`` in, ``xmatch`` out.

Every current spectrum without an ``xmatch`` row at this radius (``rerun=True``: every
current spectrum) gets its nearest Gaia source, after moving the Gaia positions with
their proper motion to the spectrum's epoch, and its nearest Pan-STARRS1 object, each with
the separation, the number of candidates within the radius and an ambiguity flag
(:mod:`lamostdb.xmatch.partition`).

The driver takes the spectra to match in tasks of whole partitions (rows sorted by
``_healpix_29``, about ``chunk_spectra`` rows each) and plans, for each task, which
reference files it needs: the partitions that hold or neighbour one of its partitions
(within the radius plus the largest proper motion, :data:`MAX_MOTION_ARCSEC`), so that a
spectrum near a partition edge finds its counterpart in the next partition. A reference
table is either the catalogue's own ``gaia`` / ``ps1`` Parquet (``refcat ingest``) or a
HATS catalogue attached by path (``refcat attach``): then each task reads the reference
partitions that overlap its spectra plus their margin, from the HATS margin cache when
there is one and it is wide enough, else the neighbouring partitions, never the whole
catalogue. The module-level :func:`match_task` reads those files, runs
:func:`~lamostdb.xmatch.partition.xmatch_partition`, and writes one staged Parquet file per
spectrum partition; the tasks run on an executor (:func:`lamostdb.execute.open_executor`:
in-process, the local pool or a Dask cluster) and the driver alone commits them, with the
run record, atomically.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from lamostdb.catalog.commit import STAGING, StagedFile, commit_run, new_run_id
from lamostdb.catalog.hats import TableFile, leaf_relpath
from lamostdb.catalog.schema import all_schema_names
from lamostdb.catalog.store import Catalog
from lamostdb.execute import open_executor
from lamostdb.healpix import pixel_at_order, pixel_start
from lamostdb.healpix.blocks import match_order, pixel_block
from lamostdb.io.parquet import write_parquet
from lamostdb.io.sqlfiles import statement
from lamostdb.refcat.hats import AttachedRefcat, attached, leaf_files, open_hats, partitions_at
from lamostdb.refcat.hats import read_leaves as read_hats_leaves
from lamostdb.xmatch.partition import (
    AMBIGUOUS_DELTA_ARCSEC,
    AMBIGUOUS_RATIO,
    REFERENCES,
    XmatchConfig,
    best_matches,
    xmatch_partition,
)

__all__ = [
    "AMBIGUOUS_DELTA_ARCSEC",
    "AMBIGUOUS_RATIO",
    "CHUNK_SPECTRA",
    "MAX_MOTION_ARCSEC",
    "REFERENCES",
    "RefRead",
    "XmatchReport",
    "XmatchResult",
    "XmatchTask",
    "best_matches",
    "match_task",
    "xmatch",
]

#: Spectra per task (whole partitions): bounds the memory of one join.
CHUNK_SPECTRA = 200_000
#: Largest distance a reference source may have moved, used only to choose which
#: reference files to read (11"/yr, above Barnard's star, over 50 years).
MAX_MOTION_ARCSEC = 600.0
#: Stored id column of each reference table (margin rows are deduplicated on it).
_ID_COLUMN = {"gaia": "source_id", "ps1": "objID"}


@dataclass
class XmatchReport:
    """What one xmatch run did (also stored as the run summary)."""

    run_id: str
    radius_arcsec: float
    n_todo: int = 0
    n_tasks: int = 0
    n_matched: dict[str, int] = field(default_factory=dict)
    n_ambiguous: dict[str, int] = field(default_factory=dict)
    reference_files_read: dict[str, int] = field(default_factory=dict)
    margin_files_read: dict[str, int] = field(default_factory=dict)
    reference_sources: dict[str, str] = field(default_factory=dict)
    missing_references: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    executor: dict[str, object] = field(default_factory=dict)
    elapsed_s: float = 0.0
    spectra_per_s: float = 0.0
    peak_rss_mb: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RefRead:
    """Which files of one reference table a task reads.

    ``files`` are read whole. For an attached HATS catalogue (``columns`` set: stored column
    -> catalogue column), ``neighbours`` holds the files of each neighbouring partition:
    a neighbour is skipped when ``margin_files`` (the margin cache of the task's own
    partitions, ``margin_threshold_arcsec`` wide) hold every row of it that can match,
    which the task checks from the neighbour's Parquet statistics (largest proper motion);
    else it is read whole.
    """

    kind: str
    files: tuple[str, ...] = ()
    columns: tuple[tuple[str, str | None], ...] | None = None
    neighbours: tuple[tuple[str, ...], ...] = ()
    margin_files: tuple[str, ...] = ()
    margin_threshold_arcsec: float | None = None


@dataclass(frozen=True)
class XmatchTask:
    """One task: spectra of whole partitions and the reference files that can match them."""

    root: str
    index: int
    partition_order: int
    config: XmatchConfig
    spectra: pa.Table
    refs: tuple[RefRead, ...]


@dataclass(frozen=True)
class XmatchResult:
    """What :func:`match_task` staged and read."""

    staged: list[StagedFile]
    n_spectra: int
    n_matched: dict[str, int]
    n_ambiguous: dict[str, int]
    files_read: dict[str, list[str]]
    margin_files_read: dict[str, list[str]]


def _chunks(npix: np.ndarray, size: int) -> Iterator[slice]:
    """Slices of whole partitions (``npix`` sorted) holding about ``size`` rows each."""
    starts = np.flatnonzero(np.r_[True, npix[1:] != npix[:-1]])
    begin = 0
    for s in starts[1:]:
        if s - begin >= size:
            yield slice(begin, int(s))
            begin = int(s)
    if npix.size > begin:
        yield slice(begin, npix.size)


def _pixels_near(
    pixels: Iterable[tuple[int, int]], hp29: np.ndarray, radius_arcsec: float
) -> set[tuple[int, int]]:
    """Partitions ``(norder, npix)`` of ``pixels`` that hold, or neighbour, a position of
    ``hp29`` (within the radius plus :data:`MAX_MOTION_ARCSEC`)."""
    by_order: dict[int, set[int]] = {}
    for o, p in pixels:
        by_order.setdefault(o, set()).add(p)
    k_max = match_order(radius_arcsec + MAX_MOTION_ARCSEC)
    out: set[tuple[int, int]] = set()
    for norder, pix in by_order.items():
        k = min(norder, k_max)
        own = np.unique(pixel_at_order(hp29, k))
        _, near = pixel_block(pixel_start(own, k), k)
        wanted = set(np.unique(near).tolist())
        out |= {
            (norder, p) for p in pix if int(pixel_at_order([p], k, from_order=norder)[0]) in wanted
        }
    return out


def _files_near(
    files: Sequence[TableFile], hp29: np.ndarray, radius_arcsec: float
) -> list[TableFile]:
    """Reference files whose partition holds, or neighbours, a partition of ``hp29``."""
    near = _pixels_near({(f.norder, f.npix) for f in files}, hp29, radius_arcsec)
    return [f for f in files if (f.norder, f.npix) in near]


def _plan_parquet(
    root: Path, kind: str, files: list[TableFile], hp29: np.ndarray, radius_arcsec: float
) -> RefRead:
    return RefRead(kind, tuple(str(root / f.path) for f in _files_near(files, hp29, radius_arcsec)))


def _plan_hats(
    rec: AttachedRefcat,
    pixels: tuple[tuple[int, int], ...],
    props: dict[str, str],
    margin_pixels: set[tuple[int, int]],
    margin_props: dict[str, str],
    hp29: np.ndarray,
    radius_arcsec: float,
) -> RefRead:
    """Own partitions whole; neighbours whole without a margin cache, else maybe skipped."""
    near = _pixels_near(pixels, hp29, radius_arcsec)
    columns = tuple(sorted(rec.columns.items()))

    def files(ps: Iterable[tuple[int, int]]) -> tuple[str, ...]:
        return tuple(f for o, p in sorted(ps) for f in leaf_files(rec.path, o, p, props))

    if rec.margin is None:
        return RefRead(rec.kind, files(near), columns)
    own = partitions_at(pixels, hp29)
    # spectra in no partition (a hole of the catalogue) need their neighbours whole
    inside = np.zeros(hp29.size, bool)
    for o, p in own:
        inside |= pixel_at_order(hp29, o) == p
    whole = own | (_pixels_near(pixels, hp29[~inside], radius_arcsec) if (~inside).any() else set())
    neighbours = tuple(files([q]) for q in sorted(near - whole))
    margin = tuple(
        f
        for o, p in sorted(own & margin_pixels)
        for f in leaf_files(rec.margin, o, p, margin_props)
    )
    return RefRead(rec.kind, files(whole), columns, neighbours, margin, rec.margin_threshold_arcsec)


# -- the task ----------------------------------------------------------------------------
def _stats_max_abs(md: pq.FileMetaData, column: str) -> float | None:
    """Largest ``|value|`` of ``column`` from the row-group statistics (None: unknown)."""
    names = md.schema.to_arrow_schema().names
    if column not in names:
        return None
    j = names.index(column)
    out = 0.0
    for i in range(md.num_row_groups):
        st = md.row_group(i).column(j).statistics
        if st is None or not st.has_min_max:
            if md.row_group(i).num_rows:
                return None
            continue
        out = max(out, abs(float(st.min)), abs(float(st.max)))
    return out


def _margin_covers(
    files: Sequence[str], read: RefRead, radius_arcsec: float, epochs: np.ndarray
) -> bool:
    """Whether every row of these neighbour files that can match is in the margin cache.

    A row farther than ``threshold`` from the own partitions is outside the margin; it can
    match only if it moves by more than ``threshold - radius`` (proper motion times the
    epoch difference), which the files' statistics bound.
    """
    threshold = read.margin_threshold_arcsec
    if threshold is None or threshold < radius_arcsec:
        return False
    if read.kind != "gaia" or epochs.size == 0:
        return True  # no motion
    cols = dict(read.columns or ())
    for f in files:
        md = pq.read_metadata(f)
        pmra, pmdec = (
            _stats_max_abs(md, name) if (name := cols.get(c)) else None for c in ("pmra", "pmdec")
        )
        if pmra is None or pmdec is None:
            return False
        ref = cols.get("ref_epoch")
        lo_hi = (2016.0, 2016.0)
        if ref:
            names = md.schema.to_arrow_schema().names
            j = names.index(ref)
            stats = [md.row_group(i).column(j).statistics for i in range(md.num_row_groups)]
            if any(st is None or not st.has_min_max for st in stats):
                return False
            lo_hi = (min(float(st.min) for st in stats), max(float(st.max) for st in stats))
        dt = max(abs(float(epochs.max()) - lo_hi[0]), abs(float(epochs.min()) - lo_hi[1]))
        if radius_arcsec + float(np.hypot(pmra, pmdec)) / 1000.0 * dt > threshold:
            return False
    return True


def _read_parquet(files: Sequence[str]) -> pa.Table | None:
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def _read_reference(
    read: RefRead, radius_arcsec: float, epochs: np.ndarray
) -> tuple[pa.Table | None, list[str], list[str]]:
    """The rows of one reference table a task needs, and the data files it read."""
    if read.columns is None:
        return _read_parquet(read.files), list(read.files), []
    cols = dict(read.columns)
    files = list(read.files)
    skipped = [nb for nb in read.neighbours if _margin_covers(nb, read, radius_arcsec, epochs)]
    files += [f for nb in read.neighbours if nb not in skipped for f in nb]
    margin = list(read.margin_files) if skipped else []
    if not files and not margin:
        return None, [], []
    table = read_hats_leaves(files + margin, read.kind, cols)
    if margin:  # a margin row may also sit in a neighbour read whole: keep one copy
        ids = table.column(_ID_COLUMN[read.kind]).to_numpy(zero_copy_only=False)
        _, first = np.unique(ids, return_index=True)
        if first.size < table.num_rows:
            table = table.take(pa.array(np.sort(first)))
    return table, files, margin


def _stage_partitions(
    root: Path, partition_order: int, table: pa.Table, run_id: str, index: int
) -> list[StagedFile]:
    """One staged Parquet file per spectrum partition of ``table`` (sorted by pixel)."""
    npix = pixel_at_order(table.column("_healpix_29").to_numpy(), partition_order)
    staged = []
    bounds = np.flatnonzero(np.r_[True, npix[1:] != npix[:-1], True])
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        piece = table.slice(int(a), int(b - a))
        leaf = leaf_relpath("xmatch", partition_order, int(npix[a]))
        name = f"part-{run_id}-{index:05d}-{i:04d}.parquet"
        rel = f"{STAGING}/{run_id}/{leaf}/{name}"
        nbytes = write_parquet(piece, root / rel, row_group_size=65_536)
        staged.append(
            StagedFile(
                "xmatch",
                rel,
                f"{leaf}/{name}",
                partition_order,
                int(npix[a]),
                piece.num_rows,
                nbytes,
            )
        )
    return staged


def match_task(task: XmatchTask) -> XmatchResult:
    """Read a task's reference rows, match its spectra, stage the ``xmatch`` rows."""
    radius = float(task.config.radius_arcsec)
    epochs = pc.drop_null(task.spectra.column("epoch_jyear")).to_numpy()
    refs: dict[str, pa.Table | None] = {}
    read: dict[str, list[str]] = {}
    margin: dict[str, list[str]] = {}
    for r in task.refs:
        refs[r.kind], read[r.kind], margin[r.kind] = _read_reference(r, radius, epochs)
    out = xmatch_partition(task.spectra, refs, task.config)
    del refs
    matched = {
        k: out.num_rows - out.column(c).null_count
        for k, c in (("gaia", "gaia_source_id"), ("ps1", "ps1_objid"))
    }
    ambiguous = {k: int(pc.sum(out.column(f"{k}_ambiguous")).as_py() or 0) for k in REFERENCES}
    staged = _stage_partitions(
        Path(task.root), task.partition_order, out, task.config.run_id, task.index
    )
    return XmatchResult(staged, out.num_rows, matched, ambiguous, read, margin)


# -- the driver --------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def xmatch(
    catalog: Catalog,
    *,
    radius_arcsec: float = 3.0,
    rerun: bool = False,
    progress: bool = True,
    chunk_spectra: int = CHUNK_SPECTRA,
    workers: int | None = None,
    cluster: str | None = None,
) -> XmatchReport:
    """Cross-match the current spectra of ``catalog`` (opened ``mode='w'``) with Gaia and PS1.

    Parameters
    ----------
    catalog
        The catalogue.
    radius_arcsec
        Match radius. Spectra already matched at this radius are skipped.
    rerun
        Match every current spectrum again.
    progress
        Show a progress bar.
    chunk_spectra
        About this many spectra (whole partitions) make one task.
    workers
        Local worker processes (``None``: one per CPU); 1 runs the tasks in this process.
    cluster
        ``None`` (local), ``"local:N"`` or ``"tcp://HOST:PORT"``: see
        :func:`lamostdb.execute.open_executor`.

    Returns
    -------
    XmatchReport
        Counts per reference table; ``missing_references`` names those with no rows
        (their columns are null); ``reference_sources`` says where each was read from;
        ``executor`` where the tasks ran.
    """
    config = XmatchConfig(float(radius_arcsec), new_run_id())
    t0 = time.perf_counter()
    run_id = config.run_id
    radius = config.radius_arcsec
    report = XmatchReport(run_id, radius)
    with catalog.write_lock():
        todo = catalog.con.sql(
            statement("xmatch.sql", "todo"), params={"radius_arcsec": radius, "rerun": rerun}
        ).to_arrow_table()
        report.n_todo = todo.num_rows
        stored = {
            kind: (catalog.table_files(kind) if kind in all_schema_names() else [])
            for kind in REFERENCES
        }
        hats = {kind: attached(catalog, kind) for kind in REFERENCES}
        for kind in REFERENCES:
            rec = hats[kind]
            if rec is not None:
                report.reference_sources[kind] = f"hats:{rec.path}" + (
                    f" (margin {rec.margin})" if rec.margin else ""
                )
                if stored[kind]:
                    report.notes.append(
                        f"{kind}: the attached HATS catalogue is used; the "
                        f"{sum(f.n_rows for f in stored[kind])} ingested rows "
                        "are not"
                    )
            elif stored[kind]:
                report.reference_sources[kind] = "parquet"
        report.missing_references = [k for k in REFERENCES if k not in report.reference_sources]
        if todo.num_rows == 0:
            return report
        layouts = {}
        for kind, rec in hats.items():
            if rec is not None:
                hc = open_hats(rec.path)
                mc = open_hats(rec.margin) if rec.margin else None
                layouts[kind] = (
                    rec,
                    hc.pixels,
                    hc.properties,
                    set(mc.pixels) if mc else set(),
                    mc.properties if mc else {},
                )
        hp29 = todo.column("_healpix_29").to_numpy()
        npix = pixel_at_order(hp29, catalog.partition_order)
        tasks = []
        for i, sl in enumerate(_chunks(npix, chunk_spectra)):
            part = todo.slice(sl.start, sl.stop - sl.start)
            hp = hp29[sl]
            reads = tuple(
                _plan_hats(*layouts[k], hp, radius)
                if k in layouts
                else _plan_parquet(catalog.root, k, stored[k], hp, radius)
                for k in REFERENCES
            )
            tasks.append(
                XmatchTask(str(catalog.root), i, catalog.partition_order, config, part, reads)
            )
        report.n_tasks = len(tasks)
        staged: list[StagedFile] = []
        counts = {k: 0 for k in REFERENCES}
        ambiguous = {k: 0 for k in REFERENCES}
        files_read = {k: 0 for k in REFERENCES}
        margin_read = {k: 0 for k in REFERENCES}
        bar = tqdm(total=todo.num_rows, unit="spectrum", desc="xmatch", disable=not progress)
        try:
            with open_executor(
                cluster,
                workers=workers,
                n_tasks=len(tasks),
                root=catalog.root,
                staging=STAGING,
                run_id=run_id,
                preload="lamostdb.xmatch.stage",
            ) as ex:
                for _, res in ex.run(match_task, tasks):
                    staged += res.staged
                    for k in REFERENCES:
                        counts[k] += res.n_matched[k]
                        ambiguous[k] += res.n_ambiguous[k]
                        files_read[k] += len(res.files_read.get(k, []))
                        margin_read[k] += len(res.margin_files_read.get(k, []))
                    bar.update(res.n_spectra)
                report.executor = ex.summary().as_dict()
        finally:
            bar.close()
        staged.sort(key=lambda f: f.final)
        report.n_matched, report.n_ambiguous = counts, ambiguous
        report.reference_files_read, report.margin_files_read = files_read, margin_read
        report.elapsed_s = round(time.perf_counter() - t0, 3)
        report.spectra_per_s = round(report.n_todo / max(report.elapsed_s, 1e-9), 1)
        report.peak_rss_mb = _peak_rss_mb()
        commit_run(catalog, run_id, "xmatch", staged, lambda: None, report.as_dict())
    return report
