"""Truth labels and the joined frame: our results next to what the spectra really are.

Two truths:

- a Parquet table keyed by ``obsid`` with ``class``, ``z`` and optionally ``subclass``
  and ``v_kms`` (``truth.parquet`` of ``lamostdb simulate`` is one), joined on obsid;
- :data:`LAMOST_TRUTH` (``'lamost'``): the LAMOST pipeline's header labels stored in the
  spectra view (``lasp_class``, ``lasp_subclass``, ``lasp_z``), joined on specid.

Classes other than STAR, GALAXY and QSO (sky and junk fibres, ``Unknown``, null) become
UNKNOWN; the metrics count those rows and leave them out of every accuracy figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from lamostdb.io.sqlfiles import statement
from lamostdb.validate.metrics import CLASSES, OPTIONAL_COLUMNS, UNKNOWN

if TYPE_CHECKING:
    from lamostdb.catalog.store import Catalog

__all__ = ["LAMOST_TRUTH", "Joined", "load_joined", "read_truth_table"]

LAMOST_TRUTH = "lamost"
_RESULT_COLUMNS = ("specid", "obsid", "snrg", "class", "subclass", "z")
_TRUTH_COLUMNS = ("true_class", "true_subclass", "true_z", "true_v_kms")


@dataclass(frozen=True)
class Joined:
    """The joined frame and what went into it."""

    frame: pl.DataFrame
    #: ``'lamost'`` or the truth file's path.
    truth: str
    #: Rows of the truth (for ``'lamost'``: current spectra).
    n_truth: int
    #: Rows of the results view.
    n_results: int


def _clean_class(col: str) -> pl.Expr:
    up = pl.col(col).cast(pl.String).str.strip_chars().str.to_uppercase()
    return pl.when(up.is_in(CLASSES)).then(up).otherwise(pl.lit(UNKNOWN))


def read_truth_table(path: str | Path) -> pl.DataFrame:
    """Truth columns of a Parquet file keyed by obsid.

    Returns
    -------
    polars.DataFrame
        ``obsid``, ``true_class`` (STAR/GALAXY/QSO/UNKNOWN), ``true_subclass``,
        ``true_z``, ``true_v_kms`` (null where the file has no such column).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file lacks ``obsid``, ``class`` or ``z``, or repeats an obsid.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"truth file {path} does not exist; give the truth.parquet of "
            "`lamostdb simulate` or --truth lamost for the LAMOST labels"
        )
    raw = pl.read_parquet(path)
    missing = [c for c in ("obsid", "class", "z") if c not in raw.columns]
    if missing:
        raise ValueError(
            f"truth file {path} lacks column(s) {missing}: it needs obsid, class "
            "and z (subclass and v_kms are optional)"
        )
    if raw["obsid"].is_duplicated().any():
        raise ValueError(f"truth file {path} repeats obsids; one row per obsid is needed")

    def optional(name: str, dtype: pl.DataType) -> pl.Expr:
        return pl.col(name).cast(dtype) if name in raw.columns else pl.lit(None, dtype=dtype)

    return raw.select(
        pl.col("obsid").cast(pl.Int64),
        _clean_class("class").alias("true_class"),
        optional("subclass", pl.String()).alias("true_subclass"),
        pl.col("z").cast(pl.Float64).alias("true_z"),
        optional("v_kms", pl.Float64()).alias("true_v_kms"),
    )


def _lamost_labels(cat: Catalog) -> pl.DataFrame:
    return cat.sql(statement("validate.sql", "lamost_labels")).with_columns(
        true_v_kms=pl.lit(None, dtype=pl.Float64)
    )


def load_joined(cat: Catalog, truth: str | Path) -> Joined:
    """Our current results joined with a truth (:data:`LAMOST_TRUTH` or a Parquet path).

    The frame holds ``specid, obsid, snrg, class, subclass, z``, the optional columns of
    the results view that exist (``conf``, ``conf_blue``, ``conf_red``, ``refined``,
    ``zwarning``) and ``true_class, true_subclass, true_z, true_v_kms``.

    Raises
    ------
    FileNotFoundError
        The truth file does not exist.
    ValueError
        The catalogue has no results, or no classified spectrum has a truth row.
    """
    results = cat.sql(statement("validate.sql", "results_for_validation"))
    if results.height == 0:
        raise ValueError(
            f"{cat.root} has no classification results: run `lamostdb classify {cat.root}` first"
        )
    keep = [*_RESULT_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in results.columns)]
    ours = results.select(keep)
    if str(truth) == LAMOST_TRUTH:
        labels = _lamost_labels(cat)
        frame = ours.join(labels, on="specid", how="inner")
        name, key = LAMOST_TRUTH, "specids"
    else:
        labels = read_truth_table(truth)
        frame = ours.join(labels, on="obsid", how="inner")
        name, key = str(truth), "obsids"
    if frame.height == 0:
        raise ValueError(
            f"no overlap: none of the {labels.height} {key} of the truth "
            f"({name}) is among the {results.height} classified spectra of "
            f"{cat.root}; ingest and classify the spectra the truth describes"
        )
    frame = frame.select(*keep, *_TRUTH_COLUMNS).sort("specid")
    return Joined(frame=frame, truth=name, n_truth=labels.height, n_results=results.height)
