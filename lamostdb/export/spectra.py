"""The spectrum files of a release, partition by partition, on an executor.

The driver (:func:`export_spectra`) reads the release's selection with each spectrum's
pixel, plans one :class:`SpectraTask` per partition of the ``spectra`` table (its committed
Parquet files and its selected rows, a light table of keys, results and UIDs) and runs
:func:`spectra_task` on the executor chosen by ``cluster`` (the local pool, a Dask
cluster; one process by default). Each task opens a private DuckDB connection, streams
its partition's rows in batches of ``batch_size`` spectra, makes the files with the pure
:func:`~lamostdb.export.partition.prepare_spectra` and writes them into the release folder
(which the workers must see: a shared filesystem for a remote cluster); it returns what
it wrote, and the driver alone records the files in the manifest.

Files go to ``spectra/<night>/<planid>/spec-<specid>.fits[.gz]`` (the LAMOST file name).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from tqdm import tqdm

from lamostdb.catalog import registry
from lamostdb.catalog.store import Catalog
from lamostdb.execute import open_executor
from lamostdb.export.errors import ExportError
from lamostdb.export.header import ReleaseInfo
from lamostdb.export.partition import (
    PIXEL_COLUMNS,
    SpectraConfig,
    prepare_spectra,
    spectrum_relpath,
)
from lamostdb.healpix import pixel_at_order
from lamostdb.io.fits_write import write_file
from lamostdb.io.sqlfiles import statement

__all__ = [
    "PIXEL_COLUMNS",
    "SpectraExport",
    "SpectraTask",
    "export_spectra",
    "spectra_task",
    "spectrum_relpath",
]

#: (path relative to the release, bytes on disk, sha256) of each file written
FileCallback = Callable[[str, int, str], None]
#: Folder (in the release being written) of the local pool's worker records; removed after.
_WORKERS = ".workers"


@dataclass
class SpectraExport:
    """What the spectrum pass wrote (one task's part, or the sum of all)."""

    n_files: int = 0
    nbytes: int = 0
    n_rows: int = 0
    max_batch_rows: int = 0
    unclean_cards: Counter[str] = field(default_factory=Counter)
    #: (specid, reason) of the spectra whose file could not be made
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: (path relative to the release, bytes on disk, sha256) of each file written
    files: list[tuple[str, int, str]] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class SpectraTask:
    """One partition of the release: its Parquet files and its selected rows."""

    order: int
    npix: int
    files: tuple[str, ...]
    selection: pa.Table  # specid, source_sha256, result, uid
    root: str  # the release folder being written
    batch_size: int
    config: SpectraConfig


def spectra_task(task: SpectraTask) -> SpectraExport:
    """Write the files of one partition's spectra (module level: runs in a worker)."""
    out = SpectraExport()
    root = Path(task.root)
    made: set[Path] = set()
    con = duckdb.connect()
    try:
        registry.register_parquet(con, "spectra", "spectra", list(task.files))
        con.register("export_selection", task.selection)
        con.execute(statement("export.sql", "keep_join_order"))
        reader = con.sql(statement("export.sql", "spectrum_rows")).to_arrow_reader(task.batch_size)
        try:
            for batch in reader:
                out.n_rows += batch.num_rows
                out.max_batch_rows = max(out.max_batch_rows, batch.num_rows)
                prepared = prepare_spectra(batch, task.config)
                out.failed += prepared.failed
                out.unclean_cards.update(prepared.unclean_cards)
                for rel, data in prepared.files:
                    nbytes, sha = _write(root, rel, data, task.config.gzip, made)
                    out.files.append((rel, nbytes, sha))
                    out.n_files += 1
                    out.nbytes += nbytes
        finally:
            reader.close()
    finally:
        con.close()
    return out


def _write(root: Path, rel: str, data: bytes, gzip: bool, made: set[Path]) -> tuple[int, str]:
    path = root / rel
    try:
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        return write_file(path, data, gzip=gzip)
    except OSError as exc:
        specid = path.name.removeprefix("spec-").split(".fits")[0]
        raise ExportError(
            f"spectrum {specid}: cannot write {rel} ({exc.strerror or exc}); "
            "free space or fix the permissions and export again"
        ) from None


def plan_tasks(
    catalog: Catalog, root: Path, *, config: SpectraConfig, batch_size: int
) -> list[SpectraTask]:
    """One task per partition of ``spectra`` holding selected rows (``export_selection``)."""
    selection = catalog.con.sql(statement("export.sql", "selection_pixels")).to_arrow_table()
    hp = selection.column("_healpix_29").to_numpy()
    keys = selection.drop_columns(["_healpix_29"])
    leaves: dict[tuple[int, int], list[str]] = {}
    for f in catalog.table_files("spectra"):
        leaves.setdefault((f.norder, f.npix), []).append(str(catalog.root / f.path))
    tasks = []
    for (order, npix), files in sorted(leaves.items()):
        # a row whose pixel lies in two leaves (of two orders) is in the files of one only:
        # the other task's join does not find it
        mask = pixel_at_order(hp, order) == npix
        if mask.any():
            tasks.append(
                SpectraTask(
                    order,
                    npix,
                    tuple(sorted(files)),
                    keys.filter(pa.array(mask)),
                    str(root),
                    batch_size,
                    config,
                )
            )
    return tasks


def export_spectra(
    catalog: Catalog,
    root: Path,
    *,
    release: ReleaseInfo,
    batch_size: int,
    gzip: bool = False,
    total: int | None = None,
    progress: bool = False,
    on_file: FileCallback | None = None,
    workers: int | None = 1,
    cluster: str | None = None,
) -> tuple[SpectraExport, dict[str, object]]:
    """Write one file per spectrum of ``export_selection`` under ``root``.

    Returns what was written and the executor's summary. Pixel data stream through one
    Arrow batch of ``batch_size`` spectra at a time in each worker.
    """
    tasks = plan_tasks(catalog, root, config=SpectraConfig(release, gzip), batch_size=batch_size)
    report = SpectraExport()
    bar = tqdm(total=total, unit="spectrum", desc="export spectra", disable=not progress)
    try:
        with open_executor(
            cluster,
            workers=workers,
            n_tasks=max(len(tasks), 1),
            root=root,
            staging=_WORKERS,
            run_id="export",
            preload="lamostdb.export.spectra",
        ) as ex:
            for _, part in ex.run(spectra_task, tasks):
                report.n_files += part.n_files
                report.nbytes += part.nbytes
                report.n_rows += part.n_rows
                report.max_batch_rows = max(report.max_batch_rows, part.max_batch_rows)
                report.unclean_cards.update(part.unclean_cards)
                report.failed += part.failed
                if on_file is not None:
                    for rel, nbytes, sha in part.files:
                        on_file(rel, nbytes, sha)
                bar.update(part.n_rows)
            summary = ex.summary().as_dict()
    finally:
        bar.close()
        shutil.rmtree(root / _WORKERS, ignore_errors=True)
    report.failed.sort()
    return report, summary
