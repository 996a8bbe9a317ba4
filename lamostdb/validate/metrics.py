"""Figures of merit of a classification against a truth, as pure functions of one frame.

Every function takes the *joined* frame (one row per spectrum that has both our result and
a truth label) after :func:`prepare`, and returns plain Python values (dicts, lists,
floats, None) that go straight into ``summary.json``. No function reads a file.

The joined frame's columns:

=================  ======================================================================
``specid``         spectrum key
``snrg``           S/N in the g band (of the spectrum header)
``class``          our class (STAR, GALAXY, QSO)
``subclass``       our subclass (LAMOST style: ``G5``, ``dM2``, ``WD``; ``Non``)
``z``              our redshift (stars: v / c)
``true_class``     STAR, GALAXY, QSO, or UNKNOWN (sky / junk fibres, no pipeline label):
                   UNKNOWN rows are counted and left out of every accuracy figure
``true_subclass``  the truth's subclass, may be null
``true_z``         the truth's redshift, may be null
``conf``           optional: our confidence in [0, 1]
``zwarning``       optional: our ZWARNING bitmask
``refined``        optional: whether the polynomial re-match replaced the first match
=================  ======================================================================

A *catastrophic failure* (:data:`CATASTROPHIC_DEFINITION`) is a labelled spectrum with the
wrong class, or the right class and a redshift off by more than
:data:`CATASTROPHIC_DZ` in Δz/(1+z_true) (galaxies, QSOs) or more than
:data:`CATASTROPHIC_DV_KMS` in Δv = c·(z − z_true) (stars). A spectrum whose truth has no
redshift is judged by its class alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.stats import rankdata

from lamostdb.constants import C_KMS
from lamostdb.templates.subclass import parse_subclass

if TYPE_CHECKING:  # annotation only: the when/then chain types of polars
    from polars.expr.whenthen import ChainedThen, Then

__all__ = [
    "CATASTROPHIC_DEFINITION",
    "CATASTROPHIC_DV_KMS",
    "CATASTROPHIC_DZ",
    "CLASSES",
    "C_KMS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "SNR_LABELS",
    "accuracy_by_snr",
    "catastrophic_rate",
    "column_status",
    "confusion_matrix",
    "conf_auc",
    "conf_threshold_accuracy",
    "prepare",
    "redshift_scatter",
    "reliability",
    "robust_scatter",
    "summarize",
    "roc_auc",
    "subclass_offsets",
    "zwarning_counts",
]

CLASSES = ("STAR", "GALAXY", "QSO")
UNKNOWN = "UNKNOWN"
#: S/N_g bin edges and their labels: [0, 5), [5, 10), [10, 20), [20, inf).
SNR_EDGES = (5.0, 10.0, 20.0)
SNR_LABELS = ("<5", "5-10", "10-20", ">=20")
SNR_MISSING = "n/a"
CATASTROPHIC_DZ = 0.01
CATASTROPHIC_DV_KMS = 1000.0
CATASTROPHIC_DEFINITION = (
    f"wrong class, or |dz|/(1+z_true) > {CATASTROPHIC_DZ:g} for a galaxy or QSO, or "
    f"|dv| > {CATASTROPHIC_DV_KMS:g} km/s for a star (dv = c*(z - z_true)); spectra whose "
    "truth has no redshift are judged by their class alone"
)
#: 1.4826 * MAD estimates the standard deviation of a normal distribution.
NMAD_SCALE = 1.4826

REQUIRED_COLUMNS = (
    "specid",
    "snrg",
    "class",
    "subclass",
    "z",
    "true_class",
    "true_subclass",
    "true_z",
)
#: Columns of the results view that may not exist yet (added with the confidence estimate).
OPTIONAL_COLUMNS: dict[str, pl.DataType] = {
    "conf": pl.Float64(),
    "conf_blue": pl.Float64(),
    "conf_red": pl.Float64(),
    "refined": pl.Boolean(),
    "zwarning": pl.Int64(),
}


def _num(x: float | np.floating[Any] | None) -> float | None:
    """A JSON-safe float: None for None and NaN."""
    if x is None:
        return None
    v = float(x)
    return None if math.isnan(v) else v


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _ordinals(labels: pl.Series) -> dict[str, tuple[str | None, int | None]]:
    return {s: parse_subclass(s) for s in labels.drop_nulls().unique().to_list()}


def prepare(joined: pl.DataFrame) -> pl.DataFrame:
    """Check the joined frame and add the derived columns every metric uses.

    Adds null columns for missing :data:`OPTIONAL_COLUMNS`, and ``labelled`` (the truth
    is STAR, GALAXY or QSO), ``correct`` (our class is the true one), ``snr_bin``, ``dz``
    (Δz/(1+z_true)), ``dv_kms`` (c·Δz), ``catastrophic``, ``subclass_offset`` (our ordinal
    minus the true one, stars both ways only) and ``same_letter``.

    Raises
    ------
    ValueError
        A required column is missing.

    Examples
    --------
    >>> df = pl.DataFrame({"specid": ["a", "b"], "snrg": [3.0, 30.0], "class": ["STAR"] * 2,
    ...     "subclass": ["G5", "K0"], "z": [0.0, 0.01], "true_class": ["STAR", "UNKNOWN"],
    ...     "true_subclass": ["G2", None], "true_z": [0.0, None]})
    >>> prepare(df).select("labelled", "correct", "snr_bin", "subclass_offset").rows()
    [(True, True, '<5', 3), (False, False, '>=20', None)]
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in joined.columns]
    if missing:
        raise ValueError(f"joined frame lacks column(s) {missing}; it needs {REQUIRED_COLUMNS}")
    df = joined.with_columns(
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in OPTIONAL_COLUMNS.items()
        if name not in joined.columns
    )
    snr = pl.col("snrg").cast(pl.Float64)
    snr_bin: Then | ChainedThen = pl.when(snr.is_null() | snr.is_nan()).then(pl.lit(SNR_MISSING))
    for edge, label in zip(SNR_EDGES, SNR_LABELS, strict=False):
        snr_bin = snr_bin.when(snr < edge).then(pl.lit(label))
    star = pl.col("true_class") == "STAR"
    extragalactic = pl.col("true_class").is_in(["GALAXY", "QSO"])
    df = df.with_columns(
        labelled=pl.col("true_class").is_in(CLASSES),
        correct=(pl.col("class") == pl.col("true_class")).fill_null(False),
        snr_bin=snr_bin.otherwise(pl.lit(SNR_LABELS[-1])),
        dz=(pl.col("z") - pl.col("true_z")) / (1.0 + pl.col("true_z")),
        dv_kms=C_KMS * (pl.col("z") - pl.col("true_z")),
    )
    z_bad = (
        (extragalactic & (pl.col("dz").abs() > CATASTROPHIC_DZ))
        | (star & (pl.col("dv_kms").abs() > CATASTROPHIC_DV_KMS))
    ).fill_null(False)
    df = df.with_columns(catastrophic=pl.col("labelled") & (~pl.col("correct") | z_bad))
    parsed = _ordinals(pl.concat([df["subclass"], df["true_subclass"]]))
    ordinal = {k: v[1] for k, v in parsed.items()}
    letter = {k: v[0] for k, v in parsed.items()}
    both_stars = star & (pl.col("class") == "STAR")

    def mapped(col: str, table: dict[str, Any], dtype: pl.DataType) -> pl.Expr:
        return pl.col(col).replace_strict(table, default=None, return_dtype=dtype)

    ours_ord, true_ord = (mapped(c, ordinal, pl.Int64()) for c in ("subclass", "true_subclass"))
    ours_let, true_let = (mapped(c, letter, pl.String()) for c in ("subclass", "true_subclass"))
    return df.with_columns(
        subclass_offset=pl.when(both_stars).then(ours_ord - true_ord),
        same_letter=pl.when(both_stars).then(ours_let == true_let),
    )


