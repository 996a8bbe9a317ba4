"""CPU time per 32-spectrum batch of ``classify_arrays`` after ``fit_spectra``, step by step.

Usage::

    python benchmarks/time_after_fit.py [--night DIR | --n 320 --seed 21] [--rounds 5]

Like ``profile_pipeline.py``, but ``fit_spectra`` runs once per batch beforehand and is then
replaced by its cached result, so that every round times only what follows it (class
decision, best models, confidence, re-match, velocity, ZWARNING, typing). Times are the
thread's CPU time (``time.thread_time``), less sensitive than wall time to other processes
on a shared machine; one BLAS thread. Prints the median ms per batch of each step.
Runs against whichever ``lamostdb`` is imported (``PYTHONPATH`` for another tree), so two
versions can be timed alternately on the same night.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

STEPS = ("decide_class", "fit_models", "confidence", "rematch", "refine_best_star")


def _timed(table: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            table[name] += time.thread_time() - t0

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=320)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--night", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from profile_pipeline import load_batches  # type: ignore[import-not-found]
    from threadpoolctl import threadpool_limits

    from lamostdb.match import pipeline
    from lamostdb.match.engine import get_engine
    from lamostdb.match.fit import FitResult, weighted_inputs
    from lamostdb.sim import simulate_night

    night = args.night
    if night is None:
        night = Path(tempfile.mkdtemp(prefix="time_after_fit_")) / "night"
        simulate_night(night, n=args.n, seed=args.seed)
    batches = load_batches(night)
    engine = get_engine()
    real_fit = pipeline.fit_spectra
    acc: dict[str, float] = defaultdict(float)
    per_batch: dict[str, list[float]] = defaultdict(list)
    with threadpool_limits(limits=1):
        fits: list[FitResult] = []
        for flux, ivar in batches:
            f, w = weighted_inputs(engine, flux, ivar)
            fits.append(real_fit(f, w, engine=engine))
        current: list[FitResult] = []
        pipeline.fit_spectra = lambda *a, **k: current[0]  # type: ignore[assignment]
        for name in STEPS:
            setattr(pipeline, name, _timed(acc, name, getattr(pipeline, name)))
        for r in range(args.rounds + 1):  # round 0 warms the caches
            for (flux, ivar), fit in zip(batches, fits, strict=True):
                current[:] = [fit]
                acc.clear()
                t0 = time.thread_time()
                pipeline.classify_arrays(flux, ivar, engine=engine)
                total = time.thread_time() - t0
                acc["rest"] = total - sum(acc.values())
                acc["TOTAL after fit_spectra"] = total
                if r:
                    for k in (*STEPS, "rest", "TOTAL after fit_spectra"):
                        per_batch[k].append(acc.get(k, 0.0))
    print(f"{len(batches)} batches x {args.rounds} rounds; median CPU ms per batch")
    for k, vals in per_batch.items():
        print(f"{k:28s} {statistics.median(vals) * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
