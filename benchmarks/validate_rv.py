"""Star radial velocities: repeatability, accuracy and error calibration, before and after.

Usage::

    python benchmarks/validate_rv.py [--n 1000] [--skip-sim] [--skip-real]

"Before" is the star kernel's z (coarse grid + parabola), "after" the full-resolution fit of
``lamostdb.match.velocity``; both come from one ``classify_arrays`` run per batch (the
pipeline without its velocity step, then that step alone, exactly as the pipeline runs it).

(a) simulated repeat epochs: the demo's three nights (seeds 1, 32, 37) observe one field, so
    stars come back; per-epoch RV scatter at S/N_g >= 20 of the non-binaries: robust sigma of
    v_epoch - mean over the star's epochs, times sqrt(n/(n-1)) (target <= 3 km/s);
(b) simulated: RV bias and robust scatter against the truth, robust sigma of
    (v - v_true) / rv_err (target 0.8-1.25);
(c) real LAMOST stars in ../shared/data/spectra/lamost: median |dv| and median dv against
    LAMOST's Z, robust sigma of dv / sqrt(rv_err^2 + Z_ERR_LAMOST^2) (target 0.8-1.25).

Also the cost of the velocity step per 32-spectrum batch against the whole classify.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate_engine import SHARED, records_frame  # noqa: E402

from lamostdb.cli.demo_cmd import DEMO_SEEDS  # noqa: E402
from lamostdb.io import SpectrumReadError, read_spectrum  # noqa: E402
from lamostdb.match.batch import batch_to_matrices  # noqa: E402
from lamostdb.match.engine import get_engine  # noqa: E402
from lamostdb.match.fit import weighted_inputs  # noqa: E402
from lamostdb.match.pipeline import PipelineOptions, classify_arrays  # noqa: E402
from lamostdb.match.velocity import C_KMS, VelocityOptions, refine_best_star  # noqa: E402

BATCH = 32


def robust_sigma(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def classify_before_after(records: list, engine, vel: VelocityOptions) -> dict[str, np.ndarray]:
    """Class, kernel z/z_err and full-resolution z/z_err of every record; timings."""
    opt = replace(PipelineOptions(), velocity=None)
    out: dict[str, list] = {k: [] for k in ("star", "z0", "e0", "z1", "e1")}
    t_cls = t_vel = 0.0
    n_batches = 0
    for a in range(0, len(records), BATCH):
        flux, ivar = batch_to_matrices(records_frame(records[a : a + BATCH]), engine.grid)
        t0 = time.perf_counter()
        c = classify_arrays(flux, ivar, engine=engine, options=opt)
        t1 = time.perf_counter()
        f, w = weighted_inputs(engine, flux, ivar)
        fit = refine_best_star(engine, c.fit, f, w, c.refined, vel, opt.checks.poly_order)
        t2 = time.perf_counter()
        t_cls += t1 - t0
        t_vel += t2 - t1
        n_batches += 1
        out["star"].append(c.fit.objclass[:, 0] == 0)
        out["z0"].append(c.fit.z[:, 0])
        out["e0"].append(c.fit.z_err[:, 0])
        out["z1"].append(fit.z[:, 0])
        out["e1"].append(fit.z_err[:, 0])
    res = {k: np.concatenate(v) for k, v in out.items()}
    print(
        f"cost: classify_arrays without the velocity step {1e3 * t_cls / n_batches:.0f} ms, "
        f"velocity step {1e3 * t_vel / n_batches:.0f} ms per {BATCH}-spectrum batch "
        f"({100 * t_vel / (t_cls + t_vel):.0f} % of the whole)"
    )
    return res


def simulated(n: int, engine, vel: VelocityOptions) -> None:
    from lamostdb.sim import simulate_night

    work = Path(tempfile.mkdtemp(prefix="validate_rv_"))
    frames = []
    for seed in DEMO_SEEDS:
        simulate_night(work / f"night{seed}", n=n, seed=seed)
        frames.append(
            pl.read_parquet(work / f"night{seed}" / "truth.parquet").with_columns(
                night=pl.lit(seed)
            )
        )
    truth = pl.concat(frames).filter((pl.col("class") == "STAR") & (pl.col("snr_g") >= 20))
    recs = [
        read_spectrum(work / f"night{s}" / "spectra" / f)
        for s, f in zip(truth["night"], truth["filename"], strict=True)
    ]
    print(
        f"\n== simulated: nights {DEMO_SEEDS} of {n} spectra, {truth.height} star spectra "
        f"at S/N_g >= 20 ({truth['object_id'].n_unique()} stars)"
    )
    r = classify_before_after(recs, engine, vel)
    v_true = truth["v_kms"].to_numpy()
    obj = truth["object_id"].to_numpy()
    single = ~truth["is_binary"].to_numpy()
    for name, z, e in (
        ("before (kernel)", r["z0"], r["e0"]),
        ("after (full res)", r["z1"], r["e1"]),
    ):
        ok = r["star"]
        v = z * C_KMS
        dv = (v - v_true)[ok]
        pull = dv / (e[ok] * C_KMS)
        sel = ok & single
        u, inv, cnt = np.unique(obj[sel], return_inverse=True, return_counts=True)
        mean = np.bincount(inv, v[sel]) / cnt
        rep = cnt[inv] >= 2
        resid = (v[sel] - mean[inv])[rep] * np.sqrt(cnt[inv][rep] / (cnt[inv][rep] - 1))
        print(
            f"{name}: (a) per-epoch RV scatter {robust_sigma(resid):.2f} km/s "
            f"({rep.sum()} epochs of {(cnt >= 2).sum()} non-binary stars); "
            f"(b) bias {np.median(dv):+.2f} km/s, robust scatter {robust_sigma(dv):.2f} "
            f"km/s, robust sigma of pulls {robust_sigma(pull):.3f} ({ok.sum()} spectra)"
        )


def real_lamost(engine, vel: VelocityOptions) -> None:
    files = sorted(p for g in ("*.fits", "*.fits.gz") for p in (SHARED / "lamost").rglob(g))
    if not files:
        print(f"\n== real LAMOST: {SHARED / 'lamost'} absent, not measured")
        return
    recs = []
    for f in files:
        try:
            recs.append(read_spectrum(f))
        except SpectrumReadError:
            pass
    print(f"\n== real LAMOST: {len(recs)} spectra")
    r = classify_before_after(recs, engine, vel)
    lc = np.array([(x.lasp_class or "").upper() for x in recs])
    lz = np.array([np.nan if x.lasp_z is None else x.lasp_z for x in recs])
    lze = np.array([np.nan if x.lasp_z_err is None else x.lasp_z_err for x in recs])
    stars = r["star"] & (lc == "STAR") & np.isfinite(lz)
    print(
        f"{stars.sum()} stars for both; LAMOST's median Z_ERR "
        f"{np.nanmedian(lze[stars]) * C_KMS:.2f} km/s"
    )
    for name, z, e in (
        ("before (kernel)", r["z0"], r["e0"]),
        ("after (full res)", r["z1"], r["e1"]),
    ):
        dv = (z - lz)[stars] * C_KMS
        pull = dv / (np.hypot(e[stars], lze[stars]) * C_KMS)
        print(
            f"{name}: median |dv| {np.median(np.abs(dv)):.2f} km/s, median dv "
            f"{np.median(dv):+.2f} km/s, robust sigma of dv {robust_sigma(dv):.2f} km/s, "
            f"robust sigma of dv/sqrt(err^2 + Z_ERR^2) {robust_sigma(pull):.3f}, "
            f"median rv_err {np.nanmedian(e[stars]) * C_KMS:.2f} km/s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="spectra per simulated night")
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    engine = get_engine()
    vel = VelocityOptions()
    print(f"engine {engine.version}; {vel}")
    if not args.skip_sim:
        simulated(args.n, engine, vel)
    if not args.skip_real:
        real_lamost(engine, vel)


if __name__ == "__main__":
    main()
