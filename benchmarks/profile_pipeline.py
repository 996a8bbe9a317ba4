"""Where the time of ``classify_arrays`` goes, step by step, per 32-spectrum batch.

Usage::

    python benchmarks/profile_pipeline.py [--n 320] [--seed 21] [--night DIR] [--rounds 3]

Simulates a night (or reads ``--night``), parses its spectra into (S, P) batches of 32 and runs
``classify_arrays`` on each batch ``--rounds`` times with the pipeline's steps wrapped in
timers (one BLAS thread, as in the ``classify`` workers). Prints the median time per batch of
each step and its share of the whole. The steps nest: the star kernel and the eigen
candidates are inside ``fit_spectra``, the three ``fit_models`` calls of the class decision
inside ``decide_class``.
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

BATCH = 32


def _timed(table: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[name] += time.perf_counter() - t0

    return wrapper


def load_batches(night: Path) -> list[tuple[Any, Any]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from validate_engine import records_frame  # type: ignore[import-not-found]

    from lamostdb.io import read_spectrum
    from lamostdb.match.batch import batch_to_matrices

    files = sorted((night / "spectra").glob("*.fits*"))
    out = []
    for a in range(0, len(files) - BATCH + 1, BATCH):
        recs = [read_spectrum(f) for f in files[a : a + BATCH]]
        out.append(batch_to_matrices(records_frame(recs)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=320)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--night", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    from lamostdb.match import fit, pipeline
    from lamostdb.match.engine import get_engine
    from lamostdb.sim import simulate_night

    night = args.night
    if night is None:
        night = Path(tempfile.mkdtemp(prefix="profile_pipeline_")) / "night"
        simulate_night(night, n=args.n, seed=args.seed)
    batches = load_batches(night)
    engine = get_engine()

    acc: dict[str, float] = defaultdict(float)
    fit._star_search = _timed(acc, "  star kernel", fit._star_search)
    fit._eigen_search = _timed(acc, "  eigen kernels (GALAXY+QSO)", fit._eigen_search)
    steps = (
        "fit_spectra",
        "reorder",
        "decide_class",
        "fit_models",
        "confidence",
        "rematch",
        "refine_best_star",
    )
    for name in steps:
        label = {
            "refine_best_star": "velocity (refine_best_star)",
            "fit_models": "fit_models (best model)",
        }.get(name, name)
        setattr(pipeline, name, _timed(acc, label, getattr(pipeline, name)))
    import lamostdb.match.decide as decide

    decide.fit_models = _timed(acc, "  decide: fit_models x3", decide.fit_models)
    per_batch: dict[str, list[float]] = defaultdict(list)
    with threadpool_limits(limits=1):
        pipeline.classify_arrays(*batches[0], engine=engine)  # warm caches
        for _ in range(args.rounds):
            for flux, ivar in batches:
                acc.clear()
                t0 = time.perf_counter()
                pipeline.classify_arrays(flux, ivar, engine=engine)
                total = time.perf_counter() - t0
                named = sum(v for k, v in acc.items() if not k.startswith("  "))
                acc["rest (zwarning, subclasses, ...)"] = total - named
                acc["TOTAL classify_arrays"] = total
                for k, v in acc.items():
                    per_batch[k].append(v)
    total = statistics.median(per_batch["TOTAL classify_arrays"])
    print(f"{len(batches)} batches of {BATCH} x {args.rounds} rounds; median ms per batch")
    order = [
        "fit_spectra",
        "  star kernel",
        "  eigen kernels (GALAXY+QSO)",
        "reorder",
        "decide_class",
        "  decide: fit_models x3",
        "fit_models (best model)",
        "confidence",
        "rematch",
        "velocity (refine_best_star)",
        "rest (zwarning, subclasses, ...)",
        "TOTAL classify_arrays",
    ]
    for k in order:
        vals = per_batch.get(k)
        med = (
            statistics.median(vals + [0.0] * (len(per_batch["TOTAL classify_arrays"]) - len(vals)))
            if vals
            else 0.0
        )
        print(f"{k:36s} {med * 1e3:8.1f} ms  {100 * med / total:5.1f} %")
    print(f"-> {BATCH / total:.0f} spectra/s on one core")


if __name__ == "__main__":
    main()
