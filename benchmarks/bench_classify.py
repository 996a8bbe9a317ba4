"""Classification throughput, memory and where the time goes.

Usage::

    python benchmarks/bench_classify.py [--n 2000] [--repeats 3] [--workers 1 2]

Prints, in one run:

- end to end: ``classify`` of a simulated night of ``--n`` spectra in a fresh Python process
  per run (interpreter start, imports, engine build and the workers' start-up included), for
  each number of worker processes in ``--workers``: spectra/s (median of ``--repeats``, each
  on a fresh copy of the ingested catalogue) and the ratio against one worker; then the same
  through the command line (``lamostdb classify CATALOG --workers N --quiet``, which starts
  the workers' fork server before it opens the catalogue);
- peak RSS of the main process and of the workers;
- per stage of that run, from timers around the stage's steps in a one-worker run (all in
  one process): process start-up and imports, engine build, reading the spectra files,
  Arrow -> matrices, the engine (``classify_arrays``), assembling the result tables, writing
  them, committing;
- on one core (one BLAS thread, as in a worker): the star chi-square kernel's achieved
  GFLOP/s next to a plain numpy float64 and float32 matrix product of the same shape measured
  in the same run (the machine's practical roof), and the time of each part of
  ``fit_spectra`` on a 32-spectrum batch (``profile_pipeline.py`` times every step of
  ``classify_arrays``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_CHILD = r"""
import time
t_start = time.perf_counter()
import json, resource, sys
from collections import defaultdict
from lamostdb.catalog.store import Catalog
import lamostdb.classify.stage as stage
t_import = time.perf_counter() - t_start
acc = defaultdict(float)
def timed(name, fn):
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            acc[name] += time.perf_counter() - t0
    return wrapper
workers = int(sys.argv[2])
if workers == 1:  # one process: the timers see every step
    import lamostdb.classify.partition as part  # (the driver alone does not import the engine)
    part.classify_arrays = timed("engine", part.classify_arrays)
    part.batch_to_matrices = timed("matrices", part.batch_to_matrices)
    part.get_engine = timed("engine build", part.get_engine)
    part.classify_partition = timed("partition", part.classify_partition)
    stage.write_parquet = timed("write", stage.write_parquet)
    stage.commit_run = timed("commit", stage.commit_run)
with Catalog(sys.argv[1], mode="w") as cat:
    t0 = time.perf_counter()
    rep = stage.classify(cat, workers=workers, progress=False)
    wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "import_s": t_import, "n": rep.n_fitted,
                  "counts": rep.counts, "stages": dict(acc),
                  "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_worker_mb": rep.peak_worker_rss_mb}))
