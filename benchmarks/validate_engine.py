"""Accuracy of the chi-square engine: simulated truth, real LAMOST labels, real SDSS labels.

Usage::

    python benchmarks/validate_engine.py [--n 5000] [--seed 5] [--continuum FILE]

Prints the figures of issue #3's acceptance list:

- simulated night (seeded, with flux-calibration tilts and arm mismatch): class accuracy at
  S/N_g >= 10 and 5 <= S/N_g < 10; |dz|/(1+z) < 0.001 fraction for correct-class galaxies and
  QSOs at S/N_g >= 10; radial-velocity bias and robust scatter for stars at S/N_g >= 20;
- real LAMOST spectra in ../shared/data/spectra/lamost: class agreement with the LAMOST
  pipeline (leaving out its Unknown), same spectral letter, median |dv| against LAMOST's Z;
- real SDSS spectra in ../shared/data/spectra/sdss: class and |dz| against the SDSS pipeline.

The real-data parts say so and are skipped when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from lamostdb.io import SpectrumReadError, read_spectrum
from lamostdb.match.batch import batch_to_matrices
from lamostdb.match.engine import get_engine
from lamostdb.match.fit import CLASS_CODES, fit_spectra
from lamostdb.templates.subclass import spectral_letter, subclass_of_template

C_KMS = 299792.458
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "spectra"


def records_frame(records: list) -> pl.DataFrame:
    """The engine columns of ``spectra`` rows for in-memory records (same code as ingest)."""
    from lamostdb.catalog.spectra_table import records_to_table

    table = records_to_table(records, ingest_run="validate",
                             hp=np.zeros(len(records), dtype=np.int64))
    df = pl.from_arrow(table.select(["coeff0", "coeff1", "wavelength", "flux", "ivar",
                                     "andmask"]))
    assert isinstance(df, pl.DataFrame)
    return df


def fit_records(records: list, engine, batch: int = 32):
    out = []
    for a in range(0, len(records), batch):
        flux, ivar = batch_to_matrices(records_frame(records[a:a + batch]), engine.grid)
        out.append(fit_spectra(flux, ivar, engine=engine))
    best = {k: np.concatenate([getattr(f, k)[:, 0] for f in out])
            for k in ("objclass", "template", "z", "z_err", "rchi2")}
    best["class"] = np.array(CLASS_CODES)[best["objclass"]]
    names = engine.star.names
    best["subclass"] = np.array([subclass_of_template(names[t]) if t >= 0 else "Non"
                                 for t in best["template"]])
    return best


def simulated(n: int, seed: int, engine) -> None:
    from lamostdb.sim import simulate_night

    work = Path(tempfile.mkdtemp(prefix="validate_"))
    simulate_night(work / "night", n=n, seed=seed)
    truth = pl.read_parquet(work / "night" / "truth.parquet")
    recs = [read_spectrum(work / "night" / "spectra" / f) for f in truth["filename"]]
    best = fit_records(recs, engine)
    tc = truth["class"].to_numpy()
    tz = truth["z"].fill_null(np.nan).to_numpy()
    snr = truth["snr_g"].to_numpy()
    real = tc != "UNKNOWN"
    print(f"\n== simulated night: {n} spectra, seed {seed}")
    for lo, hi in ((10, np.inf), (5, 10), (2, 5)):
        sel = real & (snr >= lo) & (snr < hi)
        acc = np.mean(best["class"][sel] == tc[sel])
        print(f"class accuracy, {lo} <= S/N_g < {hi}: {acc:.4f} ({sel.sum()} spectra)")
    dz = np.abs(best["z"] - tz) / (1 + tz)
    for cls in ("GALAXY", "QSO"):
        sel = real & (snr >= 10) & (tc == cls) & (best["class"] == cls)
        if sel.any():
            print(f"{cls}: |dz|/(1+z) < 0.001 for {np.mean(dz[sel] < 1e-3):.4f} of {sel.sum()} "
                  f"correct-class spectra at S/N_g >= 10 (median {np.median(dz[sel]):.2e})")
    sel = real & (snr >= 20) & (tc == "STAR") & (best["class"] == "STAR")
    dv = (best["z"][sel] - tz[sel]) * C_KMS
    med = np.median(dv)
    print(f"stars S/N_g >= 20: RV bias {med:+.2f} km/s, robust scatter "
          f"{1.4826 * np.median(np.abs(dv - med)):.2f} km/s ({sel.sum()} stars)")
    tsub = truth["subclass"].to_numpy()
    sel = real & (snr >= 10) & (tc == "STAR") & (best["class"] == "STAR")
    same = [spectral_letter(a) == spectral_letter(b) for a, b in zip(best["subclass"][sel],
                                                                      tsub[sel], strict=True)]
    print(f"stars S/N_g >= 10: same spectral letter as truth {np.mean(same):.4f}")


def real_lamost(engine) -> None:
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
    best = fit_records(recs, engine)
    lc = np.array([(r.lasp_class or "").upper() for r in recs])
    known = (lc != "UNKNOWN") & (lc != "")
    agree = best["class"][known] == lc[known]
    print(f"\n== real LAMOST: {len(recs)} spectra ({known.sum()} with a LAMOST class)")
    print(f"class agreement with LAMOST: {agree.mean():.4f} ({agree.sum()}/{known.sum()})")
    stars = known & (lc == "STAR") & (best["class"] == "STAR")
    letters = [spectral_letter(a) == spectral_letter(r.lasp_subclass)
               for a, r in zip(best["subclass"][stars], np.array(recs, dtype=object)[stars],
                               strict=True)]
    print(f"same spectral letter as LAMOST: {np.mean(letters):.4f} ({sum(letters)}/{len(letters)})")
    lz = np.array([np.nan if r.lasp_z is None else r.lasp_z for r in recs])
    dv = (best["z"] - lz)[stars] * C_KMS
    dv = dv[np.isfinite(dv)]
    print(f"stars: median |dv| vs LAMOST Z {np.median(np.abs(dv)):.2f} km/s, median dv "
          f"{np.median(dv):+.2f} km/s ({dv.size} stars)")


def real_sdss(engine) -> None:
    files = sorted((SHARED / "sdss").rglob("spec-*.fits"))
    if not files:
        print(f"\n== real SDSS: {SHARED / 'sdss'} absent, not measured")
        return
    recs = [read_spectrum(f) for f in files]
    best = fit_records(recs, engine)
    print(f"\n== real SDSS: {len(recs)} spectra")
    for r, c, z in zip(recs, best["class"], best["z"], strict=True):
        dz = abs(z - (r.lasp_z or 0.0))
        ok = c == r.lasp_class and dz <= 1e-3
        print(f"{r.specid}: SDSS {r.lasp_class} z={r.lasp_z:.5f} | lamostdb {c} z={z:.5f} "
              f"|dz|={dz:.5f} {'OK' if ok else 'DIFFERENT'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--continuum", help="continuum vectors file (default: shipped)")
    ap.add_argument("--skip-sim", action="store_true")
    args = ap.parse_args()
    engine = get_engine(args.continuum)
    print(f"engine {engine.version}; star continuum: {', '.join(engine.basis.names)} "
          f"({engine.basis.source})")
    if not args.skip_sim:
        simulated(args.n, args.seed, engine)
    real_lamost(engine)
    real_sdss(engine)


if __name__ == "__main__":
    main()
