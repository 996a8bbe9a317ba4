"""``lamostdb calibrate-confidence``: fit the confidence estimate to labelled catalogues.

Each training set is a classified catalogue with a truth (a ``truth.parquet`` of
``lamostdb simulate``, or ``lamost`` for the LAMOST pipeline's header labels). The results
table already holds, for every best fit, the Gaussians fitted to its blue-end and red-end
residuals (``resid_blue_mu`` ... ``resid_red_sigma``) and its type group (``conf_group``),
so calibrating needs no new fit: the scoring functions f and the weights C are fitted to
"is this classification right" (:func:`lamostdb.match.confidence.fit_params`).

A classification counts as right when its class is the true one and its redshift is not a
catastrophic failure (galaxies and QSOs |dz|/(1+z) <= 0.01, stars |dv| <= 1000 km/s) —
the same definition as ``lamostdb validate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from lamostdb.constants import C_KMS
from lamostdb.match.confidence import GROUPS, ConfidenceParams, EndStats, fit_params

RESID_COLUMNS = (
    "resid_blue_mu",
    "resid_blue_sigma",
    "resid_red_mu",
    "resid_red_sigma",
    "conf_group",
)


def labelled_fits(catalog: str | Path, truth: str | Path) -> pl.DataFrame:
    """Residual Gaussians, type group and a ``correct`` flag for every labelled result."""
    from lamostdb.catalog.store import open_catalog
    from lamostdb.validate.truth import load_joined

    with open_catalog(catalog) as cat:
        joined = load_joined(cat, truth).frame
        have = set(cat.sql("SELECT * FROM results LIMIT 0").columns)
        missing = [c for c in RESID_COLUMNS if c not in have]
        if missing:
            raise ValueError(
                f"{cat.root}: results lack {missing}; classify again with this "
                f"version (`lamostdb classify {cat.root} --rerun`)"
            )
        resid = cat.sql("SELECT specid, " + ", ".join(RESID_COLUMNS) + " FROM results")
    df = joined.join(resid, on="specid", how="inner").filter(pl.col("true_class") != "UNKNOWN")
    dz = (pl.col("z") - pl.col("true_z")).abs() / (1 + pl.col("true_z"))
    ok_z = (
        pl.when(pl.col("true_class") == "STAR").then(dz * C_KMS <= 1000.0).otherwise(dz <= 0.01)
    ).fill_null(False)
    return df.with_columns(
        correct=(pl.col("class") == pl.col("true_class")) & ok_z,
        training_set=pl.lit(f"{Path(catalog).name}:{truth}"),
    )


def calibrate(
    sets: Sequence[tuple[str | Path, str | Path]],
    out: str | Path | None = None,
    *,
    label: str | None = None,
) -> ConfidenceParams:
    """Fit the confidence parameters on every (catalogue, truth) pair; write them to ``out``."""
    if not sets:
        raise ValueError("give at least one CATALOG=TRUTH training set")
    frames = [labelled_fits(c, t) for c, t in sets]
    df = pl.concat(frames, how="diagonal_relaxed")
    if df.height < 50:
        raise ValueError(
            f"only {df.height} labelled spectra: too few to fit the confidence "
            "(use a simulated night of a few thousand spectra)"
        )
    if df["correct"].all() or not df["correct"].any():
        raise ValueError(
            "every training spectrum is right (or every one wrong): the fit "
            "needs both; add low-S/N or distorted spectra "
            "(`lamostdb simulate --arm-mismatch-max 0.3 --tilt-max 0.4`)"
        )

    def col(name: str) -> np.ndarray:
        return df[name].cast(pl.Float64).fill_null(np.nan).to_numpy()

    n_blue = np.where(np.isfinite(col("resid_blue_sigma")), 100, 0)
    n_red = np.where(np.isfinite(col("resid_red_sigma")), 100, 0)
    blue = EndStats(col("resid_blue_mu"), col("resid_blue_sigma"), n_blue)
    red = EndStats(col("resid_red_mu"), col("resid_red_sigma"), n_red)
    groups = df["conf_group"].to_numpy().astype(str)
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise ValueError(f"unknown type groups {unknown} in results.conf_group")
    per_set = df.group_by("training_set").agg(
        pl.len().alias("n"), pl.col("correct").sum().alias("n_correct")
    )
    prov = {
        "made_by": label or "lamostdb calibrate-confidence",
        "training_sets": {
            r["training_set"]: {"n": r["n"], "n_correct": r["n_correct"]}
            for r in per_set.sort("training_set").iter_rows(named=True)
        },
        "correct_means": "class right and |dz|/(1+z) <= 0.01 (stars |dv| <= 1000 km/s)",
    }
    params = fit_params(blue, red, groups, df["correct"].to_numpy(), provenance=prov)
    if out is not None:
        params.save(out)
    return params