"""


def end_to_end(base: Path, work: Path, workers: int, repeats: int) -> list[dict]:
    """Fresh-process runs of ``classify`` on copies of ``base``; total wall included."""
    runs = []
    for _ in range(repeats):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(work), str(workers)],
            check=True,
            capture_output=True,
            text=True,
        )
        total = time.perf_counter() - t0
        run = json.loads(out.stdout.strip().splitlines()[-1])
        run["total_s"] = total
        runs.append(run)
    return runs


def end_to_end_cli(base: Path, work: Path, workers: int, repeats: int) -> list[float]:
    """Wall seconds of ``lamostdb classify CATALOG --workers N --quiet`` on copies of
    ``base``: the command an operator runs, interpreter start to exit."""
    totals = []
    for _ in range(repeats):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "lamostdb.cli", "classify", str(work)]
            + ["--workers", str(workers), "--quiet"],
            check=True,
            capture_output=True,
            text=True,
        )
        totals.append(time.perf_counter() - t0)
    return totals


def print_stages(runs: list[dict], n: int) -> None:
    """Median seconds of each step of the one-worker runs, and what is left."""
    med = {k: statistics.median(r["stages"].get(k, 0.0) for r in runs) for k in runs[0]["stages"]}
    total = statistics.median(r["total_s"] for r in runs)
    wall = statistics.median(r["wall_s"] for r in runs)
    imp = statistics.median(r["import_s"] for r in runs)
    part = med.get("partition", 0.0)
    rows = [
        ("process start, imports (python -c ... until classify)", total - wall),
        ("  of which lamostdb imports", imp),
        ("engine build (templates -> kernels' arrays)", med.get("engine build", 0.0)),
        ("read spectra files + plan (driver, outside partitions)", 0.0),
        ("Arrow -> (S, P) matrices", med.get("matrices", 0.0)),
        ("engine: classify_arrays", med.get("engine", 0.0)),
        (
            "result tables (partition rest)",
            part - med.get("matrices", 0.0) - med.get("engine", 0.0) - med.get("engine build", 0.0),
        ),
        ("write staged Parquet", med.get("write", 0.0)),
        ("commit", med.get("commit", 0.0)),
    ]
    accounted = sum(v for k, v in rows if not k.startswith("  ") and "driver" not in k)
    rows[3] = (rows[3][0], total - accounted)
    print(f"per stage, one worker (median of {len(runs)} runs, {n} spectra):")
    for name, sec in rows:
        print(
            f"  {name:56s} {sec:7.2f} s  {100 * sec / total:5.1f} %"
            + (f"  ({n / sec:.0f} spectra/s)" if sec > 0 and not name.startswith(" ") else "")
        )
    print(f"  {'TOTAL':56s} {total:7.2f} s")


def best_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def kernel_figures(night: Path) -> None:
    """One BLAS thread: kernel GFLOP/s against a plain matmul, and where a batch's time goes."""
    from benchmarks_validate import records_frame  # type: ignore[import-not-found]

    from lamostdb.io import read_spectrum
    from lamostdb.match import eigen_kernel, fit
    from lamostdb.match.batch import batch_to_matrices
    from lamostdb.match.engine import get_engine
    from lamostdb.match.star_kernel import _star_chi2, star_chi2_coarse

    engine = get_engine()
    files = sorted((night / "spectra").glob("*.fits"))[:32]
    flux, ivar = batch_to_matrices(records_frame([read_spectrum(f) for f in files]))
    f, w = fit.weighted_inputs(engine, flux, ivar)
    s = flux.shape[0]
    st = engine.star
    j, b, t = st.tpl_bins.shape
    k = engine.basis.n_vectors
    p = engine.grid.npix
    cfg = engine.search
    a64 = np.random.default_rng(0).random((64, p))
    b64 = np.random.default_rng(1).random((p, t))
    roof64 = 2 * 64 * p * t / best_time(lambda: a64 @ b64)
    a32, b32 = a64.astype(np.float32), b64.astype(np.float32)
    roof32 = 2 * 64 * p * t / best_time(lambda: a32 @ b32)
    print(
        f"plain matmul roof ((64 x {p}) @ ({p} x {t}), one thread): float64 "
        f"{roof64 / 1e9:.1f}, float32 {roof32 / 1e9:.1f} GFLOP/s"
    )
    # the exhaustive star kernel: every template x redshift, float32 bin products
    flops = 2 * 2 * s * j * b * t + 2 * s * t * j * k * k + 2 * s * t * j * k
    dt = best_time(
        lambda: _star_chi2(f, w, st.tpl_bins, st.tpl2_bins, st.bin_index, engine.basis.vectors)
    )
    print(
        f"star kernel, exhaustive ({s} spectra x {t} columns): {flops / dt / 1e9:.1f} GFLOP/s, "
        f"{dt * 1e3:.0f} ms"
    )
    groups = st.coarse(cfg.star_coarse_step, cfg.star_anchors)
    runs = [(g.tpl_bins, g.tpl2_bins, g.anchor) for g in groups]
    t_c = sum(g.tpl_bins.shape[2] for g in groups)
    flops_c = 2 * 2 * s * j * b * t_c
    dt = best_time(
        lambda: star_chi2_coarse(f, w, runs, st.bin_index, engine.basis.vectors, len(st.names))
    )
    print(
        f"star first pass (pruned; {t_c} columns, float32 bin products, no per-column solve): "
        f"{flops_c / dt / 1e9:.1f} GFLOP/s, {dt * 1e3:.0f} ms"
    )
    for block in engine.eigen:
        obs = eigen_kernel.observed_products(f, w, engine.obs_funcs, block.design)
        n_lag = 2 * cfg.eigen_half_window + 1
        lo, hi = block.m_range
        start = np.random.default_rng(2).integers(lo, hi - n_lag, size=(s, cfg.eigen_top_n))
        n_prod = sum(len(g[0]) * g[1].shape[0] for g in obs.groups)
        flops_w = 2 * s * cfg.eigen_top_n * n_lag * n_prod * p
        dt = best_time(
            lambda o=obs, bl=block, st0=start, nl=n_lag: eigen_kernel.normal_at(o, bl.rest, st0, nl)
        )
        print(
            f"{block.objclass} exact windows (pruned; {cfg.eigen_top_n} x {n_lag} lags, "
            f"{n_prod} products of {p} pixels, float64): {flops_w / dt / 1e9:.1f} GFLOP/s, "
            f"{dt * 1e3:.0f} ms"
        )

    # where one batch's fit goes: the pieces of fit_spectra timed in place
    from collections import defaultdict

    acc: dict[str, float] = defaultdict(float)
    names = {
        "star_chi2_coarse": "star first pass",
        "star_chi2_at": "star exact pass (top-K templates)",
        "_star_candidates_all": "star, noise-like spectra (exhaustive)",
        "coarse_chi2": "eigen first pass (binned FFT + reduction)",
        "_exact_windows": "eigen exact windows (direct sums + solves)",
        "_eigen_candidates": "eigen, noise-like spectra (exhaustive)",
    }
    saved = {n: getattr(fit, n) for n in names}

    def timed(name: str):  # type: ignore[no-untyped-def]
        fn = saved[name]

        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[names[name]] += time.perf_counter() - t0

        return wrapper

    for name in names:
        setattr(fit, name, timed(name))
    totals = []
    try:
        for _ in range(5):
            acc.clear()
            t0 = time.perf_counter()
            fit.fit_spectra(flux, ivar, engine=engine)
            totals.append((time.perf_counter() - t0, dict(acc)))
    finally:
        for name, fn in saved.items():
            setattr(fit, name, fn)
    total, parts = sorted(totals, key=lambda x: x[0])[len(totals) // 2]
    print(
        f"one batch of {s}: fit_spectra {total * 1e3:.0f} ms "
        f"({s / total:.0f} spectra/s on one core)"
    )
    for name in names.values():
        sec = parts.get(name, 0.0)
        print(f"  {name:46s} {sec * 1e3:7.1f} ms  ({100 * sec / total:4.1f} %)")
    rest = total - sum(parts.values())
    print(
        f"  {'the rest (inputs, parabolas, candidate lists)':46s} {rest * 1e3:7.1f} ms  "
        f"({100 * rest / total:4.1f} %)"
    )
    from lamostdb.match.pipeline import classify_arrays

    # interleaved, so that a busy neighbour slows both alike; medians of the pairs
    pairs = []
    for _ in range(7):
        t0 = time.perf_counter()
        fit.fit_spectra(flux, ivar, engine=engine)
        t1 = time.perf_counter()
        classify_arrays(flux, ivar, engine=engine)
        pairs.append((t1 - t0, time.perf_counter() - t1))
    f_med = statistics.median(q[0] for q in pairs)
    w_med = statistics.median(q[1] for q in pairs)
    print(
        f"the whole method on the batch (fit + reordering + class decision + model + "
        f"confidence + re-match of Conf < 0.8 + star velocity + ZWARNING), median of 7 "
        f"interleaved pairs: {w_med * 1e3:.0f} ms ({s / w_med:.0f} spectra/s on one core), "
        f"of which fit_spectra {f_med * 1e3:.0f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import importlib

    sys.modules["benchmarks_validate"] = importlib.import_module("validate_engine")

    from lamostdb.catalog.store import Catalog
    from lamostdb.ingest.stage import ingest
    from lamostdb.sim import simulate_night

    work = Path(tempfile.mkdtemp(prefix="bench_classify_"))
    try:
        simulate_night(work / "night", n=args.n, seed=21)
        with Catalog.create(work / "base") as cat:
            ingest(cat, [work / "night" / "spectra"], progress=False)
        rates = {}
        for workers in args.workers:
            runs = end_to_end(work / "base", work / "cat", workers, args.repeats)
            totals = [r["total_s"] for r in runs]
            med = statistics.median(totals)
            rates[workers] = args.n / med
            ratio = f"; {rates[workers] / rates[1]:.2f}x one worker" if 1 in rates else ""
            print(
                f"classify {args.n} simulated spectra end to end, {workers} worker process"
                f"{'es' if workers > 1 else ''}: {', '.join(f'{t:.1f}' for t in totals)} s -> "
                f"median {rates[workers]:.0f} spectra/s{ratio} (classify() alone: "
                f"{args.n / statistics.median(r['wall_s'] for r in runs):.0f} spectra/s)"
            )
            print(
                f"  peak RSS: main {max(r['rss_main_mb'] for r in runs):.0f} MB, worker "
                f"{max(r['rss_worker_mb'] for r in runs):.0f} MB; classes {runs[-1]['counts']}"
            )
            cli = end_to_end_cli(work / "base", work / "cat", workers, args.repeats)
            print(
                f"  the same from the command line (lamostdb classify CATALOG --workers "
                f"{workers} --quiet): {', '.join(f'{t:.1f}' for t in cli)} s -> median "
                f"{args.n / statistics.median(cli):.0f} spectra/s"
            )
            if workers == 1:
                print_stages(runs, args.n)
        from threadpoolctl import threadpool_limits

        # one BLAS thread, as in the classify workers: on a shared machine, threads fighting
        # over the cores made one batch 4x slower than in a worker
        with threadpool_limits(limits=1):
            kernel_figures(work / "night")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
