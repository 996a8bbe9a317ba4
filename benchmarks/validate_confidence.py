"""Issue 4 acceptance: confidence, re-match and reordering on distorted and clean nights.

Usage::

    python benchmarks/validate_confidence.py [--n-severe 3000] [--n-clean 1500] [--work DIR]

Builds and classifies (with the shipped engine and confidence parameters):

- a simulated night with severe distortions (seed 5: arm mismatch up to +-30 %, calibration
  tilt up to +-40 %) and a clean one (seed 6: no tilt, no arm mismatch);
- the real LAMOST spectra of ../shared/data/spectra/lamost (LAMOST labels as truth; left out,
  and said so, when ../shared is absent);

then writes a ``lamostdb validate`` report for each (with the ablation table of
``lamostdb.validate.ablation`` for the two simulated nights) and prints the acceptance figures:
accuracy among Conf >= 0.8, ROC AUC of Conf, and the ablation rows.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from make_confidence import build  # same folder: benchmarks/

from lamostdb.catalog.store import open_catalog
from lamostdb.sim import simulate_night
from lamostdb.validate import validate_catalog
from lamostdb.validate.ablation import run_ablation
from lamostdb.validate.truth import load_joined

SHARED_LAMOST = Path(__file__).resolve().parents[2] / "shared" / "data" / "spectra" / "lamost"


def headline(name: str, summary: dict[str, Any]) -> None:
    acc = summary["accuracy_conf_ge_threshold"] or {}
    auc = summary["auc"] or {}
    cat = summary["catastrophic"]
    print(f"\n== {name}: {summary['n_labelled']} labelled spectra")
    print(
        f"class accuracy {summary['class_accuracy']:.4f}; catastrophic rate "
        f"{cat['rate']:.4f} ({cat['n_catastrophic']})"
    )
    if acc:
        print(
            f"Conf >= {acc['threshold']}: {acc['n']} spectra (coverage {acc['coverage']:.4f}), "
            f"class accuracy {acc['accuracy']:.4f}"
        )
    if auc:
        shown = "undefined" if auc["auc"] is None else f"{auc['auc']:.4f}"
        print(
            f"ROC AUC of Conf (right vs wrong class): {shown} "
            f"({auc['n_correct']} right, {auc['n_wrong']} wrong)"
        )
    zw = (summary.get("zwarning") or {}).get("bits", {})
    if zw:
        print("ZWARNING bits set: " + ", ".join(f"{k} {v}" for k, v in zw.items() if v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n-severe", type=int, default=3000)
    ap.add_argument("--n-clean", type=int, default=1500)
    ap.add_argument("--work", help="work folder (default: a new temporary one)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="validate_confidence_"))
    t0 = time.perf_counter()
    nights = {"severe": (5, args.n_severe, 0.30, 0.40), "clean": (6, args.n_clean, 0.0, 0.0)}
    built = {}
    for name, (seed, n, arm, tilt) in nights.items():
        night = work / f"night-{name}"
        simulate_night(night, n=n, seed=seed, arm_mismatch_max=arm, tilt_max=tilt)
        built[name] = (build(work, f"cat-{name}", [night / "spectra"]), night / "truth.parquet")
    rows: list[dict[str, Any]] = []
    for name, (cat, truth) in built.items():
        with open_catalog(cat) as c:
            joined = load_joined(c, truth).frame
        rows += run_ablation(cat, joined, dataset=name, progress=False)
    for name, (cat, truth) in built.items():
        v = validate_catalog(cat, truth, work / f"report-{name}", ablation=rows)
        headline(
            f"simulated night, {name} ({nights[name][1]} spectra, seed {nights[name][0]})",
            v.summary,
        )
        print(f"report: {v.report.report_md}")
    if SHARED_LAMOST.is_dir():
        cat = build(work, "cat-lamost", [SHARED_LAMOST])
        v = validate_catalog(cat, "lamost", work / "report-lamost")
        headline("real LAMOST spectra (LAMOST labels)", v.summary)
        print(f"report: {v.report.report_md}")
    else:
        print(f"\n{SHARED_LAMOST} absent: the real LAMOST report is not made")
    print("\n== ablation (same spectra, steps switched on one by one)")
    keys = list(rows[0])
    print(" | ".join(keys))
    for r in rows:
        print(" | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in r.values()))
    (work / "ablation.json").write_text(json.dumps(rows, indent=1))
    print(f"\nall written under {work} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
