"""PNG figures of the validation report (matplotlib, Agg canvas, no pyplot state).

matplotlib is optional (``pip install 'lamostdb[plot]'``): :func:`matplotlib_available`
says whether it can be imported, and nothing here imports it before a figure is drawn.
Each ``plot_*`` function returns the PNG bytes of one figure; :func:`write_plots` writes
them all.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from lamostdb.io.parquet import atomic_write_bytes
from lamostdb.validate.metrics import (
    CATASTROPHIC_DV_KMS,
    CATASTROPHIC_DZ,
    SNR_EDGES,
    SNR_LABELS,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FIGURE_NAMES",
    "PLOT_HINT",
    "matplotlib_available",
    "plot_confusion",
    "plot_redshift_vs_snr",
    "plot_reliability",
    "plot_subclass_offsets",
    "write_plots",
]

#: Every figure a report can have (file ``<name>.png``).
FIGURE_NAMES = frozenset({"confusion", "subclass_offsets", "redshift_vs_snr", "reliability"})
PLOT_HINT = "plots need matplotlib: pip install 'lamostdb[plot]'"
#: Subclass offsets drawn (a WD called a G star is 160 subtypes off: counted, not drawn).
OFFSET_RANGE = 15


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # no Software/date metadata: the same figures give the same bytes
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)


def plot_confusion(confusion: dict[str, Any]) -> bytes:
    """True class × our class, coloured by the fraction of each true class, with counts."""
    counts = np.asarray(confusion["counts"], dtype=np.float64)
    fig, (ax,) = _figure(4.8, 4.0)
    totals = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(
            j,
            i,
            f"{int(n)}",
            ha="center",
            va="center",
            color="white" if frac[i, j] > 0.6 else "black",
        )
    ax.set_xticks(range(len(confusion["predicted"])), confusion["predicted"])
    ax.set_yticks(range(len(confusion["true"])), confusion["true"])
    ax.set_xlabel("our class")
    ax.set_ylabel("true class")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    return _png(fig)


def plot_subclass_offsets(offsets: dict[str, Any]) -> bytes:
    """Histogram of our stellar subclass ordinal minus the true one."""
    fig, (ax,) = _figure(5.5, 3.6)
    hist = offsets["histogram"]
    shown = [h for h in hist if abs(h["offset"]) <= OFFSET_RANGE]
    outside = sum(h["n"] for h in hist) - sum(h["n"] for h in shown)
    if not hist:
        _empty(ax, "no star with a subclass on both sides")
    else:
        ax.bar([h["offset"] for h in shown], [h["n"] for h in shown], width=0.9)
        ax.set_xlim(-OFFSET_RANGE - 0.5, OFFSET_RANGE + 0.5)
        # log counts: the few stars a few subtypes off stay visible next to the peak at 0
        ax.set_yscale("log")
        ax.set_ylim(0.5, None)
    frac = offsets["same_letter_fraction"]
    ax.set_title(
        f"{offsets['n_compared']} stars; same letter "
        f"{'n/a' if frac is None else f'{frac:.1%}'}; "
        f"{outside} beyond ±{OFFSET_RANGE}",
        fontsize=9,
    )
    ax.set_xlabel("subclass offset (our ordinal − true ordinal, subtypes)")
    ax.set_ylabel("spectra")
    return _png(fig)


def _bin_ranges(snr: np.ndarray) -> list[tuple[float, float]]:
    lo = float(min(snr.min(), SNR_EDGES[0] / 2)) if snr.size else SNR_EDGES[0] / 2
    hi = float(max(snr.max(), SNR_EDGES[-1] * 2)) if snr.size else SNR_EDGES[-1] * 2
    edges = [lo, *SNR_EDGES, hi]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _snr_axis(ax: Axes) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([1, 2, 5, 10, 20, 50, 100, 200, 500]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _scatter_panel(
    ax: Axes,
    frame: pl.DataFrame,
    redshift: dict[str, Any],
    classes: tuple[str, ...],
    quantity: str,
    threshold: float,
    linthresh: float,
    ylabel: str,
) -> None:
    colours = {"STAR": "tab:orange", "GALAXY": "tab:blue", "QSO": "tab:green"}
    n_drawn = 0
    for cls in classes:
        sub = frame.filter(
            (pl.col("true_class") == cls)
            & pl.col("correct")
            & pl.col(quantity).is_not_null()
            & (pl.col("snrg") > 0)
        )
        snr = sub["snrg"].cast(pl.Float64).to_numpy()
        y = sub[quantity].to_numpy()
        n_drawn += snr.size
        ax.scatter(snr, y, s=6, alpha=0.5, color=colours[cls], label=f"{cls} ({snr.size})")
        stats = {b["snr_bin"]: b for b in redshift[cls]["bins"]}
        for label, (lo, hi) in zip(SNR_LABELS, _bin_ranges(snr), strict=True):
            b = stats.get(label)
            if b is None or b["median"] is None:
                continue
            ax.hlines(b["median"], lo, hi, color=colours[cls], lw=2)
            ax.fill_between(
                [lo, hi],
                b["median"] - b["nmad"],
                b["median"] + b["nmad"],
                color=colours[cls],
                alpha=0.15,
                lw=0,
            )
    _snr_axis(ax)
    ax.set_yscale("symlog", linthresh=linthresh)
    for sign in (-1, 1):
        ax.axhline(sign * threshold, color="red", ls=":", lw=1)
    ax.set_xlabel("S/N in g")
    ax.set_ylabel(ylabel)
    if n_drawn:
        ax.legend(fontsize=8, loc="upper right")
    else:
        _empty(ax, "no correctly classified spectrum with a true redshift")


def plot_redshift_vs_snr(frame: pl.DataFrame, redshift: dict[str, Any]) -> bytes:
    """Δv (stars) and Δz/(1+z) (galaxies, QSOs) against S/N_g, with per-bin median ± NMAD.

    ``frame`` is the prepared joined frame (:func:`lamostdb.validate.metrics.prepare`);
    dotted red lines mark the catastrophic limits.
    """
    fig, (left, right) = _figure(10.0, 4.0, ncols=2)
    _scatter_panel(
        left,
        frame,
        redshift,
        ("STAR",),
        "dv_kms",
        CATASTROPHIC_DV_KMS,
        10.0,
        "Δv = c·(z − z_true)  [km/s]",
    )
    _scatter_panel(
        right, frame, redshift, ("GALAXY", "QSO"), "dz", CATASTROPHIC_DZ, 1e-4, "Δz / (1 + z_true)"
    )
    return _png(fig)


def plot_reliability(bins: list[dict[str, Any]], threshold: float) -> bytes:
    """Fraction with the right class per Conf bin, the count written on each bar."""
    fig, (ax,) = _figure(6.0, 4.4)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="fraction = Conf")
    full = [b for b in bins if b["n"]]
    centres = [(b["conf_lo"] + b["conf_hi"]) / 2 for b in full]
    widths = [0.9 * (b["conf_hi"] - b["conf_lo"]) for b in full]
    ax.bar(
        centres,
        [b["fraction_correct"] for b in full],
        width=widths,
        alpha=0.8,
        label="fraction with the right class",
    )
    for x, b in zip(centres, full, strict=True):
        ax.text(x, min(b["fraction_correct"] + 0.02, 1.02), str(b["n"]), ha="center", fontsize=7)
    ax.axvline(threshold, color="red", ls=":", lw=1, label=f"Conf = {threshold:g}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("Conf")
    ax.set_ylabel("fraction with the right class")
    fig.legend(fontsize=8, loc="outside lower center", ncols=3)
    if not full:
        _empty(ax, "no labelled spectrum with a Conf")
    return _png(fig)


def write_plots(
    summary: dict[str, Any], frame: pl.DataFrame, out_dir: str | Path
) -> dict[str, Path]:
    """Write every figure the summary supports into ``out_dir``; return paths by figure.

    ``frame`` is the prepared joined frame. The reliability diagram needs a Conf column.
    """
    out = Path(out_dir)
    figures: dict[str, bytes] = {
        "confusion": plot_confusion(summary["confusion"]),
        "subclass_offsets": plot_subclass_offsets(summary["subclass_offsets"]),
        "redshift_vs_snr": plot_redshift_vs_snr(frame, summary["redshift"]),
    }
    if summary["reliability"] is not None:
        figures["reliability"] = plot_reliability(
            summary["reliability"], summary["accuracy_conf_ge_threshold"]["threshold"]
        )
    paths = {}
    for name, png in figures.items():
        paths[name] = out / f"{name}.png"
        atomic_write_bytes(paths[name], png)
    return paths
