"""Classification throughput, memory and where the time goes.

Usage::

    python benchmarks/bench_classify.py [--n 4000] [--repeats 3]

Prints:

- end-to-end ``classify`` of a simulated night (all cores): spectra/s (median of repeats, each
  on a fresh copy of the ingested catalogue) and peak RSS of the main process and the workers;
- on one core (one BLAS thread, as in a worker): the star chi-square kernel's achieved
  GFLOP/s next to a plain numpy float64 and float32
  matrix product of the same shape measured in the same run (the machine's practical roof);
- per-stage time of one 32-spectrum batch: star kernel, galaxy and QSO FFT correlations,
  small solves (``profile_pipeline.py`` times every step of ``classify_arrays``).
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
import json, resource, sys, time
from lamostdb.classify.stage import classify
from lamostdb.catalog.store import Catalog
with Catalog(sys.argv[1], mode="w") as cat:
    t0 = time.perf_counter()
    rep = classify(cat, progress=False)
    wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "n": rep.n_fitted, "counts": rep.counts,
                  "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_worker_mb": rep.peak_worker_rss_mb}))
"""


def best_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def kernel_figures(night: Path) -> None:

    from benchmarks_validate import records_frame  # type: ignore[import-not-found]

    from lamostdb.io import read_spectrum
    from lamostdb.match import eigen_kernel, fit
    from lamostdb.match.batch import batch_to_matrices
    from lamostdb.match.engine import get_engine
    from lamostdb.match.star_kernel import _star_chi2

    engine = get_engine()
    files = sorted((night / "spectra").glob("*.fits"))[:32]
    flux, ivar = batch_to_matrices(records_frame([read_spectrum(f) for f in files]))
    s = flux.shape[0]
    st = engine.star
    j, b, t = st.tpl_bins.shape
    k = engine.basis.n_vectors
    flops = 2 * 2 * s * j * b * t + 2 * s * t * j * k * k + 2 * s * t * j * k
    dt = best_time(
        lambda: _star_chi2(
            flux, ivar, st.tpl_bins, st.tpl2_bins, st.bin_index, engine.basis.vectors
        )
    )
    a64 = np.random.default_rng(0).random((64, engine.grid.npix))
    b64 = np.random.default_rng(1).random((engine.grid.npix, t))
    roof64 = 2 * 64 * engine.grid.npix * t / best_time(lambda: a64 @ b64)
    a32, b32 = a64.astype(np.float32), b64.astype(np.float32)
    roof32 = 2 * 64 * engine.grid.npix * t / best_time(lambda: a32 @ b32)
    print(
        f"star kernel ({s} spectra x {t} template-redshift columns; float32 bin products, "
        "float64 normal equations): "
        f"{flops / dt / 1e9:.1f} GFLOP/s; plain matmul roof: float64 {roof64 / 1e9:.1f}, "
        f"float32 {roof32 / 1e9:.1f} GFLOP/s"
    )
    w = np.where(np.isfinite(ivar), ivar, 0) * engine.pixel_weight
    wff = np.einsum("sp,sp->s", w * flux, flux)
    t_star = dt
    parts = {"star kernel (matmul + solves)": t_star}
    for block in engine.eigen:
        t_corr = best_time(
            lambda b=block: eigen_kernel.eigen_chi2_all(
                flux, w, engine.obs_funcs, b.design, b.rest_fft, b.nfft, b.m_range
            )
        )
        parts[f"{block.objclass} FFT correlations"] = t_corr
        t_all = best_time(lambda b=block: fit._eigen_candidates(engine, b, flux, w, wff))
        parts[f"{block.objclass} solves + refinement"] = t_all - t_corr
    total = best_time(lambda: fit.fit_spectra(flux, ivar, engine=engine))
    print(
        f"one batch of {s}: fit_spectra {total * 1e3:.0f} ms "
        f"({s / total:.0f} spectra/s on one core)"
    )
    for name, sec in parts.items():
        print(f"  {name:40s} {sec * 1e3:7.1f} ms  ({100 * sec / total:4.1f} %)")
    from lamostdb.match.pipeline import classify_arrays

    # interleaved, so that a busy neighbour slows both alike; medians of the pairs
    pairs = []
    for _ in range(7):
        t0 = time.perf_counter()
        fit.fit_spectra(flux, ivar, engine=engine)
        t1 = time.perf_counter()
        classify_arrays(flux, ivar, engine=engine)
        pairs.append((t1 - t0, time.perf_counter() - t1))
    f_med = statistics.median(p[0] for p in pairs)
    w_med = statistics.median(p[1] for p in pairs)
    ratio = statistics.median(p[1] / p[0] for p in pairs)
    print(
        f"the whole method on the batch (fit + reordering + class decision + model + "
        f"confidence + re-match of Conf < 0.8 + star velocity + ZWARNING), median of 7 "
        f"interleaved pairs: {w_med * 1e3:.0f} ms vs "
        f"fit_spectra {f_med * 1e3:.0f} ms; ratio {ratio:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
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
        runs = []
        for _ in range(args.repeats):
            shutil.rmtree(work / "cat", ignore_errors=True)
            shutil.copytree(work / "base", work / "cat")
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(work / "cat")],
                check=True,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        walls = [r["wall_s"] for r in runs]
        med = statistics.median(walls)
        print(
            f"classify {args.n} simulated spectra, all cores: "
            f"{', '.join(f'{w:.1f}' for w in walls)} s -> median {args.n / med:.0f} spectra/s"
        )
        print(
            f"peak RSS: main {max(r['rss_main_mb'] for r in runs):.0f} MB, worker "
            f"{max(r['rss_worker_mb'] for r in runs):.0f} MB; classes {runs[-1]['counts']}"
        )
        from threadpoolctl import threadpool_limits

        # one BLAS thread, as in the classify workers: on a shared machine, threads fighting
        # over the cores made one batch 4x slower than in a worker
        with threadpool_limits(limits=1):
            kernel_figures(work / "night")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
