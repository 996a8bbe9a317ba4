"""The cost model of ``plan_full_release.py``: measured per-core rates and driver costs in,
projected wall time, storage and first bottleneck out. Pure: no measurement, no files.

Model, for ``S`` spectra against ``G`` reference rows on ``N`` workers::

    compute   = (S * sum_stages 1 / rate_stage + G / join_rate) / N       scales with N
    FS        = bytes read and written by all stages / shared-filesystem bandwidth
    commits   = runs * stages * per_run + per_file * files committed       serial (driver)
    metadata  = per_file_meta * files listed, at every commit of a table   serial (driver)
    ledger    = per_input_file * S                                          serial (driver)
    wall      = max(compute, FS) + commits + metadata + ledger

Two layouts: ``nightly`` (today: the release arrives as ``nights`` runs, each stage commits
the files it wrote that night (per spectrum or per plate, :data:`FILES_GROW_WITH`), nothing
is compacted, so each commit rewrites the metadata of
every file written so far: quadratic in the nights), and ``compacted`` (one reprocessing
run per stage, one staged file per partition, partitions sized to ``target_mb`` as
``lamostdb compact`` leaves them).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

SKY_DEG2 = 4 * math.pi * (180 / math.pi) ** 2  # 41 252.96 square degrees
#: Stages whose spectra/s per core enter the compute term, and the tables each writes.
STAGE_TABLES = {
    "ingest": ("spectra",),
    "classify": ("results", "candidates"),
    "xmatch": ("xmatch",),
    "ids": ("objects",),
    "export": (),
}
#: Per-spectrum bytes moved over the shared filesystem, as multiples of each table's bytes
#: per spectrum: spectra written (ingest) and read (classify, export; xmatch reads only
#: positions), results/candidates written, xmatch written then read by ids, objects
#: written; plus the input FITS read by ingest and the release files written by export.
IO_MULTIPLES = {"spectra": 3.0, "results": 1.0, "candidates": 1.0, "xmatch": 2.0, "objects": 1.0}

#: How each table's file count grows in a night: ingest writes one file per chunk of input
#: files and leaf, classify one per spectra file (so per spectrum, for full chunks);
#: xmatch and ids one per leaf touched (so per plate: a plate is one field).
FILES_GROW_WITH = {
    "spectra": "spectrum",
    "results": "spectrum",
    "candidates": "spectrum",
    "xmatch": "plate",
    "objects": "plate",
}

ANSWERS = {
    "compute": "more workers: every stage is a partition function, tasks scale with N",
    "shared filesystem": "HATS margin reads: each xmatch task reads only the Gaia partitions "
    "it overlaps plus their margin, and Gaia is attached, not copied; "
    "put workers next to the data (object store, local Parquet)",
    "driver commit": "per-partition staged writes: one file per partition per stage, so a "
    "commit moves P files, not one per night and leaf",
    "metadata rewrite": "lamostdb compact: fewer, larger files, so the _metadata rewrite and "
    "the schema check (each reads one footer per file of the table, at "
    "every commit) stay small",
    "ledger": "the per-input-file ledger pass is serial on the driver: discover from a "
    "manifest and split the release into runs rather than stat() 2e7 files",
}


@dataclass(frozen=True)
class Measured:
    """What ``plan_full_release.py`` measured on this machine."""

    rate: dict[str, float]  # spectra/s per core (one worker, commit excluded), per stage
    join_rows_per_s: float  # reference rows/s per core through the pixel join
    refcat_rows_per_s: float  # refcat ingest rows/s (driver, today serial)
    bytes_per_row: dict[str, float]  # per table (marginal, as in a large file), gaia per row
    bytes_per_file: dict[str, float]  # per-file overhead (footer) per table
    files_per_spectrum: dict[str, float]  # files written per spectrum, per table
    files_per_plate: dict[str, float]  # files written per plate, per table
    fits_bytes: float  # input FITS bytes per spectrum
    export_bytes: float  # release bytes per spectrum
    commit_per_run_s: float
    commit_per_file_s: float
    meta_per_file_s: float
    meta_per_table_s: float
    ledger_per_file_s: float


@dataclass(frozen=True)
class Assumptions:
    """What the plan assumes (not measured here); all printed with the table."""

    n_spectra: float = 2e7
    n_reference: float = 1.8e9
    nights: int = 1000
    fibres_per_plate: int = 4000
    target_mb: float = 512.0
    fs_gb_per_s: float = 1.25  # 10 GbE to a shared filesystem
    gaia_ingested: bool = False  # False: attached as HATS (refcat attach), not copied


@dataclass
class Row:
    """One layout at one N (hours, except where named)."""

    layout: str
    n_workers: int
    compute_h: float
    fs_h: float
    commit_h: float
    metadata_h: float
    ledger_h: float
    wall_h: float
    files: float
    storage_tb: float
    bottleneck: str  # the largest term
    then: str  # the largest term but compute: what limits once workers are added
    terms: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _files(m: Measured, a: Assumptions, layout: str) -> dict[str, float]:
    """Files per table at the end of the release."""
    tables = [t for ts in STAGE_TABLES.values() for t in ts]
    if layout == "nightly":
        plates = a.n_spectra / a.fibres_per_plate
        return {
            t: (
                m.files_per_plate[t] * plates
                if FILES_GROW_WITH[t] == "plate"
                else m.files_per_spectrum[t] * a.n_spectra
            )
            for t in tables
        }
    return {
        t: max(1.0, math.ceil(a.n_spectra * m.bytes_per_row[t] / (a.target_mb * 1e6)))
        for t in tables
    }


def io_bytes(m: Measured, a: Assumptions) -> float:
    """Bytes over the shared filesystem for the whole release."""
    per_spectrum = (
        m.fits_bytes + m.export_bytes + sum(k * m.bytes_per_row[t] for t, k in IO_MULTIPLES.items())
    )
    return a.n_spectra * per_spectrum + a.n_reference * m.bytes_per_row["gaia"]


def storage_bytes(m: Measured, a: Assumptions, layout: str) -> float:
    """Catalogue bytes (Gaia included only when ingested rather than attached)."""
    files = _files(m, a, layout)
    total = sum(
        a.n_spectra * m.bytes_per_row[t] + n * m.bytes_per_file[t] for t, n in files.items()
    )
    if a.gaia_ingested:
        total += a.n_reference * m.bytes_per_row["gaia"]
    return total


def project(m: Measured, a: Assumptions, layout: str, n_workers: int) -> Row:
    """Projected hours of the release on ``n_workers`` (see the module docstring)."""
    files = _files(m, a, layout)
    n_files = sum(files.values())
    n_stages = len(STAGE_TABLES)
    core_s = a.n_spectra * sum(1.0 / m.rate[s] for s in STAGE_TABLES)
    core_s += a.n_reference / m.join_rows_per_s
    if a.gaia_ingested:
        core_s += a.n_reference / m.refcat_rows_per_s
    compute = core_s / n_workers
    fs = io_bytes(m, a) / (a.fs_gb_per_s * 1e9)
    n_tables = len(files)
    if layout == "nightly":
        runs = a.nights
        commit = runs * n_stages * m.commit_per_run_s + m.commit_per_file_s * n_files
        # the table has k/R of its final files after night k: sum_k k/R = (R + 1) / 2
        metadata = (
            m.meta_per_file_s * n_files * (runs + 1) / 2 + runs * n_tables * m.meta_per_table_s
        )
    else:
        commit = n_stages * m.commit_per_run_s + m.commit_per_file_s * n_files
        metadata = m.meta_per_file_s * n_files + n_tables * m.meta_per_table_s
    ledger = m.ledger_per_file_s * a.n_spectra
    terms = {
        "compute": compute,
        "shared filesystem": fs,
        "driver commit": commit,
        "metadata rewrite": metadata,
        "ledger": ledger,
    }
    wall = max(compute, fs) + commit + metadata + ledger
    bottleneck = max(terms, key=lambda k: terms[k])
    then = max((k for k in terms if k != "compute"), key=lambda k: terms[k])
    h = 1 / 3600
    return Row(
        layout,
        n_workers,
        compute * h,
        fs * h,
        commit * h,
        metadata * h,
        ledger * h,
        wall * h,
        n_files,
        storage_bytes(m, a, layout) / 1e12,
        bottleneck,
        then,
        {k: v * h for k, v in terms.items()},
    )


def projection(
    m: Measured, a: Assumptions, workers: tuple[int, ...] = (1, 8, 64, 512)
) -> list[Row]:
    """Both layouts at every N."""
    return [project(m, a, layout, n) for layout in ("nightly", "compacted") for n in workers]


def format_table(rows: list[Row], a: Assumptions) -> str:
    """The projection as a fixed-width text table (hours; storage in TB)."""
    head = (
        f"{'layout':<22}{'N':>5}{'compute h':>11}{'FS h':>9}{'commit h':>10}"
        f"{'meta h':>10}{'ledger h':>10}{'wall h':>10}{'files':>10}{'TB':>7}  "
        "first bottleneck (then)"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        name = (
            f"nightly ({a.nights} nights)"
            if r.layout == "nightly"
            else f"compacted ({a.target_mb:g} MB)"
        )
        lines.append(
            f"{name:<22}{r.n_workers:>5}{r.compute_h:>11.2f}{r.fs_h:>9.2f}"
            f"{r.commit_h:>10.3f}{r.metadata_h:>10.3f}{r.ledger_h:>10.3f}"
            f"{r.wall_h:>10.2f}{r.files:>10.3g}{r.storage_tb:>7.2f}  {r.bottleneck}"
            + ("" if r.bottleneck == r.then else f" ({r.then})")
        )
    return "\n".join(lines)
