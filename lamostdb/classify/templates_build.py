"""Driver of ``lamostdb templates build``: a catalogue's labelled spectra to a library file.

Counts the spectra per label first (no pixel columns read), then streams the spectra of
the stellar labels, ordered by label, in Arrow record batches; each label's spectra go to the
pure kernel (`lamostdb.templates.build.build_templates`) as soon as they are complete, so
memory holds one label at a time. The templates are written as a library file
(`lamostdb.templates.libfile.write_library`) with the provenance.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
from tqdm import tqdm

from lamostdb.catalog.store import Catalog
from lamostdb.classify.labels import LABEL_COLUMNS, Z_COLUMNS
from lamostdb.io.sqlfiles import statement
from lamostdb.match.batch import batch_to_matrices
from lamostdb.templates.build import BuildConfig, BuildResult, ReportedLabel, build_templates
from lamostdb.templates.grid import WORKING_GRID
from lamostdb.templates.libfile import TemplateStats, write_library
from lamostdb.templates.subclass import spectral_letter
from lamostdb.version import VERSION

#: Columns of ``spectra`` that may serve as labels, and as redshifts (allow-lists: they are
#: pasted into the SQL as identifiers, so nothing else may be).
SQL_FILE = "templates_build.sql"
BATCH_ROWS = 256

__all__ = [
    "LABEL_COLUMNS",
    "Z_COLUMNS",
    "TemplateBuildReport",
    "build_library",
    "build_catalog_templates",
]


@dataclass(frozen=True)
class TemplateBuildReport:
    """What `build_library` made: the kernel's result and where it went."""

    result: BuildResult
    out: Path
    n_read: int
    provenance: str


def _sql(name: str, label_column: str, z_column: str) -> str:
    if label_column not in LABEL_COLUMNS:
        raise ValueError(
            f"--label {label_column!r}: not a label column of spectra; choose one "
            f"of {', '.join(LABEL_COLUMNS)}"
        )
    if z_column not in Z_COLUMNS:
        raise ValueError(
            f"--z-column {z_column!r}: not a redshift column of spectra; choose "
            f"one of {', '.join(Z_COLUMNS)}"
        )
    return (
        statement(SQL_FILE, name)
        .replace("{{label}}", f'"{label_column}"')
        .replace("{{z}}", f'"{z_column}"')
    )


def _merge(parts: list[BuildResult], extra: list[ReportedLabel], cfg: BuildConfig) -> BuildResult:
    from lamostdb.templates.build import rest_grid

    loglam0, _, _ = rest_grid(WORKING_GRID, cfg.max_abs_z)
    templates = tuple(sorted((t for p in parts for t in p.templates), key=lambda t: t.label))
    reported = tuple(extra) + tuple(r for p in parts for r in p.reported)
    return BuildResult(loglam0, WORKING_GRID.dloglam, templates, reported, cfg)


class _LabelBuffer:
    """Matrices of one label's spectra, gathered batch by batch."""

    def __init__(self) -> None:
        self.label: str | None = None
        self.reset()

    def reset(self) -> None:
        self.label = None
        self.flux: list[npt.NDArray[np.float32]] = []
        self.ivar: list[npt.NDArray[np.float32]] = []
        self.z: list[npt.NDArray[np.float64]] = []
        self.snr: list[npt.NDArray[np.float64]] = []

    def add(self, label: str, df: pl.DataFrame) -> None:
        flux, ivar = batch_to_matrices(df)
        self.label = label
        self.flux.append(flux.astype(np.float32))
        self.ivar.append(ivar.astype(np.float32))
        self.z.append(df["z"].cast(pl.Float64).fill_null(np.nan).to_numpy())
        self.snr.append(df["snrg"].cast(pl.Float64).fill_null(np.nan).to_numpy())

    def build(self, cfg: BuildConfig) -> BuildResult | None:
        if self.label is None:
            return None
        n = sum(f.shape[0] for f in self.flux)
        out = build_templates(
            np.concatenate(self.flux),
            np.concatenate(self.ivar),
            [self.label] * n,
            np.concatenate(self.z),
            np.concatenate(self.snr),
            config=cfg,
        )
        self.reset()
        return out