def _labelled(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("labelled"))


def confusion_matrix(df: pl.DataFrame) -> dict[str, Any]:
    """Counts of true class (rows) × our class (columns) over the labelled spectra.

    Returns
    -------
    dict
        ``true`` (STAR, GALAXY, QSO), ``predicted`` (the same, then any other class we
        gave), ``counts`` (one list per true class).
    """
    lab = _labelled(df)
    ours = [c for c in CLASSES] + sorted(set(lab["class"].drop_nulls().to_list()) - set(CLASSES))
    counts = {(t, p): n for t, p, n in lab.group_by("true_class", "class").len().iter_rows()}
    return {
        "true": list(CLASSES),
        "predicted": ours,
        "counts": [[int(counts.get((t, p), 0)) for p in ours] for t in CLASSES],
    }


def _bins_present(df: pl.DataFrame) -> list[str]:
    present = set(df["snr_bin"].to_list())
    return [b for b in (*SNR_LABELS, SNR_MISSING) if b in present or b in SNR_LABELS]


def accuracy_by_snr(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Class accuracy of all labelled spectra (``snr_bin = 'all'``), then per S/N_g bin."""
    lab = _labelled(df)
    rows = []
    for name in ("all", *_bins_present(lab)):
        sub = lab if name == "all" else lab.filter(pl.col("snr_bin") == name)
        n, k = sub.height, int(sub["correct"].sum())
        rows.append({"snr_bin": name, "n": n, "n_correct": k, "accuracy": _ratio(k, n)})
    return rows


def subclass_offsets(df: pl.DataFrame) -> dict[str, Any]:
    """Our stellar subclass ordinal minus the true one, for spectra both call STAR.

    Returns
    -------
    dict
        ``n_stars`` (both STAR), ``n_compared`` (both subclasses on the ordinal scale),
        ``histogram`` (``[{offset, n}]`` by offset), ``median_offset``,
        ``n_same_letter`` / ``same_letter_fraction`` (over pairs where both labels have a
        spectral letter).
    """
    stars = _labelled(df).filter((pl.col("true_class") == "STAR") & (pl.col("class") == "STAR"))
    off = stars["subclass_offset"].drop_nulls()
    hist = off.value_counts().sort("subclass_offset")
    letters = stars["same_letter"].drop_nulls()
    n_same = int(letters.sum())
    return {
        "n_stars": stars.height,
        "n_compared": off.len(),
        "histogram": [{"offset": int(o), "n": int(n)} for o, n in hist.iter_rows()],
        # Series.median is typed for any dtype; of an integer series it is a float.
        "median_offset": _num(cast(float | None, off.median())) if off.len() else None,
        "n_letter_compared": letters.len(),
        "n_same_letter": n_same,
        "same_letter_fraction": _ratio(n_same, letters.len()),
    }


def robust_scatter(x: npt.ArrayLike) -> float | None:
    """1.4826 × the median absolute deviation from the median (None when empty).

    >>> robust_scatter([1.0, 2.0, 3.0, 4.0, 100.0])
    1.4826
    """
    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None
    return float(NMAD_SCALE * np.median(np.abs(a - np.median(a))))


def _spread(values: pl.Series) -> dict[str, Any]:
    a = values.drop_nulls().drop_nans().to_numpy()
    return {
        "n": int(a.size),
        "median": _num(np.median(a)) if a.size else None,
        "nmad": robust_scatter(a),
    }


def redshift_scatter(df: pl.DataFrame) -> dict[str, Any]:
    """Median and robust scatter of the redshift error per class and S/N_g bin.

    Stars: Δv = c·(z − z_true) in km/s; galaxies and QSOs: Δz/(1+z_true). Only spectra
    whose class we got right and whose truth has a redshift; catastrophic redshifts
    stay in (the robust scatter is meant to shrug them off).

    Returns
    -------
    dict
        Per class: ``quantity`` (``dv_kms`` or ``dz``), ``all`` and ``bins``
        (``[{snr_bin, n, median, nmad}]``).
    """
    ok = _labelled(df).filter(pl.col("correct") & pl.col("true_z").is_not_null())
    out: dict[str, Any] = {}
    for cls in CLASSES:
        quantity = "dv_kms" if cls == "STAR" else "dz"
        sub = ok.filter(pl.col("true_class") == cls)
        bins = [
            {"snr_bin": b, **_spread(sub.filter(pl.col("snr_bin") == b)[quantity])}
            for b in _bins_present(sub)
        ]
        out[cls] = {"quantity": quantity, "all": _spread(sub[quantity]), "bins": bins}
    return out


def catastrophic_rate(df: pl.DataFrame) -> dict[str, Any]:
    """Rate of catastrophic failures (:data:`CATASTROPHIC_DEFINITION`) among labelled spectra.

    Returns
    -------
    dict
        ``n``, ``n_catastrophic``, ``rate``, ``n_wrong_class``, ``n_bad_redshift`` (right
        class, redshift off), ``n_no_true_z`` (judged by class only), ``definition``.
    """
    lab = _labelled(df)
    n_cat = int(lab["catastrophic"].sum())
    n_wrong = int((~lab["correct"]).sum())
    return {
        "n": lab.height,
        "n_catastrophic": n_cat,
        "rate": _ratio(n_cat, lab.height),
        "n_wrong_class": n_wrong,
        "n_bad_redshift": n_cat - n_wrong,
        "n_no_true_z": int(lab["true_z"].is_null().sum()),
        "definition": CATASTROPHIC_DEFINITION,
    }


def _with_conf(df: pl.DataFrame) -> pl.DataFrame:
    return _labelled(df).filter(pl.col("conf").is_not_null() & pl.col("conf").is_not_nan())


def reliability(df: pl.DataFrame, *, n_bins: int = 10) -> list[dict[str, Any]]:
    """Fraction with the right class in ``n_bins`` equal bins of Conf over [0, 1].

    Conf = 1 falls in the last bin. Labelled spectra without a Conf are left out.

    Returns
    -------
    list of dict
        ``conf_lo``, ``conf_hi``, ``n``, ``n_correct``, ``fraction_correct`` (None for an
        empty bin) and ``mean_conf``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    sub = _with_conf(df)
    conf = sub["conf"].to_numpy().astype(np.float64)
    correct = sub["correct"].to_numpy()
    idx = np.clip(np.floor(conf * n_bins).astype(np.int64), 0, n_bins - 1)
    rows = []
    for i in range(n_bins):
        sel = idx == i
        n, k = int(sel.sum()), int(correct[sel].sum())
        rows.append(
            {
                "conf_lo": i / n_bins,
                "conf_hi": (i + 1) / n_bins,
                "n": n,
                "n_correct": k,
                "fraction_correct": _ratio(k, n),
                "mean_conf": _num(conf[sel].mean()) if n else None,
            }
        )
    return rows


def conf_threshold_accuracy(df: pl.DataFrame, threshold: float) -> dict[str, Any]:
    """Class accuracy among labelled spectra with Conf ≥ ``threshold``.

    ``coverage`` is the fraction of labelled spectra with a Conf that pass the threshold.
    """
    sub = _with_conf(df)
    above = sub.filter(pl.col("conf") >= threshold)
    k = int(above["correct"].sum())
    return {
        "threshold": threshold,
        "n": above.height,
        "n_correct": k,
        "accuracy": _ratio(k, above.height),
        "coverage": _ratio(above.height, sub.height),
    }


def roc_auc(score: npt.ArrayLike, positive: npt.ArrayLike) -> float | None:
    """Area under the ROC curve of ``score`` for telling positives from negatives.

    Rank-based (Mann–Whitney U / (n_pos · n_neg)), ties sharing their mean rank; None
    when either group is empty (the area is undefined).

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    >>> roc_auc([0.5, 0.5], [True, False]), roc_auc([0.2, 0.9], [True, True])
    (0.5, None)
    """
    s = np.asarray(score, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    if s.shape != pos.shape or s.ndim != 1:
        raise ValueError(f"score {s.shape} and positive {pos.shape} must be equal 1-D shapes")
    n_pos = int(pos.sum())
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(s)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def conf_auc(df: pl.DataFrame) -> dict[str, Any]:
    """ROC AUC of Conf for separating right from wrong classes, with a note when undefined."""
    sub = _with_conf(df)
    n_pos = int(sub["correct"].sum())
    auc = roc_auc(sub["conf"].to_numpy(), sub["correct"].to_numpy())
    note = None
    if auc is None:
        empty = (
            "no spectra with a Conf"
            if sub.height == 0
            else ("no wrong classes" if n_pos == sub.height else "no right classes")
        )
        note = f"undefined: {empty}"
    return {"auc": auc, "n_correct": n_pos, "n_wrong": sub.height - n_pos, "note": note}


def zwarning_counts(df: pl.DataFrame, bits: dict[str, int]) -> dict[str, Any]:
    """How many spectra have each ZWARNING bit set (all joined spectra, UNKNOWN truth too).

    >>> df = pl.DataFrame({"zwarning": [0, 1, 5, None]})
    >>> zwarning_counts(df, {"SKY": 0, "LITTLE_COVERAGE": 1, "SMALL_DELTA_CHI2": 2})["bits"]
    {'SKY': 2, 'LITTLE_COVERAGE': 0, 'SMALL_DELTA_CHI2': 1}
    """
    zw = df["zwarning"].drop_nulls().cast(pl.Int64).to_numpy()
    return {
        "n": int(zw.size),
        "n_zero": int((zw == 0).sum()),
        "bits": {name: int(((zw >> bit) & 1).sum()) for name, bit in bits.items()},
    }


def column_status(joined: pl.DataFrame, names: Sequence[str]) -> dict[str, str]:
    """``'missing'``, ``'all null'`` or ``'ok'`` for each optional column of ``joined``."""
    out = {}
    for name in names:
        if name not in joined.columns:
            out[name] = "missing"
        elif joined[name].null_count() == joined.height:
            out[name] = "all null"
        else:
            out[name] = "ok"
    return out


def summarize(
    joined: pl.DataFrame,
    *,
    conf_threshold: float = 0.8,
    zwarning_bits: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Every figure of the validation report, JSON-ready.

    Parameters
    ----------
    joined
        The joined frame (module docstring); :func:`prepare` is applied here.
    conf_threshold
        Conf cut for ``accuracy_conf_ge_threshold``.
    zwarning_bits
        Bit numbers by name (default: :data:`lamostdb.match.zwarning.ZWARNING_BITS`).

    Returns
    -------
    dict
        ``n_joined``, ``n_labelled``, ``n_unknown_truth``, ``columns`` (status of the
        optional columns), ``class_accuracy``, ``confusion``, ``accuracy_by_snr``,
        ``subclass_offsets``, ``redshift``, ``catastrophic``, and ``reliability``,
        ``accuracy_conf_ge_threshold``, ``auc`` (None when there is no Conf column) and
        ``zwarning`` (None when there is no ZWARNING column).
    """
    if not 0.0 <= conf_threshold <= 1.0:
        raise ValueError(f"conf_threshold must be in [0, 1], got {conf_threshold}")
    if zwarning_bits is None:
        from lamostdb.match.zwarning import ZWARNING_BITS

        zwarning_bits = ZWARNING_BITS
    status = column_status(joined, list(OPTIONAL_COLUMNS))
    df = prepare(joined)
    by_snr = accuracy_by_snr(df)
    has_conf = status["conf"] == "ok"
    return {
        "n_joined": df.height,
        "n_labelled": int(df["labelled"].sum()),
        "n_unknown_truth": int((~df["labelled"]).sum()),
        "columns": status,
        "class_accuracy": by_snr[0]["accuracy"],
        "confusion": confusion_matrix(df),
        "accuracy_by_snr": by_snr,
        "subclass_offsets": subclass_offsets(df),
        "redshift": redshift_scatter(df),
        "catastrophic": catastrophic_rate(df),
        "reliability": reliability(df) if has_conf else None,
        "accuracy_conf_ge_threshold": (
            conf_threshold_accuracy(df, conf_threshold) if has_conf else None
        ),
        "auc": conf_auc(df) if has_conf else None,
        "zwarning": (zwarning_counts(df, zwarning_bits) if status["zwarning"] == "ok" else None),
    }
