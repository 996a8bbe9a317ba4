"""Time of the GALAXY and QSO search per 32-spectrum batch: pruned against exhaustive.

Usage::

    python benchmarks/bench_eigen_search.py [--n 640] [--seed 21] [--real] [--set KEY=VALUE ...]

On one BLAS thread, over the batches of a simulated night (or the real spectra of ../shared
with ``--real``), times ``fit._eigen_candidates`` (the exhaustive search: FFT correlations at
every lag) and ``fit._eigen_candidates_pruned`` (binned first pass, exact chi-square on lag
windows) on the same batch, interleaved and in alternating order, so that a busy neighbour
slows both alike. Prints the medians per class and for both classes together, and the
median of the per-batch ratios. ``--set`` overrides ``SearchConfig`` fields, e.g.
``--set eigen_top_n=3 --set galaxy_factor=8``. Agreement is ``validate_search.py``'s job.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH = 32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=640, help="spectra in the simulated night")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--real", action="store_true", help="the real spectra of ../shared instead")
    ap.add_argument("--set", action="append", default=[], help="SearchConfig field=value")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from lamostdb.match import fit
    from lamostdb.match.config import SearchConfig
    from lamostdb.match.engine import get_engine

    types = {f.name: f.type for f in fields(SearchConfig)}
    over: dict[str, object] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        over[key] = value.lower() in ("1", "true") if types[key] in (bool, "bool") else int(value)
    engine = replace(get_engine(), search=SearchConfig(**over))  # type: ignore[arg-type]
    if args.real:
        from validate_engine import load_real  # type: ignore[import-not-found]

        d = load_real(engine)
        flux, ivar = d["flux"], d["ivar"]
        what = f"{flux.shape[0]} real spectra"
    else:
        from validate_engine import _night_matrices  # type: ignore[import-not-found]

        from lamostdb.sim import simulate_night

        with tempfile.TemporaryDirectory(prefix="bench_eigen_") as tmp:
            simulate_night(Path(tmp) / "night", n=args.n, seed=args.seed)
            _, flux, ivar = _night_matrices(Path(tmp) / "night", engine)
        what = f"simulated night of {args.n} (seed {args.seed})"
    times: dict[tuple[str, str], list[float]] = {}
    with threadpool_limits(limits=1):
        for k, a in enumerate(range(0, flux.shape[0], BATCH)):
            f, w = fit.weighted_inputs(engine, flux[a : a + BATCH], ivar[a : a + BATCH])
            wff = np.einsum("sp,sp->s", w * f, f)
            order = ("exhaustive", "pruned") if k % 2 == 0 else ("pruned", "exhaustive")
            for block in engine.eigen:
                for which in order:
                    search = (
                        fit._eigen_candidates
                        if which == "exhaustive"
                        else (fit._eigen_candidates_pruned)
                    )
                    t0 = time.perf_counter()
                    search(engine, block, f, w, wff)
                    times.setdefault((block.objclass, which), []).append(time.perf_counter() - t0)
    print(f"{what}, batches of {BATCH}, one BLAS thread; {engine.search}")
    classes = [b.objclass for b in engine.eigen]
    for which in ("exhaustive", "pruned"):
        per = {c: statistics.median(times[(c, which)]) * 1e3 for c in classes}
        total = [sum(ts) for ts in zip(*(times[(c, which)] for c in classes), strict=True)]
        parts = ", ".join(f"{c} {v:.0f}" for c, v in per.items())
        print(f"  {which:10s}: {parts}; both {statistics.median(total) * 1e3:.0f} ms per batch")
    ratios = [
        sum(times[(c, "exhaustive")][i] for c in classes)
        / sum(times[(c, "pruned")][i] for c in classes)
        for i in range(len(times[(classes[0], "pruned")]))
    ]
    print(f"  exhaustive/pruned (median of per-batch ratios): {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
