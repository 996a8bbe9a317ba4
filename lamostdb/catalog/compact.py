"""``lamostdb compact``: one file per leaf, and leaves sized by row count, for every table.

Every ingest, classify, xmatch or ids run adds one file per leaf it touches, so a catalogue
of many nights holds many small files in many small leaves. Compaction rewrites each table
the way HATS catalogues are partitioned: the rows (read by their ``_healpix_29``) are cut
top down into leaves of at most ``threshold`` rows (:func:`~lamostdb.catalog.leaves.
plan_leaves`: a fuller pixel is split into its four children at ``Norder + 1``, so leaves of
sparse sky are coarse and leaves of dense sky fine), and each leaf is written as one file,
rows sorted by ``_healpix_29`` (a leaf at the deepest order the planner makes is written as
several files of at most ``threshold`` rows). ``threshold`` is ``max_rows``, or fewer for a
table whose rows are big (``max_bytes``, from the table's mean bytes per row).

Each table is one run of stage ``compact`` committed by
:func:`~lamostdb.catalog.commit.commit_run` with ``replaces=`` its old files: the new files
and the removal of the old ones from the ``files`` table are one transaction, the HATS
metadata is rewritten in it, and the old files are retired after it
(:mod:`lamostdb.catalog.retire`): readers holding an older snapshot still read them, and
they are removed once no snapshot lists them. A crash leaves each table as it was or as
compacted (``LAMOSTDB_FAULT=compact:<point>`` stops it at any commit point, or at
``compact:retiring`` between the commit and the last retirement); running the command
again finishes the work. A table that is already compact is left alone, so a second run
writes nothing. Rows are not changed: every table and view answers as before.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lamostdb.catalog import retire, snapshot
from lamostdb.catalog.commit import STAGING, StagedFile, commit_run, new_run_id
from lamostdb.catalog.hats import TableFile, leaf_relpath
from lamostdb.catalog.leaves import (
    MAX_LEAF_ORDER,
    PlannedLeaf,
    pixel_range,
    plan_leaves,
    table_encoding,
)
from lamostdb.catalog.migrate import upgrade_table_files
from lamostdb.catalog.schema import all_schema_names
from lamostdb.catalog.store import PARQUET_TABLES, Catalog, CatalogError
from lamostdb.healpix import parent_pixel
from lamostdb.io.parquet import write_parquet

#: Rows per leaf (HATS ``pixel_threshold``) unless the rows are big (:data:`MAX_BYTES`).
DEFAULT_MAX_ROWS = 100_000
#: Bytes per leaf file, estimated from the table's mean bytes per row.
DEFAULT_MAX_BYTES = 512 * 2**20


@dataclass
class TableCompaction:
    """What compaction did to one table."""

    table: str
    n_rows: int
    files_before: int
    leaves_before: int
    files_after: int
    leaves_after: int
    orders_after: dict[int, int]  # norder -> leaves
    threshold: int
    run_id: str | None  # None: already compact, nothing written


@dataclass
class CompactReport:
    """What one ``compact`` did (each table's part is also its run's summary)."""

    tables: list[TableCompaction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (table, why)
    n_retired_removed: int = 0
    elapsed_s: float = 0.0

    @property
    def files_before(self) -> int:
        return sum(t.files_before for t in self.tables)

    @property
    def files_after(self) -> int:
        return sum(t.files_after for t in self.tables)

    def as_dict(self) -> dict[str, object]:
        return {
            "tables": [dict(t.__dict__) for t in self.tables],
            "files_before": self.files_before,
            "files_after": self.files_after,
            "skipped": [list(x) for x in self.skipped],
            "n_retired_removed": self.n_retired_removed,
            "elapsed_s": self.elapsed_s,
        }


def _own_files(table: str, files: list[TableFile]) -> bool:
    """True when every file of ``table`` lies in the catalogue (attached catalogues are
    registered where they are, and compaction must not move them)."""
    return all(
        not Path(f.path).is_absolute()
        and ".." not in Path(f.path).parts
        and f.path.startswith(f"{table}/")
        for f in files
    )


def _threshold(files: list[TableFile], sizes: list[int], max_rows: int, max_bytes: int) -> int:
    n_rows = sum(f.n_rows for f in files)
    per_row = sum(sizes) / max(n_rows, 1)
    return max(1, min(max_rows, int(max_bytes // max(per_row, 1.0))))


def _files_per_leaf(leaf: PlannedLeaf, threshold: int) -> int:
    return max(1, math.ceil(leaf.n_rows / threshold))


def _is_compact(files: list[TableFile], plan: list[PlannedLeaf], threshold: int) -> bool:
    have: dict[tuple[int, int], int] = {}
    for f in files:
        have[(f.norder, f.npix)] = have.get((f.norder, f.npix), 0) + 1
    return have == {(p.norder, p.npix): _files_per_leaf(p, threshold) for p in plan}


def _groups(
    files: list[TableFile], plan: list[PlannedLeaf]
) -> list[tuple[list[TableFile], list[PlannedLeaf]]]:
    """Old files and planned leaves grouped under their coarsest pixel.

    Nested pixels either hold one another or are disjoint, so every old leaf and every
    planned leaf lies in exactly one *root* (a pixel of either set that no other holds);
    a root's rows are read once and cut into its planned leaves.
    """
    pixels = {(f.norder, f.npix) for f in files} | {(p.norder, p.npix) for p in plan}

    def root_of(o: int, n: int) -> tuple[int, int]:
        for k in range(o):
            if (k, parent_pixel(n, o, k)) in pixels:
                return k, parent_pixel(n, o, k)
        return o, n

    groups: dict[tuple[int, int], tuple[list[TableFile], list[PlannedLeaf]]] = {}
    for f in files:
        groups.setdefault(root_of(f.norder, f.npix), ([], []))[0].append(f)
    for p in plan:
        groups.setdefault(root_of(p.norder, p.npix), ([], []))[1].append(p)
    return [groups[k] for k in sorted(groups, key=lambda k: pixel_range(*k))]


def _read_sorted(root: Path, files: list[TableFile]) -> pa.Table:
    """Every row of ``files`` (in path order), stably sorted by ``_healpix_29``."""
    table = pa.concat_tables(
        [pq.read_table(root / f.path) for f in files], promote_options="permissive"
    )
    # a stable sort: rows of one _healpix_29 keep their order (files in path order)
    return table.take(pa.array(np.argsort(table.column("_healpix_29").to_numpy(), kind="stable")))


def compact_table(
    cat: Catalog,
    table: str,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    min_order: int = 0,
    max_order: int = MAX_LEAF_ORDER,
) -> TableCompaction | None:
    """Compact one table (call with the write lock held); None when it has no files."""
    files = cat.table_files(table)
    if not files:
        return None
    if not _own_files(table, files):
        raise CatalogError(
            f"{table}: some files lie outside {cat.root / table} (an attached "
            "catalogue); compact only tables the catalogue wrote itself"
        )
    upgrade_table_files(cat, table)  # one schema for all files, as a commit would
    files = cat.table_files(table)
    root = cat.root
    hp29 = np.sort(
        np.concatenate(
            [
                pq.read_table(root / f.path, columns=["_healpix_29"])
                .column("_healpix_29")
                .to_numpy()
                for f in files
            ]
        )
    )
    sizes = [(root / f.path).stat().st_size for f in files]
    threshold = _threshold(files, sizes, max_rows, max_bytes)
    plan = plan_leaves(hp29, threshold, min_order=min_order, max_order=max_order)
    orders: dict[int, int] = {}
    for p in plan:
        orders[p.norder] = orders.get(p.norder, 0) + 1
    out = TableCompaction(
        table,
        int(hp29.size),
        len(files),
        len({(f.norder, f.npix) for f in files}),
        sum(_files_per_leaf(p, threshold) for p in plan),
        len(plan),
        orders,
        threshold,
        None,
    )
    if _is_compact(files, plan, threshold):
        out.files_after, out.leaves_after = len(files), out.leaves_before
        return out
    run_id = new_run_id()
    staged: list[StagedFile] = []
    for group_files, leaves in _groups(files, plan):
        rows = _read_sorted(root, group_files)
        hp = rows.column("_healpix_29").to_numpy()
        for p in leaves:
            a, b = (int(i) for i in np.searchsorted(hp, pixel_range(p.norder, p.npix)))
            if b - a != p.n_rows:
                raise CatalogError(
                    f"{table}: leaf Norder={p.norder} Npix={p.npix} read "
                    f"{b - a} rows, expected {p.n_rows}; did the table's files "
                    "change while compacting? Nothing was committed"
                )
            leaf = leaf_relpath(table, p.norder, p.npix)
            for i in range(_files_per_leaf(p, threshold)):
                piece = rows.slice(a + i * threshold, min(threshold, b - a - i * threshold))
                name = f"part-{run_id}-{len(staged):05d}.parquet"
                rel = f"{STAGING}/{run_id}/{leaf}/{name}"
                nbytes = write_parquet(piece, root / rel, **table_encoding(table))
                staged.append(
                    StagedFile(
                        table, rel, f"{leaf}/{name}", p.norder, p.npix, piece.num_rows, nbytes
                    )
                )
    if sum(s.n_rows for s in staged) != sum(f.n_rows for f in files):
        raise CatalogError(
            f"{table}: compaction wrote {sum(s.n_rows for s in staged)} rows "
            f"for {sum(f.n_rows for f in files)}; nothing was committed"
        )
    out.run_id = run_id
    commit_run(
        cat,
        run_id,
        "compact",
        staged,
        lambda: None,
        dict(out.__dict__),
        replaces=[f.path for f in files],
    )
    return out


def compact(
    catalog: Catalog,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    tables: list[str] | None = None,
    min_order: int = 0,
    max_order: int = MAX_LEAF_ORDER,
    keep_snapshots: int = snapshot.KEEP,
    grace_s: float = snapshot.GRACE_S,
) -> CompactReport:
    """Compact every Parquet table of ``catalog`` (opened ``mode='w'``); see the module.

    Parameters
    ----------
    catalog
        The catalogue.
    max_rows
        Most rows per leaf (the HATS pixel threshold).
    max_bytes
        Most bytes per leaf file, estimated from each table's mean row size.
    tables
        Tables (schema names: ``spectra``, ``results``, ...) to compact; default all.
    min_order, max_order
        Coarsest and deepest leaf order made.
    keep_snapshots, grace_s
        When retired files of this and earlier compactions are removed: once no snapshot
        kept by these rules (:func:`lamostdb.catalog.snapshot.cleanup`) lists them.

    Returns
    -------
    CompactReport
        Files and leaves of each table before and after.
    """
    if max_rows < 1 or max_bytes < 1:
        raise ValueError(f"max_rows and max_bytes must be >= 1, got {max_rows}, {max_bytes}")
    if not 0 <= min_order <= max_order <= MAX_LEAF_ORDER:
        raise ValueError(
            f"need 0 <= min_order <= max_order <= {MAX_LEAF_ORDER}, got {min_order}, {max_order}"
        )
    known = [s for s in PARQUET_TABLES.values() if s in all_schema_names()]
    wanted = known if tables is None else list(tables)
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ValueError(f"no table(s) {unknown}; tables are {known}")
    t0 = time.perf_counter()
    report = CompactReport()
    with catalog.write_lock():
        for table in wanted:
            if not _own_files(table, catalog.table_files(table)):
                report.skipped.append((table, "files outside the catalogue (attached)"))
                continue
            done = compact_table(
                catalog,
                table,
                max_rows=max_rows,
                max_bytes=max_bytes,
                min_order=min_order,
                max_order=max_order,
            )
            if done is not None:
                report.tables.append(done)
        report.n_retired_removed = retire.collect_garbage(
            catalog.root, catalog.con, keep=keep_snapshots, grace_s=grace_s
        )
        catalog.publish()
        catalog.refresh_views()
    report.elapsed_s = round(time.perf_counter() - t0, 3)
    return report
