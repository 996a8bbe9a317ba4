"""Export throughput and memory: ``lamostdb export`` of a simulated night.

Usage::

    python benchmarks/bench_export.py [--n 2000] [--repeats 3] [--catalog DIR] [--gzip]

Builds a catalogue (simulate a night, ingest, classify, load the mock Gaia/PS1, xmatch,
ids; or reuses ``--catalog``), then exports it, each export in a fresh subprocess so that
its peak RSS is its own, and prints:

- spectra/s and MB/s written for the whole release (tables, spectrum files, manifest) and
  for the spectrum pass alone (median over repeats),
- peak RSS of the export of every spectrum and of a quarter of them (``--where fiberid <=
  62``) from the same catalogue: memory holds one batch, so the two should be close,
- peak RSS with batch sizes 32 and 1024,
- fitsverify on the tables and 50 spectrum files, when fitsverify is installed.
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
from pathlib import Path

from simcatalog import build_catalog

_CHILD = r"""
import json, resource, sys
import lamostdb
from lamostdb.export import export_release
args = json.loads(sys.argv[1])
with lamostdb.open(args.pop("catalog")) as cat:
    rep = export_release(cat, args.pop("out"), release="bench", progress=False, **args)
print(json.dumps({"wall_s": rep.elapsed_s, "spectra_s": rep.spectra_elapsed_s,
                  "n": rep.n_spectra, "bytes": rep.nbytes, "spectra_bytes": rep.spectra_bytes,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_export(catalog: Path, out: Path, **options: object) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    arg = json.dumps({"catalog": str(catalog), "out": str(out), **options})
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, arg], check=True, capture_output=True, text=True
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def fitsverify_sample(release: Path, n: int = 50) -> str:
    if shutil.which("fitsverify") is None:
        return "fitsverify not installed: not checked"
    files = [release / "lrs.fits", release / "mec.fits"]
    files += sorted(p for p in (release / "spectra").rglob("*") if p.is_file())[:n]
    res = subprocess.run(["fitsverify", "-q", *map(str, files)], capture_output=True, text=True)
    ok = sum(line.startswith("verification OK") for line in res.stdout.splitlines())
    return f"fitsverify: {ok} of {len(files)} files with 0 errors and 0 warnings"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="spectra in the simulated night")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--catalog", type=Path, help="export this catalogue instead of building one")
    ap.add_argument("--gzip", action="store_true", help="gzip the spectrum files")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_export_"))
    try:
        catalog = args.catalog or build_catalog(work, args.n)
        opts = {"gzip": args.gzip, "batch_size": args.batch_size}
        runs = [run_export(catalog, work / "release", **opts) for _ in range(args.repeats)]
        n, mb = runs[0]["n"], runs[0]["bytes"] / 1e6
        wall = statistics.median(r["wall_s"] for r in runs)
        spec = statistics.median(r["spectra_s"] for r in runs)
        print(
            f"cores: {os.cpu_count()}; release: {n} spectra, {mb:.1f} MB "
            f"({'gzip' if args.gzip else 'plain FITS'}), batch size {args.batch_size}"
        )
        walls = ", ".join(f"{r['wall_s']:.2f}" for r in runs)
        print(f"export wall time per repeat (s): {walls}")
        print(
            f"whole release, median: {n / wall:,.0f} spectra/s, {mb / wall:,.1f} MB/s "
            "(selection, lrs + mec tables, spectrum files, manifest)"
        )
        print(
            f"spectrum files alone, median: {n / spec:,.0f} spectra/s, "
            f"{runs[0]['spectra_bytes'] / 1e6 / spec:,.1f} MB/s"
        )
        print(fitsverify_sample(work / "release"))
        quarter = run_export(catalog, work / "quarter", where="fiberid <= 62", **opts)
        big = runs[-1]
        print(
            f"peak RSS: {big['rss_mb']:.0f} MB for {n} spectra, {quarter['rss_mb']:.0f} MB "
            f"for {quarter['n']} (ratio {big['rss_mb'] / quarter['rss_mb']:.2f} for "
            f"{n / quarter['n']:.1f}x the spectra)"
        )
        for size in (32, 1024):
            r = run_export(catalog, work / "batch", gzip=args.gzip, batch_size=size)
            print(f"peak RSS with batch size {size}: {r['rss_mb']:.0f} MB")
        base = run_export(catalog, work / "tables", spectra=False)
        print(
            f"catalogue tables only (--no-spectra): {base['wall_s']:.2f} s, peak RSS "
            f"{base['rss_mb']:.0f} MB (imports and DuckDB included)"
        )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