def build_catalog_templates(
    cat: Catalog,
    *,
    label_column: str = "lasp_subclass",
    z_column: str = "lasp_z",
    config: BuildConfig | None = None,
    max_per_label: int = 1000,
    progress: bool = True,
) -> tuple[BuildResult, int]:
    """Stack a catalogue's labelled spectra per label; returns the result and spectra read."""
    cfg = config or BuildConfig()
    if max_per_label < 1:
        raise ValueError(f"--max-per-label must be >= 1, got {max_per_label}")
    counts = cat.con.execute(
        _sql("label_counts", label_column, z_column), {"min_snr": cfg.min_snr}
    ).fetchall()
    extra: list[ReportedLabel] = []
    stellar: list[str] = []
    n_todo = 0
    for label, n_all, n_snr in counts:
        if label is None or not str(label).strip() or spectral_letter(str(label)) is None:
            extra.append(ReportedLabel(label, int(n_all), "not a stellar subclass"))
            continue
        if n_all > n_snr:
            extra.append(
                ReportedLabel(
                    label,
                    int(n_all - n_snr),
                    f"spectra with snrg < {cfg.min_snr} (or none) not used",
                )
            )
        if n_snr > max_per_label:
            extra.append(
                ReportedLabel(
                    label,
                    int(n_snr - max_per_label),
                    f"spectra beyond the {max_per_label} of highest S/N not used (--max-per-label)",
                )
            )
        if n_snr == 0:
            extra.append(
                ReportedLabel(
                    label, 0, f"too few spectra with S/N >= {cfg.min_snr} (0 < {cfg.min_spectra})"
                )
            )
            continue
        stellar.append(str(label))
        n_todo += min(int(n_snr), max_per_label)
    parts: list[BuildResult] = []
    n_read = 0
    if stellar:
        reader = cat.con.sql(
            _sql("labelled_spectra", label_column, z_column),
            params={"labels": stellar, "min_snr": cfg.min_snr, "max_per_label": max_per_label},
        ).to_arrow_reader(BATCH_ROWS)
        buf = _LabelBuffer()
        with tqdm(
            total=n_todo, unit="spectrum", desc="templates build", disable=not progress
        ) as bar:
            for batch in reader:
                df = pl.from_arrow(batch)
                assert isinstance(df, pl.DataFrame)
                for (label,), part in df.group_by("label", maintain_order=True):
                    if buf.label is not None and buf.label != label:
                        res = buf.build(cfg)
                        if res is not None:
                            parts.append(res)
                    buf.add(str(label), part)
                n_read += df.height
                bar.update(df.height)
            res = buf.build(cfg)
            if res is not None:
                parts.append(res)
    return _merge(parts, extra, cfg), n_read


def build_library(
    catalog: str | Path,
    out: str | Path,
    *,
    label_column: str = "lasp_subclass",
    z_column: str = "lasp_z",
    config: BuildConfig | None = None,
    max_per_label: int = 1000,
    name: str | None = None,
    progress: bool = True,
) -> TemplateBuildReport:
    """Build templates from ``catalog`` and write them to the library file ``out``."""
    from lamostdb.catalog.store import open_catalog

    cfg = config or BuildConfig()
    with open_catalog(catalog) as cat:
        result, n_read = build_catalog_templates(
            cat,
            label_column=label_column,
            z_column=z_column,
            config=cfg,
            max_per_label=max_per_label,
            progress=progress,
        )
    if not result.templates:
        reasons = "; ".join(f"{r.label}: {r.reason}" for r in result.reported[:10])
        raise ValueError(
            f"{catalog}: no label had enough spectra to build a template "
            f"({reasons}); lower --min-spectra or --min-snr, or ingest more "
            "labelled spectra"
        )
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    provenance = "\n".join(
        [
            f"lamostdb {VERSION} templates build, {created}",
            f"catalogue: {Path(catalog).resolve()}",
            f"label column: {label_column}; redshift column: {z_column}; "
            f"max per label: {max_per_label}",
            f"spectra read: {n_read}; templates: {len(result.templates)}; "
            f"labels or spectra reported: {len(result.reported)}",
            "config: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items()),
        ]
    )
    stats = [[TemplateStats(t.n_spectra, t.median_snr, t.scatter) for t in result.templates]]
    source = f"lamostdb templates build ({Path(catalog).name}, {label_column})"
    write_library(
        out,
        [result.template_set(source=source)],
        name=name or f"{Path(catalog).name}-{label_column}",
        provenance=provenance,
        stats=stats,
        licences=["same as the catalogue's spectra"],
    )
    return TemplateBuildReport(result, Path(out), n_read, provenance)
