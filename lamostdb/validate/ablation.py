"""Ablation: the same spectra through the method with steps switched on one by one.

Configurations (:data:`CONFIGS`), in order:

1. ``polynomial continuum`` — the SDSS-like baseline: star templates times Legendre P0..P3
   only (no learned SVD vectors, no red-arm step), no reordering, no re-match;
2. ``SVD continuum`` — the shipped continuum vectors (P0..P3 + SVD vectors + red-arm step);
3. ``SVD + reordering`` — plus the candidate reordering;
4. ``SVD + reordering + confidence + refinement`` — all but the class decision;
5. ``full`` — plus the class decision of ``lamostdb.match.decide`` (what ``classify`` runs).

Conf is computed in every configuration (it is a diagnostic there); only the last one acts on
it. Spectra are read from the catalogue's ``spectra`` view in batches and fitted in this
process; nothing is written to the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm import tqdm

from lamostdb.io.sqlfiles import statement
from lamostdb.match.batch import ENGINE_COLUMNS, batch_to_matrices
from lamostdb.match.engine import Engine, get_engine, prepare_engine
from lamostdb.match.fit import CLASS_CODES
from lamostdb.match.pipeline import PipelineOptions, classify_arrays
from lamostdb.validate.metrics import roc_auc, summarize

BATCH = 32


@dataclass(frozen=True)
class Config:
    name: str
    engine: Callable[[], Engine]
    options: PipelineOptions


def _baseline_engine() -> Engine:
    from lamostdb.match.continuum import legendre_basis

    return prepare_engine(basis=legendre_basis(3, arm_vector=False))


CONFIGS: tuple[Config, ...] = (
    Config(
        "polynomial continuum (SDSS-like baseline)",
        _baseline_engine,
        PipelineOptions(reorder=False, refine=False, decide=False),
    ),
    Config("SVD continuum", get_engine, PipelineOptions(reorder=False, refine=False, decide=False)),
    Config("SVD + reordering", get_engine, PipelineOptions(refine=False, decide=False)),
    Config("SVD + reordering + confidence + refinement", get_engine, PipelineOptions(decide=False)),
    Config("+ class decision (full)", get_engine, PipelineOptions()),
)


def _other_class_rank(objclass: np.ndarray) -> np.ndarray:
    """Rank of the first candidate of another class than the best (list length if none)."""
    other = objclass != objclass[:, :1]
    return np.where(other.any(axis=1), np.argmax(other, axis=1), objclass.shape[1])


def _spectra_batches(cat: Any, specids: list[str], batch_rows: int = 512):
    rel = cat.con.sql(
        statement("ablation.sql", "spectra_for_ablation"),
        params={"specids": specids, "columns": list(ENGINE_COLUMNS)},
    )
    reader = rel.to_arrow_reader(batch_rows)
    for rb in reader:
        df = pl.from_arrow(rb)
        assert isinstance(df, pl.DataFrame)
        yield df


def run_ablation(
    catalog: str | Path,
    joined: pl.DataFrame,
    *,
    dataset: str,
    conf_threshold: float = 0.8,
    progress: bool = True,
    configs: tuple[Config, ...] = CONFIGS,
) -> list[dict[str, Any]]:
    """One row of figures per configuration for the spectra of ``joined`` (the validate frame).

    Each row: config, dataset, n, class accuracy, accuracy and coverage at Conf >=
    threshold, ROC AUC of Conf, catastrophic-failure rate, spectra refined, and two measures
    of what the reordering does: the ROC AUC of the best fit's ``delta_rchi2`` for telling
    right from wrong (without reordering it is mostly the gap to a degenerate twin), and the
    median rank of the first candidate of another class.
    """
    from lamostdb.catalog.store import open_catalog

    truth_cols = [c for c in joined.columns if c.startswith("true_")]
    base = joined.select("specid", "obsid", "snrg", *truth_cols)
    specids = base["specid"].to_list()
    frames: dict[str, list[pl.DataFrame]] = {c.name: [] for c in configs}
    engines = {c.name: c.engine() for c in configs}
    with open_catalog(catalog) as cat:
        bar = tqdm(
            total=len(specids) * len(configs), unit="fit", desc="ablation", disable=not progress
        )
        for df in _spectra_batches(cat, specids):
            for start in range(0, df.height, BATCH):
                sub = df.slice(start, BATCH)
                for cfg in configs:
                    engine = engines[cfg.name]
                    flux, ivar = batch_to_matrices(sub, engine.grid)
                    out = classify_arrays(
                        flux,
                        ivar,
                        engine=engine,
                        options=cfg.options,
                        fibertype=sub["fibertype"].to_numpy(),
                    )
                    frames[cfg.name].append(
                        pl.DataFrame(
                            {
                                "specid": sub["specid"],
                                "class": np.array(CLASS_CODES)[out.fit.objclass[:, 0]],
                                "subclass": out.subclass[:, 0],
                                "z": out.fit.z[:, 0],
                                "conf": out.conf,
                                "refined": out.refined,
                                "zwarning": out.zwarning,
                                "delta_rchi2": out.fit.delta_rchi2[:, 0],
                                "other_class_rank": _other_class_rank(out.fit.objclass),
                            }
                        )
                    )
                    bar.update(sub.height)
        bar.close()
    rows = []
    for cfg in configs:
        fitted = pl.concat(frames[cfg.name])
        frame = base.join(fitted, on="specid", how="inner")
        s = summarize(frame, conf_threshold=conf_threshold)
        conf_acc = s["accuracy_conf_ge_threshold"] or {}
        lab = frame.filter(pl.col("true_class").is_in(list(CLASS_CODES)))
        right = (lab["class"] == lab["true_class"]).to_numpy()
        rows.append(
            {
                "config": cfg.name,
                "dataset": dataset,
                "n": s["n_labelled"],
                "class_accuracy": s["class_accuracy"],
                f"accuracy_conf_ge_{conf_threshold:g}": conf_acc.get("accuracy"),
                f"coverage_conf_ge_{conf_threshold:g}": conf_acc.get("coverage"),
                "auc": (s["auc"] or {}).get("auc"),
                "catastrophic_rate": s["catastrophic"].get("rate"),
                "n_refined": int(fitted["refined"].sum()),
                "auc_delta_rchi2": roc_auc(
                    np.nan_to_num(lab["delta_rchi2"].to_numpy(), nan=0.0), right
                ),
                "median_rank_other_class": float(np.median(fitted["other_class_rank"].to_numpy())),
            }
        )
    return rows
