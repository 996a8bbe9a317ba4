"""``export_release``: write a data release of a catalogue into a new folder.

A release holds ``lrs.fits`` and ``mec.fits`` (the catalogue views as FITS tables), one
FITS file per spectrum (unless ``spectra=False``), ``manifest.json`` and ``SHA256SUMS``.
Its spectra are the current LAMOST spectra of the catalogue, or those for which the
``where`` fragment holds: a SQL condition over the columns of the ``lrs`` view, e.g.
``class = 'QSO' AND snrg > 10``. The fragment is SQL typed by the user who runs the
export, trusted like a query of ``lamostdb sql``: it is pasted into the selection
statement (the catalogue is open read-only and a single expression is enforced).

The release is written into a hidden sibling folder and renamed into place at the end,
so OUT never holds half a release; on any error the partial folder is removed. The
spectrum files are written partition by partition (:mod:`lamostdb.export.spectra`) on the
executor chosen by ``cluster`` (or ``workers`` local processes); the tables and the
manifest are written here.

A spectrum whose file cannot be made is left out and named, with the reason, in the
report (``not_written``), in ``manifest.json`` (``not_written``) and by the command; the
rest of the release is written (its ``lrs``/``mec`` rows stay in the tables).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from lamostdb.catalog.store import Catalog
from lamostdb.execute import parse_cluster
from lamostdb.export.errors import ExportError
from lamostdb.export.header import ReleaseInfo
from lamostdb.export.manifest import ManifestWriter
from lamostdb.export.spectra import export_spectra
from lamostdb.export.tables import export_table
from lamostdb.io.sqlfiles import statement
from lamostdb.version import VERSION

WHERE_MARK = "{{where}}"
DEFAULT_BATCH_SIZE = 256
_RELEASE_MAX = 68  # one header card


@dataclass
class ExportReport:
    """What ``export_release`` wrote."""

    release: str
    out: Path
    n_spectra: int = 0
    n_lrs_rows: int = 0
    n_mec_rows: int = 0
    n_files: int = 0
    nbytes: int = 0
    spectra_bytes: int = 0
    max_batch_rows: int = 0
    executor: dict[str, object] = field(default_factory=dict)
    unclean_header_cards: dict[str, int] = field(default_factory=dict)
    #: (specid, reason) of the selected spectra whose file could not be made
    not_written: list[tuple[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    spectra_elapsed_s: float = 0.0


def _check_release_name(name: str) -> None:
    if not name or not name.strip():
        raise ExportError("--release NAME is empty; name the release, e.g. --release DR-test-1")
    if not (name.isascii() and name.isprintable()) or len(name) > _RELEASE_MAX:
        raise ExportError(
            f"release name {name!r} must be printable ASCII of at most "
            f"{_RELEASE_MAX} characters (it goes into every FITS header)"
        )


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(
            f"{out} exists and is not an empty folder; choose a new folder for "
            "the release (or empty this one)"
        )
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent} does not exist; create it first")


def selection_statement(con: duckdb.DuckDBPyConnection, where: str | None) -> str:
    """The selection statement with the user's condition in place (one statement only)."""
    template = statement("export.sql", "create_selection")
    condition = "TRUE" if where is None else where.strip()
    if not condition:
        raise ExportError(
            "--where is empty; give a SQL condition over lrs columns, e.g. "
            "--where \"class = 'QSO'\""
        )
    sql = template.replace(WHERE_MARK, condition)
    try:
        n_statements = len(con.extract_statements(sql))
    except duckdb.Error as exc:
        raise ExportError(
            f"--where {where!r} is not a SQL condition over lrs columns: {exc}"
        ) from None
    if n_statements != 1:
        raise ExportError(f"--where {where!r} must be one SQL condition, not several statements")
    return sql


def _select(con: duckdb.DuckDBPyConnection, where: str | None) -> dict[str, Any]:
    try:
        con.execute(selection_statement(con, where))
    except duckdb.Error as exc:
        raise ExportError(f"--where {where!r} failed over the lrs view: {exc}") from None
    row = con.sql(statement("export.sql", "selection_summary")).fetchall()[0]
    names = (
        "n_selected",
        "n_unclassified",
        "first_unclassified",
        "n_without_uid",
        "first_without_uid",
        "n_results",
        "n_objects",
    )
    return dict(zip(names, row, strict=True))


def _check_selection(s: dict[str, Any], where: str | None, catalog: Path) -> None:
    if s["n_results"] == 0:
        raise ExportError(
            f"catalogue {catalog} has no results yet: run `lamostdb classify {catalog}` first"
        )
    if s["n_selected"] == 0:
        what = f"--where {where!r} matches" if where else "the catalogue holds"
        raise ExportError(f"{what} no current LAMOST spectrum; nothing to export")
    if s["n_unclassified"]:
        raise ExportError(
            f"{s['n_unclassified']} of the {s['n_selected']} spectra to export "
            f"have no classification (e.g. {s['first_unclassified']}): run "
            f"`lamostdb classify {catalog}`"
        )
    if s["n_without_uid"]:
        raise ExportError(
            f"{s['n_without_uid']} of the {s['n_selected']} spectra to export "
            f"have no object identifiers (e.g. {s['first_without_uid']}): run "
            f"`lamostdb xmatch {catalog}` and `lamostdb ids {catalog}`"
        )


