"""Make the shipped confidence parameters (lamostdb/templates/data/confidence.json).

Usage::

    python benchmarks/make_confidence.py [--n 3000] [--work DIR] [--out FILE]

Training sets (none of them is an acceptance set; those use seeds 5 and 6):

- simulated night, seed 21, the simulator's default distortions (tilt <= 30 %, arm <= 15 %);
- simulated night, seed 22, severe distortions (tilt <= 40 %, arm mismatch <= 30 %);
- the real LAMOST spectra of ../shared/data/spectra/lamost with their LAMOST labels (left
  out, and said so, when ../shared is absent).

Each set is simulated, ingested and classified with the current engine, then
``lamostdb calibrate-confidence`` fits f(B), f(R) and C on all of them together.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lamostdb.catalog.store import Catalog
from lamostdb.classify.stage import classify
from lamostdb.ingest.stage import ingest
from lamostdb.match.confidence import default_params_path
from lamostdb.sim import simulate_night
from lamostdb.validate.calibrate_confidence import calibrate

SHARED_LAMOST = Path(__file__).resolve().parents[2] / "shared" / "data" / "spectra" / "lamost"
TRAINING = ((21, 0.15, 0.30), (22, 0.30, 0.40))  # seed, arm mismatch max, tilt max


def build(work: Path, name: str, paths: list[Path]) -> Path:
    cat = work / name
    with Catalog.create(cat) as c:
        ingest(c, paths, progress=False)
        rep = classify(c, progress=False)
    print(
        f"{name}: {rep.n_fitted} spectra classified in {rep.elapsed_s:.0f} s "
        f"({rep.spectra_per_s:.0f} spectra/s)"
    )
    return cat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="spectra per simulated night")
    ap.add_argument("--work", help="work folder (default: a new temporary one)")
    ap.add_argument("--out", default=str(default_params_path()))
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="make_confidence_"))
    t0 = time.perf_counter()
    sets: list[tuple[str | Path, str | Path]] = []
    for seed, arm, tilt in TRAINING:
        night = work / f"night{seed}"
        simulate_night(night, n=args.n, seed=seed, arm_mismatch_max=arm, tilt_max=tilt)
        sets.append((build(work, f"cat{seed}", [night / "spectra"]), night / "truth.parquet"))
    if SHARED_LAMOST.is_dir():
        sets.append((build(work, "lamost", [SHARED_LAMOST]), "lamost"))
    else:
        print(f"{SHARED_LAMOST} absent: the real LAMOST spectra are not used")
    params = calibrate(
        sets,
        args.out,
        label="benchmarks/make_confidence.py --n "
        f"{args.n} (sim seeds {[s for s, _, _ in TRAINING]} + real LAMOST)",
    )
    print(f"{params.provenance['n_spectra']} spectra, {params.provenance['n_correct']} right")
    print("f(B) params", [round(v, 3) for v in params.blue])
    print("f(R) params", [round(v, 3) for v in params.red])
    print("C", {g: round(c, 3) for g, c in params.weight.items()})
    print(f"written to {args.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
