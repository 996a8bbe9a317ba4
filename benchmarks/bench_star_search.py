"""Time of the star search per 32-spectrum batch: exhaustive against pruned configurations.

Usage::

    python benchmarks/bench_star_search.py [--n 640] [--seed 21] [--real] [--rounds 1]
        [--config "star_top_k=8" ...]

Runs ``fit._star_candidates`` (the star part of ``fit_spectra``) on the batches of a simulated
night (``--real``: the real spectra of ../shared instead) with ``SearchConfig(exhaustive=True)``
and with the default pruned search (plus each ``--config``, ``key=value`` fields of
``SearchConfig`` separated by spaces), interleaved per batch in a rotating order, on one BLAS
thread. Prints the median ms per batch of each, its ratio to the exhaustive search, and how
often the pruned search's best star template (and its z within the exhaustive z_err) is the
exhaustive one's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH = 32


def _parse(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in text.split():
        key, value = item.split("=")
        out[key] = float(value) if "." in value else int(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=640)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--real", action="store_true", help="the real spectra of ../shared")
    ap.add_argument("--rounds", type=int, default=1, help="passes over the batches")
    ap.add_argument("--config", action="append", default=[], help="extra pruned configuration")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits
    from validate_engine import _night_matrices, load_real  # type: ignore[import-not-found]

    from lamostdb.match.config import SearchConfig
    from lamostdb.match.engine import get_engine
    from lamostdb.match.fit import _star_candidates, weighted_inputs
    from lamostdb.sim import simulate_night

    engine = get_engine()
    if args.real:
        d = load_real(engine)
        flux, ivar, label = d["flux"], d["ivar"], "real spectra of ../shared"
    else:
        with tempfile.TemporaryDirectory(prefix="bench_star_") as tmp:
            simulate_night(Path(tmp) / "night", n=args.n, seed=args.seed)
            _, flux, ivar = _night_matrices(Path(tmp) / "night", engine)
        label = f"simulated night of {args.n} (seed {args.seed})"
    searches = {"exhaustive": SearchConfig(exhaustive=True), "pruned (default)": SearchConfig()}
    for text in args.config:
        searches[f"pruned {text}"] = SearchConfig(**_parse(text))
    engines = {name: replace(engine, search=s) for name, s in searches.items()}
    times: dict[str, list[float]] = {name: [] for name in engines}
    same: dict[str, int] = {name: 0 for name in engines}
    names = list(engines)
    n_spec = 0
    with threadpool_limits(limits=1):
        for name in names:  # warm the caches (coarse columns, per-column layout)
            _star_candidates(engines[name], *weighted_inputs(engine, flux[:BATCH], ivar[:BATCH]))
        for r in range(args.rounds):
            for k, a in enumerate(range(0, flux.shape[0], BATCH)):
                f, w = weighted_inputs(engine, flux[a : a + BATCH], ivar[a : a + BATCH])
                shift = (k + r) % len(names)
                res = {}
                for name in names[shift:] + names[:shift]:
                    t0 = time.perf_counter()
                    res[name] = _star_candidates(engines[name], f, w, 6)
                    times[name].append(time.perf_counter() - t0)
                if r == 0:
                    n_spec += f.shape[0]
                    e = res["exhaustive"]
                    s_i = np.arange(f.shape[0])
                    best = np.argmin(e[0], axis=1)
                    tol = np.where(np.isfinite(e[2][s_i, best]), e[2][s_i, best], 1e-6)
                    for name, p in res.items():
                        ok = (np.argmin(p[0], axis=1) == best) & (
                            np.abs(p[1][s_i, best] - e[1][s_i, best]) <= tol
                        )
                        same[name] += int(ok.sum())
    t_e = statistics.median(times["exhaustive"])
    print(f"star search per batch of {BATCH}, {label}, one BLAS thread (medians):")
    for name in names:
        t = statistics.median(times[name])
        print(
            f"  {name:50s} {t * 1e3:7.1f} ms  exhaustive/this {t_e / t:5.2f}x  "
            f"best star template and z as exhaustive {same[name]}/{n_spec}"
        )


if __name__ == "__main__":
    main()
