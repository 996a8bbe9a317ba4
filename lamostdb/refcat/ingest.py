"""The refcat stage: Gaia / PS1 files in, ``gaia`` / ``ps1`` HATS Parquet leaves out.

Idempotent: a file whose bytes are in ``refcat_ledger`` for the same table is skipped
without reading. Id policy, documented in ``schemas/gaia.json`` and ``schemas/ps1.json``:
the **first delivery wins**. Within one call the first occurrence (files in the order
given, rows in file order) is kept; an id already stored is never replaced. Both kinds of
duplicate are counted per file and reported, never dropped silently. Atomic: rows are
staged under ``_staging/<run_id>/`` and committed by :func:`lamostdb.catalog.commit.commit_run`
with the ledger rows in the same DuckDB transaction.
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
from tqdm import tqdm

from lamostdb.catalog.commit import STAGING, StagedFile, commit_run, new_run_id
from lamostdb.catalog.hats import leaf_relpath
from lamostdb.catalog.schema import load_schema
from lamostdb.catalog.store import Catalog
from lamostdb.healpix import healpix_29, pixel_at_order
from lamostdb.io.parquet import write_parquet
from lamostdb.io.sqlfiles import statement
from lamostdb.refcat.readers import (
    KINDS,
    Mapped,
    column_map,
    map_rows,
    read_source,
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


def ingest_refcat(cat: Catalog, kind: str, files: Sequence[str | Path], *,
                  columns: Mapping[str, str | None] | None = None,
                  progress: bool = True) -> RefcatReport:
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
        known = {r[0] for r in cat.con.execute(statement("refcat.sql", "known_refcat_files"),
                                               {"shas": shas, "kind": kind}).fetchall()}
        mapped: list[tuple[FileReport, Mapped]] = []
        seen: set[str] = set()
        for p, sha in tqdm(list(zip(paths, shas, strict=True)), unit="file",
                           desc=f"refcat {kind}", disable=not progress):
            fr = FileReport(str(p), sha)
            report.files.append(fr)
            if sha in known or sha in seen:
                fr.unchanged = True
                report.n_unchanged += 1
                continue
            seen.add(sha)
            src = read_source(p)
            res = resolve_columns(src, kind, columns)
            m = map_rows(src, kind, res, schema)
            fr.n_rows, fr.dropped, fr.column_map = m.n_rows, m.dropped, res.sources
            fr.notes = list(res.notes) + [f"{c}: {n} null value(s) set to the default"
                                          for c, n in m.filled.items()]
            mapped.append((fr, m))
        table = _new_rows(cat, kind, mapped, report.run_id, schema)
        staged = _stage(cat, kind, table, report.run_id)
        _summarise(report, [fr for fr, _ in mapped])
        report.elapsed_s = round(time.perf_counter() - t0, 3)
        ledger = _ledger_table(kind, [fr for fr, _ in mapped], report.run_id)

        def ledger_writes() -> None:
            if ledger.num_rows:
                cat.con.register("staged_refcat_ledger", ledger)
                cat.con.execute(statement("refcat.sql", "insert_refcat_ledger_rows"))
                cat.con.unregister("staged_refcat_ledger")

        if mapped:
            commit_run(cat, report.run_id, "refcat", staged, ledger_writes, report.as_dict())
    report.elapsed_s = round(time.perf_counter() - t0, 3)
    return report


def _new_rows(cat: Catalog, kind: str, mapped: list[tuple[FileReport, Mapped]], run_id: str,
              schema: pa.Schema) -> pa.Table:
    """Concatenate the files' rows, drop repeated and already stored ids, add the index."""
    if not mapped:
        return schema.empty_table()
    id_col, ra_col, dec_col = (column_map()[kind][k] for k in ("id", "ra", "dec"))
    table = pa.concat_tables([m.table for _, m in mapped])
    origin = np.repeat(np.arange(len(mapped)), [m.table.num_rows for _, m in mapped])
    ids = table.column(id_col).to_numpy()
    # np.unique's index is the first occurrence: files in the order given, rows in file order
    _, first = np.unique(ids, return_index=True)
    keep = np.zeros(ids.size, bool)
    keep[first] = True
    for i, (fr, _) in enumerate(mapped):
        fr.n_duplicates_in_input = int(np.sum(~keep & (origin == i)))
    stored = _stored_ids(cat, kind, ids[keep])
    old = keep & np.isin(ids, stored)
    for i, (fr, _) in enumerate(mapped):
        fr.n_already_stored = int(np.sum(old & (origin == i)))
    keep &= ~old
    for i, (fr, _) in enumerate(mapped):
        fr.n_added = int(np.sum(keep & (origin == i)))
    table = table.filter(pa.array(keep))
    hp = healpix_29(table.column(ra_col).to_numpy(), table.column(dec_col).to_numpy())
    table = table.append_column("_healpix_29", pa.array(hp, pa.int64()))
    table = table.append_column("ingest_run", pa.array([run_id] * table.num_rows, pa.string()))
    order = np.lexsort((table.column(id_col).to_numpy(), hp))
    return table.take(pa.array(order)).select(schema.names).cast(schema)


def _stored_ids(cat: Catalog, kind: str, ids: np.ndarray) -> np.ndarray:
    if ids.size == 0 or not cat.table_files(kind):
        return np.empty(0, np.int64)
    cat.con.register("refcat_candidate_ids", pa.table({"id": pa.array(ids, pa.int64())}))
    try:
        rows = cat.con.execute(statement("refcat.sql", f"stored_{kind}_ids")).fetchall()
    finally:
        cat.con.unregister("refcat_candidate_ids")
    return np.array([r[0] for r in rows], np.int64)


def _stage(cat: Catalog, kind: str, table: pa.Table, run_id: str) -> list[StagedFile]:
    """Write one staged Parquet file per partition pixel (rows already sorted by index)."""
    if table.num_rows == 0:
        return []
    order = cat.partition_order
    pix = pixel_at_order(table.column("_healpix_29").to_numpy(), order)
    starts = np.flatnonzero(np.r_[True, pix[1:] != pix[:-1]])
    bounds = np.r_[starts, pix.size]
    staged: list[StagedFile] = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        npix = int(pix[a])
        leaf = leaf_relpath(kind, order, npix)
        name = f"part-{run_id}-{i:05d}.parquet"
        rel = f"{STAGING}/{run_id}/{leaf}/{name}"
        part = table.slice(int(a), int(b - a))
        nbytes = write_parquet(part, cat.root / rel, row_group_size=ROW_GROUP_SIZE)
        staged.append(StagedFile(kind, rel, f"{leaf}/{name}", order, npix, part.num_rows,
                                 nbytes))
    return staged


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
    rows = [{"sha256": fr.sha256, "kind": kind, "path": fr.path,
             "size_bytes": Path(fr.path).stat().st_size, "n_rows": fr.n_rows,
             "n_added": fr.n_added, "n_dropped": fr.n_dropped,
             "n_duplicates": fr.n_duplicates_in_input + fr.n_already_stored,
             "column_map": json.dumps(fr.column_map, sort_keys=True), "ingest_run": run_id}
            for fr in files]
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("sha256", pa.string()), ("kind", pa.string()), ("path", pa.string()),
        ("size_bytes", pa.int64()), ("n_rows", pa.int64()), ("n_added", pa.int64()),
        ("n_dropped", pa.int64()), ("n_duplicates", pa.int64()), ("column_map", pa.string()),
        ("ingest_run", pa.string())]))