def export_release(
    catalog: Catalog,
    out: str | Path,
    *,
    release: str,
    where: str | None = None,
    spectra: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    gzip: bool = False,
    progress: bool = True,
    workers: int | None = 1,
    cluster: str | None = None,
) -> ExportReport:
    """Write a data release of ``catalog`` into the new folder ``out``.

    Parameters
    ----------
    catalog
        An open catalogue (read-only is enough).
    out
        Release folder: must not exist, or be empty.
    release
        Release name, written into every header and the manifest.
    where
        Trusted SQL condition over ``lrs`` columns selecting the spectra (default: all).
    spectra
        Write the per-spectrum files (``False``: catalogue tables only).
    batch_size
        Rows per Arrow batch: what memory holds at a time.
    gzip
        Write the spectrum files gzip-compressed (``.fits.gz``).
    progress
        Show progress bars.
    workers
        Local worker processes writing the spectrum files (default 1: this process;
        ``None``: one per CPU).
    cluster
        ``None`` (local), ``"local:N"`` (a Dask LocalCluster) or ``"tcp://HOST:PORT"`` (a
        running Dask scheduler, whose workers must see ``out``'s folder): where the
        spectrum files are written (:func:`lamostdb.execute.open_executor`).
    """
    parse_cluster(cluster)
    t0 = time.perf_counter()
    _check_release_name(release)
    if batch_size < 1:
        raise ExportError(f"--batch-size must be >= 1, got {batch_size}")
    out = Path(out).absolute()
    _check_out(out)
    con = catalog.con
    try:
        report = _write_release(
            catalog,
            out,
            release=release,
            where=where,
            spectra=spectra,
            batch_size=batch_size,
            gzip=gzip,
            progress=progress,
            workers=workers,
            cluster=cluster,
        )
    finally:
        con.execute(statement("export.sql", "drop_selection"))
    report.elapsed_s = time.perf_counter() - t0
    return report


def _write_release(
    catalog: Catalog,
    out: Path,
    *,
    release: str,
    where: str | None,
    spectra: bool,
    batch_size: int,
    gzip: bool,
    progress: bool,
    workers: int | None,
    cluster: str | None,
) -> ExportReport:
    con = catalog.con
    summary = _select(con, where)
    _check_selection(summary, where, catalog.root)
    engines = tuple(r[0] for r in con.sql(statement("export.sql", "engine_versions")).fetchall())
    info = ReleaseInfo(
        release, dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), VERSION, engines
    )
    report = ExportReport(release, out, n_spectra=summary["n_selected"])
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
    except OSError as exc:
        raise ExportError(
            f"cannot write in {out.parent} ({exc.strerror}); choose a folder you can write to"
        ) from None
    manifest = ManifestWriter(staging)
    try:
        for view in ("lrs", "mec"):
            tab = export_table(
                con,
                view,
                staging / f"{view}.fits",
                release=info,
                batch_size=batch_size,
                progress=progress,
            )
            manifest.add_file(tab.path.name, kind="table", rows=tab.nrows)
            setattr(report, f"n_{view}_rows", tab.nrows)
            report.max_batch_rows = max(report.max_batch_rows, tab.max_batch_rows)
        if spectra:
            t1 = time.perf_counter()
            spec, report.executor = export_spectra(
                catalog,
                staging,
                release=info,
                batch_size=batch_size,
                gzip=gzip,
                total=summary["n_selected"],
                progress=progress,
                on_file=lambda rel, n, sha: manifest.add(
                    rel, kind="spectrum", nbytes=n, sha256=sha
                ),
                workers=workers,
                cluster=cluster,
            )
            report.spectra_elapsed_s = time.perf_counter() - t1
            report.not_written = list(spec.failed)
            if spec.n_files + len(spec.failed) != summary["n_selected"]:
                raise ExportError(
                    f"{summary['n_selected']} spectra were selected but "
                    f"{spec.n_files + len(spec.failed)} read back: the catalogue "
                    "changed during the export; run it again"
                )
            report.spectra_bytes = spec.nbytes
            report.max_batch_rows = max(report.max_batch_rows, spec.max_batch_rows)
            report.unclean_header_cards = dict(spec.unclean_cards.most_common())
        head = {
            "release": release,
            "created_utc": info.created,
            "lamostdb_version": info.lamostdb_version,
            "engine_versions": list(info.engine_versions),
            "catalog": str(catalog.root),
            "selection": {"where": where, "statement": selection_statement(con, where)},
            "options": {"spectra": spectra, "gzip": gzip, "batch_size": batch_size},
            "not_written": [{"specid": sid, "reason": why} for sid, why in report.not_written],
            "counts": {
                "spectra": report.n_spectra - len(report.not_written) if spectra else 0,
                "not_written": len(report.not_written),
                "lrs_rows": report.n_lrs_rows,
                "mec_rows": report.n_mec_rows,
            },
            "unclean_header_cards": report.unclean_header_cards,
        }
        report.n_files = manifest.n_files
        report.nbytes = manifest.nbytes
        manifest.close(head)
        staging.replace(out)  # an empty OUT is replaced too (rename(2))
    except BaseException:
        manifest.abort()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report
