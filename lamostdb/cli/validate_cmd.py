"""``lamostdb validate CATALOG --truth TRUTH --out DIR``: our classes against a truth."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_validate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``validate`` subcommand to the ``lamostdb`` parser's subparsers."""
    s: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        help="compare classifications with a truth and write a report",
        description="Join the catalogue's current results with a truth and write "
        "summary.json, report.md and PNG figures into --out: confusion matrix and class "
        "accuracy per S/N_g bin (<5, 5-10, 10-20, >=20), stellar subclass offsets, "
        "redshift errors against S/N (stars: dv in km/s; galaxies, QSOs: dz/(1+z)) with "
        "median and 1.4826*MAD, the catastrophic-failure rate (wrong class, |dz|/(1+z) > "
        "0.01, or |dv| > 1000 km/s), and, when the results carry them, the Conf reliability "
        "diagram, accuracy at Conf >= threshold, Conf ROC AUC and ZWARNING bit counts. "
        "Truth rows of class UNKNOWN (sky, junk) are counted and left out of the figures. "
        "Figures need matplotlib (pip install 'lamostdb[plot]').",
    )
    s.add_argument("catalog", help="catalogue folder (run `lamostdb classify` on it first)")
    s.add_argument(
        "--truth",
        required=True,
        help="truth.parquet of `lamostdb simulate` (or any Parquet keyed by obsid "
        "with class and z), or the word 'lamost' for the LAMOST pipeline labels "
        "stored with the spectra (lasp_class, lasp_subclass, lasp_z)",
    )
    s.add_argument("--out", required=True, help="report folder (created if missing)")
    s.add_argument(
        "--conf-threshold",
        type=float,
        default=0.8,
        help="Conf cut for the accuracy of confident classifications (default 0.8)",
    )
    s.add_argument("--no-plots", action="store_true", help="write JSON and Markdown only")
    s.add_argument(
        "--ablation",
        action="store_true",
        help="also fit the same spectra with the method's steps switched on one by "
        "one (polynomial baseline, SVD continuum, + reordering, + confidence and "
        "re-match) and add the table to the report (4 extra fits per spectrum)",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_validate)
    return s


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate, write the report, print a short summary."""
    from lamostdb.validate import validate_catalog

    if not 0.0 <= args.conf_threshold <= 1.0:
        raise ValueError(f"--conf-threshold must be in [0, 1], got {args.conf_threshold}")
    rows = None
    if args.ablation:
        from lamostdb.catalog.store import open_catalog
        from lamostdb.validate.ablation import run_ablation
        from lamostdb.validate.truth import load_joined

        with open_catalog(args.catalog) as cat:
            joined = load_joined(cat, args.truth).frame
        rows = run_ablation(
            args.catalog,
            joined,
            dataset=str(args.truth),
            conf_threshold=args.conf_threshold,
            progress=not args.quiet,
        )
    res = validate_catalog(
        args.catalog,
        args.truth,
        args.out,
        ablation=rows,
        conf_threshold=args.conf_threshold,
        plots_wanted=not args.no_plots,
    )
    s, rep = res.summary, res.report
    cat = s["catastrophic"]
    acc = s["accuracy_by_snr"][0]
    print(
        f"validated {s['n_labelled']} spectra against {s['inputs']['truth']} "
        f"({s['n_unknown_truth']} with UNKNOWN truth left out)"
    )
    print(
        f"class accuracy {_pct(acc['accuracy'])} ({acc['n_correct']}/{acc['n']}); "
        f"catastrophic {_pct(cat['rate'])} ({cat['n_catastrophic']}: {cat['n_wrong_class']} "
        f"wrong class, {cat['n_bad_redshift']} bad redshift)"
    )
    if s["auc"] is None:
        print("Conf: not in the results view (no reliability diagram, no AUC)")
    else:
        auc = s["auc"]["auc"]
        thr = s["accuracy_conf_ge_threshold"]
        print(
            f"Conf AUC {auc:.3f}" if auc is not None else f"Conf AUC {s['auc']['note']}", end="; "
        )
        print(
            f"accuracy at Conf >= {thr['threshold']:g}: {_pct(thr['accuracy'])} "
            f"({thr['n']} spectra)"
        )
    for row in rows or []:
        print(
            f"ablation: {row['config']}: class accuracy {_pct(row['class_accuracy'])}, "
            f"{row['n_refined']} refined"
        )
    print(f"report: {rep.report_md}")
    if rep.plot_note and not args.no_plots:
        print(f"lamostdb validate: no figures written; {rep.plot_note}", file=sys.stderr)
    return 0
