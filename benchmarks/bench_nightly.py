"""Per-stage timings of ``lamostdb nightly`` on a simulated night.

Usage::

    python benchmarks/bench_nightly.py [--n 2000] [--seed 11] [--workers N] [--night DIR]

Simulates a night of ``--n`` spectra with its mock Gaia / PS1 extracts (not timed; or
reuses ``--night DIR``), then runs the nightly pipeline on it into a fresh catalogue and
prints the seconds of each stage (refcat ingest of the mock references, ingest, classify,
xmatch, ids), the total, spectra/s end to end, the class counts, and the peak RSS of this
process and of the largest classify worker. A second run on the same night, which must
do nothing, is timed as well. The last line is the whole result as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lamostdb.pipeline import NightlyOptions, run_nightly
from lamostdb.sim import simulate_night


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="spectra in the night (default 2000)")
    ap.add_argument("--seed", type=int, default=11, help="night seed (default 11)")
    ap.add_argument("--workers", type=int, default=None, help="default: all cores")
    ap.add_argument("--night", type=Path, help="existing simulated night to reuse")
    ap.add_argument("--keep", type=Path, help="keep the catalogue in this (new) folder")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-nightly-"))
    try:
        night = args.night
        if night is None:
            night = work / "night"
            t0 = time.perf_counter()
            simulate_night(night, n=args.n, seed=args.seed)
            print(
                f"simulated {args.n} spectra (seed {args.seed}) in "
                f"{time.perf_counter() - t0:.1f} s (not part of the timings)"
            )
        catalog = args.keep or work / "cat"
        options = NightlyOptions(workers=args.workers, refcat_from_night=True, progress=False)
        first = run_nightly(catalog, night, options)
        second = run_nightly(catalog, night, options)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the night, and the catalogue unless --keep

    load = [round(x, 1) for x in os.getloadavg()]
    stages = {s.name: s for s in first.stages}
    cores = args.workers or os.cpu_count()
    print(
        f"nightly on {first.night.n_files} files, {cores} worker(s), "
        f"{os.cpu_count()} cores visible; load average after the run {load} (1/5/15 min)"
    )
    print(f"{'stage':<10}{'seconds':>10}{'share':>8}  what")
    for name, s in stages.items():
        print(f"{name:<10}{s.seconds:>10.1f}{100 * s.seconds / first.total_s:>7.1f}%  {s.message}")
    print(
        f"{'total':<10}{first.total_s:>10.1f}{'':>8}  {first.spectra_per_s:.1f} spectra/s "
        "end to end"
    )
    classify_rate = first.n_fitted / max(stages["classify"].seconds, 1e-9)
    print(
        f"classify alone: {classify_rate:.1f} spectra/s; classes: {first.night.classes}; "
        f"quarantined: {len(first.night.quarantined)}"
    )
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_workers = max(s.peak_worker_rss_mb for s in first.stages)
    print(
        f"peak RSS: this process {rss_self:.0f} MB, largest ingest/classify worker "
        f"{rss_workers:.0f} MB"
    )
    print(
        f"second run on the same night: {second.total_s:.1f} s, nothing new: "
        f"{second.nothing_new} ({second.n_new_spectra} new spectra, {second.n_fitted} fitted)"
    )
    print(
        json.dumps(
            {
                "n": first.night.n_spectra,
                "workers": cores,
                "stage_seconds": first.stage_seconds,
                "total_s": first.total_s,
                "spectra_per_s": first.spectra_per_s,
                "classify_per_s": classify_rate,
                "classes": first.night.classes,
                "peak_rss_mb": rss_self,
                "peak_worker_rss_mb": rss_workers,
                "loadavg_after": load,
                "second_run_s": second.total_s,
                "second_run_nothing_new": second.nothing_new,
            }
        )
    )
    return 0 if second.nothing_new else 1


if __name__ == "__main__":
    sys.exit(main())
