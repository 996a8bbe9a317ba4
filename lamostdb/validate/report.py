"""The validation report on disk: ``summary.json``, ``report.md`` and PNG figures.

``summary.json`` holds every figure (:func:`lamostdb.validate.metrics.summarize`);
``report.md`` shows them as tables with the figures embedded. Without matplotlib the
JSON and Markdown are still written and the report says how to get the figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from lamostdb.io.parquet import atomic_write_bytes
from lamostdb.validate import plots
from lamostdb.validate.metrics import SNR_LABELS, prepare

__all__ = ["Report", "markdown_table", "render_markdown", "write_report"]

#: What a report lacks without each optional column of the results view.
_COLUMN_USE = {
    "conf": "no reliability diagram, no accuracy at a Conf threshold, no Conf AUC",
    "zwarning": "no ZWARNING bit counts",
}


@dataclass(frozen=True)
class Report:
    """Paths of a written report."""

    out_dir: Path
    summary_json: Path
    report_md: Path
    figures: dict[str, Path] = field(default_factory=dict)
    #: Why there are no figures (matplotlib missing, or plots turned off), else None.
    plot_note: str | None = None


def _fmt(value: Any) -> str:
    """A table cell: '–' for None, 4 significant digits for floats."""
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "–"
        return f"{v:.2e}" if v != 0 and abs(v) < 1e-3 else f"{v:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table.

    >>> print(markdown_table(["a", "b"], [[1, 0.5], [None, "x"]]))
    | a | b |
    |---|---|
    | 1 | 0.5 |
    | – | x |
    """
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _frac(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _image(figures: Mapping[str, Path], name: str, alt: str) -> list[str]:
    return [f"![{alt}]({figures[name].name})", ""] if name in figures else []


def _inputs(s: dict[str, Any]) -> list[str]:
    inp = s.get("inputs", {})
    lines = ["# Validation report", ""]
    if inp:
        lines += [
            f"- catalogue: `{inp.get('catalog')}`",
            f"- truth: `{inp.get('truth')}` ({inp.get('n_truth')} rows)",
            f"- results: {inp.get('n_results')} spectra",
        ]
    lines += [
        f"- spectra with a result and a truth row: {s['n_joined']}; labelled STAR / "
        f"GALAXY / QSO: {s['n_labelled']}; UNKNOWN truth (sky / junk fibres, no label), "
        f"left out of every accuracy figure: {s['n_unknown_truth']}",
        "",
    ]
    absent = {name: state for name, state in s["columns"].items() if state != "ok"}
    if absent:
        names = ", ".join(
            f"`{n}` ({'not a column' if st == 'missing' else st})" for n, st in absent.items()
        )
        lost = [_COLUMN_USE[n] for n in absent if n in _COLUMN_USE]
        lines += [
            f"> Not in the results view: {names}. This report therefore has "
            f"{' and '.join(lost) if lost else 'every other figure'}.",
            "",
        ]
    return lines


def _classes(s: dict[str, Any], figures: Mapping[str, Path]) -> list[str]:
    cm = s["confusion"]
    rows = [[t, *counts] for t, counts in zip(cm["true"], cm["counts"], strict=True)]
    snr = [
        [b["snr_bin"], b["n"], b["n_correct"], _frac(b["accuracy"])] for b in s["accuracy_by_snr"]
    ]
    return [
        "## Classes",
        "",
        f"Class accuracy: **{_frac(s['class_accuracy'])}** over {s['n_labelled']} labelled "
        "spectra.",
        "",
        markdown_table(["true \\ ours", *cm["predicted"]], rows),
        "",
        *_image(figures, "confusion", "confusion matrix"),
        "Accuracy per S/N in g:",
        "",
        markdown_table(["S/N_g", "n", "right class", "accuracy"], snr),
        "",
    ]


def _subclasses(s: dict[str, Any], figures: Mapping[str, Path]) -> list[str]:
    o = s["subclass_offsets"]
    return [
        "## Stellar subclasses",
        "",
        f"Stars that both call STAR: {o['n_stars']}; with both subclasses on the ordinal "
        f"scale (O0 = 0 … L9 = 79, WD = 200, Carbon = 300): {o['n_compared']}; median offset "
        f"{_fmt(o['median_offset'])}; same spectral letter: {o['n_same_letter']} of "
        f"{o['n_letter_compared']} ({_pct(o['same_letter_fraction'])}).",
        "",
        markdown_table(
            ["offset (ours − true)", "n"], [[h["offset"], h["n"]] for h in o["histogram"]]
        ),
        "",
        *_image(figures, "subclass_offsets", "subclass offsets"),
    ]


def _redshifts(s: dict[str, Any], figures: Mapping[str, Path]) -> list[str]:
    rows = []
    for cls, r in s["redshift"].items():
        unit = "Δv [km/s]" if r["quantity"] == "dv_kms" else "Δz/(1+z)"
        for b in [{"snr_bin": "all", **r["all"]}, *r["bins"]]:
            rows.append([cls, unit, b["snr_bin"], b["n"], b["median"], b["nmad"]])
    return [
        "## Redshifts",
        "",
        "Spectra with the right class and a true redshift. Stars: Δv = c·(z − z_true); "
        "galaxies and QSOs: Δz/(1+z_true). NMAD = 1.4826 × median absolute deviation.",
        "",
        markdown_table(["class", "quantity", "S/N_g", "n", "median", "NMAD"], rows),
        "",
        *_image(figures, "redshift_vs_snr", "redshift error against S/N"),
    ]


def _catastrophic(s: dict[str, Any]) -> list[str]:
    c = s["catastrophic"]
    return [
        "## Catastrophic failures",
        "",
        f"Definition: {c['definition']}.",
        "",
        markdown_table(
            ["n", "catastrophic", "rate", "wrong class", "bad redshift", "no true z"],
            [
                [
                    c["n"],
                    c["n_catastrophic"],
                    _pct(c["rate"]),
                    c["n_wrong_class"],
                    c["n_bad_redshift"],
                    c["n_no_true_z"],
                ]
            ],
        ),
        "",
    ]


def _confidence(s: dict[str, Any], figures: Mapping[str, Path]) -> list[str]:
    lines = ["## Confidence (Conf)", ""]
    if s["reliability"] is None:
        return lines + [
            "No Conf in the results view: no reliability diagram, no accuracy "
            "at a Conf threshold, no AUC.",
            "",
        ]
    t, auc = s["accuracy_conf_ge_threshold"], s["auc"]
    auc_text = _frac(auc["auc"]) if auc["auc"] is not None else auc["note"]
    rows = [
        [
            f"{b['conf_lo']:.1f}–{b['conf_hi']:.1f}",
            b["n"],
            b["n_correct"],
            _frac(b["fraction_correct"]),
            _frac(b["mean_conf"]),
        ]
        for b in s["reliability"]
    ]
    return lines + [
        f"Accuracy with Conf ≥ {t['threshold']:g}: **{_frac(t['accuracy'])}** "
        f"({t['n_correct']} of {t['n']}; {_pct(t['coverage'])} of the labelled spectra with "
        "a Conf).",
        "",
        f"ROC AUC of Conf for telling right from wrong classes: **{auc_text}** "
        f"({auc['n_correct']} right, {auc['n_wrong']} wrong).",
        "",
        markdown_table(["Conf", "n", "right class", "fraction right", "mean Conf"], rows),
        "",
        *_image(figures, "reliability", "reliability diagram"),
    ]


def _zwarning(s: dict[str, Any]) -> list[str]:
    lines = ["## ZWARNING", ""]
    z = s["zwarning"]
    if z is None:
        return lines + ["No ZWARNING in the results view.", ""]
    rows = [[name, n] for name, n in z["bits"].items()]
    return lines + [
        f"Over all {z['n']} joined spectra with a ZWARNING (UNKNOWN truth included): "
        f"{z['n_zero']} without any warning.",
        "",
        markdown_table(["bit", "spectra with it set"], rows),
        "",
    ]


def _ablation(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    headers: list[str] = []
    for row in rows:
        headers += [k for k in row if k not in headers]
    return [
        "## Ablation",
        "",
        markdown_table(headers, [[row.get(h) for h in headers] for row in rows]),
        "",
    ]


def render_markdown(
    summary: dict[str, Any],
    figures: Mapping[str, Path] | None = None,
    *,
    plot_note: str | None = None,
) -> str:
    """``report.md`` for a summary; ``figures`` are embedded by file name."""
    figs = figures or {}
    lines = _inputs(summary)
    if plot_note:
        lines += [f"> No figures: {plot_note}.", ""]
    lines += _classes(summary, figs) + _subclasses(summary, figs) + _redshifts(summary, figs)
    lines += _catastrophic(summary) + _confidence(summary, figs) + _zwarning(summary)
    if summary.get("ablation"):
        lines += _ablation(summary["ablation"])
    return "\n".join(lines).rstrip() + "\n"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_report(
    summary: dict[str, Any],
    joined: pl.DataFrame,
    out_dir: str | Path,
    *,
    ablation: Sequence[Mapping[str, Any]] | None = None,
    plots_wanted: bool = True,
) -> Report:
    """Write ``summary.json``, ``report.md`` and the PNG figures into ``out_dir``.

    Parameters
    ----------
    summary
        From :func:`lamostdb.validate.metrics.summarize` (an ``inputs`` dict may be added).
    joined
        The joined frame the summary was made from (the figures plot its spectra).
    out_dir
        Folder, created if missing; files of an earlier report there are replaced.
    ablation
        Rows such as ``{config, dataset, n, class_accuracy, auc, ...}``, shown in order as
        a table with the keys as columns (in order of first appearance).
    plots_wanted
        False to write no figures.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(summary)
    summary.pop("ablation", None)
    if ablation:
        summary["ablation"] = [dict(row) for row in ablation]
    summary["snr_bins"] = list(SNR_LABELS)
    figures: dict[str, Path] = {}
    plot_note = None
    if not plots_wanted:
        plot_note = "plots turned off"
    elif not plots.matplotlib_available():
        plot_note = plots.PLOT_HINT
    else:
        figures = plots.write_plots(summary, prepare(joined), out)
    for name in plots.FIGURE_NAMES - figures.keys():
        # a figure of an earlier report in this folder would contradict this one
        (out / f"{name}.png").unlink(missing_ok=True)
    summary["figures"] = {name: path.name for name, path in figures.items()}
    summary["plot_note"] = plot_note
    text = json.dumps(summary, indent=1, allow_nan=False, default=_json_default)
    atomic_write_bytes(out / "summary.json", (text + "\n").encode())
    md = render_markdown(summary, figures, plot_note=plot_note)
    atomic_write_bytes(out / "report.md", md.encode())
    return Report(
        out_dir=out,
        summary_json=out / "summary.json",
        report_md=out / "report.md",
        figures=figures,
        plot_note=plot_note,
    )
