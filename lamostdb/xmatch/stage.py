"""The xmatch stage: ``spectra`` + ``gaia`` + ``ps1`` in, ``xmatch`` out.

Every current spectrum without an ``xmatch`` row at this radius (``rerun=True``: every
current spectrum) gets its nearest Gaia source, after moving the Gaia positions with
their proper motion to the spectrum's epoch, and its nearest Pan-STARRS1 object, each with
the separation, the number of candidates within the radius and an ambiguity flag.

Spectra are taken in chunks of whole partitions (rows sorted by ``_healpix_29``); for
each chunk only the reference files whose partition is one of the chunk's partitions or a
neighbour are read, and DuckDB scans those with the pixel join of
:func:`~lamostdb.xmatch.kernel.crossmatch_pairs`, so a spectrum near a partition edge
finds its counterpart in the next partition. One Parquet file per spectrum partition is
written and committed atomically with the run record, like classify.

Ambiguity rule: a match is ambiguous when there are two or more candidates within the
radius and the second nearest is within ``max(1.5 x best, best + 1 arcsec)`` — close
enough that position alone cannot tell which one the fibre saw (LAMOST fibres are 3.3"
wide). Ambiguous matches keep the nearest candidate; nothing is dropped.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from lamostdb.catalog.commit import STAGING, StagedFile, commit_run, new_run_id
from lamostdb.catalog.hats import TableFile, leaf_relpath
from lamostdb.catalog.schema import all_schema_names, load_schema
from lamostdb.catalog.store import Catalog
from lamostdb.execute import parse_cluster
from lamostdb.healpix import SPATIAL_INDEX_ORDER
from lamostdb.io.parquet import write_parquet
from lamostdb.io.sqlfiles import statement
from lamostdb.xmatch.kernel import _registered, crossmatch_pairs
from lamostdb.xmatch.pixels import match_order, pixel_block

#: Reference tables matched, in the order of the xmatch columns.
REFERENCES = ("gaia", "ps1")
AMBIGUOUS_RATIO = 1.5
AMBIGUOUS_DELTA_ARCSEC = 1.0
#: Spectra per chunk (whole partitions): bounds the memory of one join.
CHUNK_SPECTRA = 200_000
#: Largest distance a reference source may have moved, used only to choose which
#: reference files to read (11"/yr, above Barnard's star, over 50 years).
MAX_MOTION_ARCSEC = 600.0


@dataclass
class XmatchReport:
    """What one xmatch run did (also stored as the run summary)."""

    run_id: str
    radius_arcsec: float
    n_todo: int = 0
    n_matched: dict[str, int] = field(default_factory=dict)
    n_ambiguous: dict[str, int] = field(default_factory=dict)
    reference_files_read: dict[str, int] = field(default_factory=dict)
    missing_references: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    spectra_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    #: where the partitions ran (:meth:`ExecutorSummary.as_dict`); None: in this process
    executor: dict[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


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


def _files_near(files: list[TableFile], hp29: np.ndarray, radius_arcsec: float) -> list[TableFile]:
    """Reference files whose partition holds, or neighbours, a partition of ``hp29``."""
    k_max = match_order(radius_arcsec + MAX_MOTION_ARCSEC)
    out = []
    for norder in sorted({f.norder for f in files}):
        k = min(norder, k_max)
        own = np.unique(hp29 >> np.int64(2 * (SPATIAL_INDEX_ORDER - k)))
        _, near = pixel_block(own << np.int64(2 * (SPATIAL_INDEX_ORDER - k)), k)
        wanted = set(np.unique(near).tolist())
        out += [f for f in files if f.norder == norder and f.npix >> 2 * (norder - k) in wanted]
    return out


def best_matches(con: duckdb.DuckDBPyConnection, pairs: pa.Table) -> pa.Table:
    """Nearest pair per ``left_id`` of :func:`crossmatch_pairs` output, with ``n_within``
    and ``ambiguous`` (second nearest within max(1.5 x best, best + 1 arcsec)).

    Ties in separation go to the smaller ``right_id``.
    """
    with _registered(con, xm_pairs=pairs):
        return con.sql(statement("xmatch.sql", "best"),
                       params={"ambiguous_ratio": AMBIGUOUS_RATIO,
                               "ambiguous_delta_arcsec": AMBIGUOUS_DELTA_ARCSEC}
                       ).to_arrow_table()


def _best(con: duckdb.DuckDBPyConnection, kind: str, left: pa.Table, ref: duckdb.DuckDBPyRelation,
          radius_arcsec: float) -> pa.Table:
    """Best-match columns of ``kind`` for each left row (``row`` plus the xmatch columns)."""
    with _registered(con, xm_ref_files=ref):
        right = con.sql(statement("xmatch.sql", f"{kind}_source"))
        pairs = crossmatch_pairs(con, left, right, radius_arcsec=radius_arcsec,
                                 proper_motion=(kind == "gaia"))
        best = best_matches(con, pairs)
        with _registered(con, xm_best=best):
            return con.sql(statement("xmatch.sql", f"{kind}_best")).to_arrow_table()


def _match_chunk(cat: Catalog, part: pa.Table, refs: dict[str, list[TableFile]],
                 radius_arcsec: float, run_id: str, report: XmatchReport) -> pa.Table:
    con = cat.con
    rows = pa.array(np.arange(part.num_rows, dtype=np.int64))
    left = pa.table({"id": rows, "ra": part.column("ra"), "dec": part.column("dec"),
                     "_healpix_29": part.column("_healpix_29"),
                     "epoch_jyear": part.column("epoch_jyear")})
    hp29 = part.column("_healpix_29").to_numpy()
    best: dict[str, pa.Table] = {}
    for kind in REFERENCES:
        files = _files_near(refs[kind], hp29, radius_arcsec)
        report.reference_files_read[kind] = report.reference_files_read.get(kind, 0) + len(files)
        if files:
            ref = con.read_parquet([str(cat.root / f.path) for f in files])
        else:  # an absent or empty reference: every match column stays null
            ref = con.from_arrow(load_schema(kind).arrow_schema().empty_table())
        best[kind] = _best(con, kind, left, ref, radius_arcsec)
    with _registered(con, xm_spectra=part.append_column("row", rows),
                     xm_gaia=best["gaia"], xm_ps1=best["ps1"]):
        out = con.sql(statement("xmatch.sql", "assemble"),
                      params={"radius_arcsec": radius_arcsec, "run_id": run_id}).to_arrow_table()
    return out.cast(load_schema("xmatch").arrow_schema())


def _stage_partitions(cat: Catalog, table: pa.Table, run_id: str, first_index: int
                      ) -> list[StagedFile]:
    """One staged Parquet file per spectrum partition of ``table`` (sorted by pixel)."""
    order = cat.partition_order
    npix = table.column("_healpix_29").to_numpy() >> np.int64(2 * (SPATIAL_INDEX_ORDER - order))
    staged = []
    bounds = np.flatnonzero(np.r_[True, npix[1:] != npix[:-1], True])
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        piece = table.slice(int(a), int(b - a))
        leaf = leaf_relpath("xmatch", order, int(npix[a]))
        name = f"part-{run_id}-{first_index + i:05d}.parquet"
        rel = f"{STAGING}/{run_id}/{leaf}/{name}"
        nbytes = write_parquet(piece, Path(cat.root) / rel, row_group_size=65_536)
        staged.append(StagedFile("xmatch", rel, f"{leaf}/{name}", order, int(npix[a]),
                                 piece.num_rows, nbytes))
    return staged


def xmatch(catalog: Catalog, *, radius_arcsec: float = 3.0, rerun: bool = False,
           progress: bool = True, chunk_spectra: int = CHUNK_SPECTRA,
           cluster: str | None = None) -> XmatchReport:
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
        About this many spectra (whole partitions) are matched at a time.
    cluster
        Where partitions run (``--cluster``: None, ``local:N`` or ``tcp://HOST:PORT``). Not
        yet used by this driver: the chunks run in this process (``executor`` None).

    Returns
    -------
    XmatchReport
        Counts per reference table; ``missing_references`` names those with no rows
        (their columns are null).
    """
    if not (np.isfinite(radius_arcsec) and radius_arcsec > 0):
        raise ValueError(f"radius_arcsec must be a positive number, got {radius_arcsec}")
    parse_cluster(cluster)
    t0 = time.perf_counter()
    run_id = new_run_id()
    report = XmatchReport(run_id, float(radius_arcsec))
    with catalog.write_lock():
        todo = catalog.con.sql(statement("xmatch.sql", "todo"),
                               params={"radius_arcsec": float(radius_arcsec), "rerun": rerun}
                               ).to_arrow_table()
        report.n_todo = todo.num_rows
        refs = {kind: (catalog.table_files(kind) if kind in all_schema_names() else [])
                for kind in REFERENCES}
        report.missing_references = [kind for kind, files in refs.items() if not files]
        if todo.num_rows == 0:
            return report
        hp29 = todo.column("_healpix_29").to_numpy()
        npix = hp29 >> np.int64(2 * (SPATIAL_INDEX_ORDER - catalog.partition_order))
        staged: list[StagedFile] = []
        counts = {f"{k}_{what}": 0 for k in REFERENCES for what in ("matched", "ambiguous")}
        bar = tqdm(total=todo.num_rows, unit="spectrum", desc="xmatch", disable=not progress)
        try:
            for sl in _chunks(npix, chunk_spectra):
                part = todo.slice(sl.start, sl.stop - sl.start)
                out = _match_chunk(catalog, part, refs, float(radius_arcsec), run_id, report)
                for kind, id_col in (("gaia", "gaia_source_id"), ("ps1", "ps1_objid")):
                    counts[f"{kind}_matched"] += out.num_rows - out.column(id_col).null_count
                    counts[f"{kind}_ambiguous"] += int(pc.sum(out.column(f"{kind}_ambiguous")
                                                              ).as_py() or 0)
                staged += _stage_partitions(catalog, out, run_id, len(staged))
                bar.update(part.num_rows)
        finally:
            bar.close()
        report.n_matched = {k: counts[f"{k}_matched"] for k in REFERENCES}
        report.n_ambiguous = {k: counts[f"{k}_ambiguous"] for k in REFERENCES}
        report.elapsed_s = round(time.perf_counter() - t0, 3)
        report.spectra_per_s = round(report.n_todo / max(report.elapsed_s, 1e-9), 1)
        report.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        commit_run(catalog, run_id, "xmatch", staged, lambda: None, report.as_dict())
    return report
