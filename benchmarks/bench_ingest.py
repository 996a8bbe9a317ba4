"""Ingest throughput, memory and storage size on a simulated night.

Usage::

    python benchmarks/bench_ingest.py [--n 20000] [--repeats 3] [--night DIR]

Prints, for an end-to-end ``lamostdb ingest`` of a simulated night (FITS files on disk,
both DR2-8 and DR9 layouts) into a fresh catalogue with all cores:

- spectra/s and MB/s of FITS read (median over repeats),
- peak RSS of the main process and of the largest worker,
- Parquet bytes / FITS bytes, after checking a sample of rows is bit-identical,
- peak RSS for a night 1/4 the size, to show it does not grow with the night.

Each ingest runs in a fresh subprocess so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
from lamostdb.ingest.stage import ingest
from lamostdb.catalog.store import Catalog
cat = Catalog.create(sys.argv[1])
t0 = time.perf_counter()
rep = ingest(cat, sys.argv[2:], progress=False)
wall = time.perf_counter() - t0
cat.close()
print(json.dumps({"wall_s": wall, "n": rep.n_ingested, "bytes": rep.bytes_read,
                  "rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_child_mb": rep.peak_worker_rss_mb}))
"""


def run_ingest(catalog: Path, night: Path) -> dict[str, float]:
    if catalog.exists():
        shutil.rmtree(catalog)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(catalog), str(night)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def dir_bytes(path: Path, suffix: str) -> int:
    return sum(p.stat().st_size for p in path.rglob(f"*{suffix}") if p.is_file())


def check_lossless(catalog: Path, night: Path, n_sample: int = 300) -> int:
    import numpy as np

    import lamostdb
    from lamostdb.catalog.store import row_to_record
    from lamostdb.io import read_spectrum

    files = sorted(night.rglob("*.fits"))
    rng = np.random.default_rng(0)
    sample = [
        files[i] for i in rng.choice(len(files), size=min(n_sample, len(files)), replace=False)
    ]
    with lamostdb.open(catalog) as cat:
        for f in sample:
            want = read_spectrum(f)
            tbl = cat.con.sql(
                "SELECT * FROM spectra WHERE specid = $s", params={"s": want.specid}
            ).to_arrow_table()
            got = row_to_record(tbl)
            for name in ("flux", "ivar", "andmask", "ormask"):
                if getattr(want, name).tobytes() != getattr(got, name).tobytes():
                    raise SystemExit(f"NOT LOSSLESS: {f} {name}")
            if want.wave_angstrom().tobytes() != got.wave_angstrom().tobytes():
                raise SystemExit(f"NOT LOSSLESS: {f} wavelength")
    return len(sample)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--night", type=Path, help="reuse (or create) the simulated night here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    from lamostdb.sim import simulate_night

    work = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    night = args.night or work / "night"
    small = work / "night_small"
    try:
        t0 = time.perf_counter()
        if not (night / "truth.parquet").exists():
            simulate_night(night, n=args.n, seed=7)
        simulate_night(small, n=max(args.n // 4, 1000), seed=8)
        print(f"simulated nights in {time.perf_counter() - t0:.1f} s")
        fits_bytes = dir_bytes(night / "spectra", ".fits")
        n_files = len(list((night / "spectra").rglob("*.fits")))
        print(f"night: {n_files} FITS files, {fits_bytes / 1e6:.1f} MB; cores: {os.cpu_count()}")

        runs = [run_ingest(work / "cat", night) for _ in range(args.repeats)]
        walls = [r["wall_s"] for r in runs]
        med = statistics.median(walls)
        rate = n_files / med
        print(f"ingest wall time per repeat (s): {', '.join(f'{w:.2f}' for w in walls)}")
        print(
            f"median: {rate:,.0f} spectra/s, {fits_bytes / 1e6 / med:,.0f} MB/s of FITS "
            "(end to end: discovery, read, checksum, Parquet write, commit)"
        )
        parquet_bytes = dir_bytes(work / "cat" / "spectra" / "dataset", ".parquet")
        checked = check_lossless(work / "cat", night / "spectra")
        print(
            f"storage: Parquet {parquet_bytes / 1e6:.1f} MB / FITS {fits_bytes / 1e6:.1f} MB "
            f"= {parquet_bytes / fits_bytes:.3f} (lossless: {checked} random spectra "
            "bit-identical)"
        )
        big = runs[-1]
        sm = run_ingest(work / "cat_small", small)
        n_small = len(list((small / "spectra").rglob("*.fits")))
        print(
            f"peak RSS, {n_files} spectra: main {big['rss_self_mb']:.0f} MB, largest worker "
            f"{big['rss_child_mb']:.0f} MB"
        )
        print(
            f"peak RSS, {n_small} spectra: main {sm['rss_self_mb']:.0f} MB, largest worker "
            f"{sm['rss_child_mb']:.0f} MB"
        )
        print(
            f"RSS ratio (big/small night): main {big['rss_self_mb'] / sm['rss_self_mb']:.2f}, "
            f"worker {big['rss_child_mb'] / sm['rss_child_mb']:.2f} for "
            f"{n_files / n_small:.1f}x the spectra"
        )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
