"""Peak memory of ``xmatch`` against an attached HATS Gaia of 10^6 and 10^7 rows.

Usage::

    nice python benchmarks/bench_xmatch_hats.py [--sizes 1000000 10000000] [--spectra 1000]
        [--cache /tmp/lamostdb-bench-hats] [--refcat-rows 1000000 3000000 ...]

Builds (once, cached under ``--cache``) a simulated night of ``--spectra`` spectra in a
catalogue, and for each size a Gaia-like HATS catalogue with ``hats-import`` plus its 10"
margin cache. Every size holds the same reference rows around the night's fields (the
night's own Gaia table plus uniform background at a fixed density, 10^6 rows in all); the
larger sizes add rows around other fields of the simulated survey, so the sky the spectra
see is the same and only the catalogue grows. Each size is then attached
(``refcat attach``) and matched (``xmatch --rerun``, in-process) in a fresh child process
that prints its resident set before and its peak during the match (sampled every 5 ms
from ``/proc``): bounded memory means flat RSS from 10^6 to 10^7 rows, since only
the partitions overlapping the spectra, plus their margin, are read.

``--refcat-rows N...`` also measures ``refcat ingest`` of one Parquet file of N Gaia rows
(for each N), streamed (500 000-row batches) and read whole (one batch), each in a fresh
child.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK = 1_000_000
NEAR_ROWS = 1_000_000
MARGIN_ARCSEC = 10.0

_SAMPLER = r"""
import os, threading, time
class Sampler:
    # the largest resident set seen while running, sampled every 5 ms from /proc
    def __init__(self):
        self.peak, self.stop = 0, False
        self.t = threading.Thread(target=self.run, daemon=True)
    def rss(self):
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    def run(self):
        while not self.stop:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)
    def __enter__(self):
        self.before = self.rss()
        self.t.start()
        return self
    def __exit__(self, *exc):
        self.stop = True
        self.t.join()
"""

_CHILD = (
    _SAMPLER
    + r"""
import json, resource, sys, time
from lamostdb.catalog.store import Catalog
from lamostdb.refcat.hats import attach_hats
from lamostdb.xmatch import xmatch
cat_dir, hats = sys.argv[1], sys.argv[2]
with Catalog(cat_dir, mode="w") as cat:
    rec = attach_hats(cat, "gaia", hats)
    t0 = time.perf_counter()
    with Sampler() as s:
        rep = xmatch(cat, rerun=True, progress=False, workers=1)
    wall = time.perf_counter() - t0
print(json.dumps({"n_rows": rec.n_rows, "n_partitions": rec.n_partitions,
                  "margin": rec.margin is not None, "wall_s": round(wall, 2),
                  "base_rss_mb": round(s.before, 1), "peak_rss_mb": round(s.peak, 1),
                  "n_spectra": rep.n_todo, "n_tasks": rep.n_tasks,
                  "matched": rep.n_matched["gaia"],
                  "files_read": rep.reference_files_read["gaia"],
                  "margin_files_read": rep.margin_files_read["gaia"]}))
"""
)

_REFCAT_CHILD = (
    _SAMPLER
    + r"""
import json, sys, time
from lamostdb.catalog.store import Catalog
from lamostdb.refcat import ingest_refcat
cat_dir, path, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
cat = Catalog.create(cat_dir)
t0 = time.perf_counter()
with Sampler() as s:
    rep = ingest_refcat(cat, "gaia", [path], progress=False, batch_rows=batch)
wall = time.perf_counter() - t0
cat.close()
print(json.dumps({"batch_rows": batch, "n_added": rep.n_added, "wall_s": round(wall, 1),
                  "base_rss_mb": round(s.before, 1), "peak_rss_mb": round(s.peak, 1)}))
"""
)


def _gaia_rows(
    rng: np.random.Generator, ra0: np.ndarray, dec0: np.ndarray, n: int, first_id: int
) -> pa.Table:
    """``n`` Gaia-like rows uniform in 2.5-degree discs around the centres ``(ra0, dec0)``."""
    from lamostdb.sim.refcat import FIELD_RADIUS_DEG, offset

    k = rng.integers(0, ra0.size, n)
    r = FIELD_RADIUS_DEG * np.sqrt(rng.uniform(0, 1, n))
    th = rng.uniform(0, 2 * np.pi, n)
    ra, dec = offset(ra0[k], dec0[k], r * np.sin(th), r * np.cos(th))
    fast = rng.uniform(0, 1, n) < 0.01
    pm_scale = np.where(fast, rng.uniform(100, 500, n), 6.0)
    g = rng.uniform(12, 21, n)
    return pa.table(
        {
            "source_id": pa.array(np.arange(first_id, first_id + n), pa.int64()),
            "ra": np.mod(ra, 360.0),
            "dec": np.clip(dec, -90.0, 90.0),
            "pmra": rng.normal(0, 1, n) * pm_scale,
            "pmdec": rng.normal(0, 1, n) * pm_scale,
            "parallax": np.abs(rng.normal(1.0, 0.5, n)),
            "ref_epoch": np.full(n, 2016.0),
            "phot_g_mean_mag": g.astype(np.float32),
            "phot_bp_mean_mag": (g + 0.4).astype(np.float32),
            "phot_rp_mean_mag": (g - 0.5).astype(np.float32),
        }
    )


def _other_fields(night_fields: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres of ``n`` survey fields at least 6 degrees from every field of the night."""
    from lamostdb.sim.refcat import N_FIELDS, field_centre

    mine = np.array([field_centre(f) for f in night_fields])
    out = []
    for i in range(N_FIELDS):
        ra, dec = field_centre(i)
        d = np.degrees(
            np.arccos(
                np.clip(
                    np.sin(np.radians(dec)) * np.sin(np.radians(mine[:, 1]))
                    + np.cos(np.radians(dec))
                    * np.cos(np.radians(mine[:, 1]))
                    * np.cos(np.radians(ra - mine[:, 0])),
                    -1,
                    1,
                )
            )
        )
        if d.min() > 6.0:
            out.append((ra, dec))
        if len(out) == n:
            break
    a = np.array(out)
    return a[:, 0], a[:, 1]


def build_spectra(cache: Path, n_spectra: int) -> tuple[Path, list[int]]:
    from lamostdb.catalog.store import Catalog
    from lamostdb.ingest.stage import ingest
    from lamostdb.sim import simulate_night

    night, cat_dir = cache / f"night-{n_spectra}", cache / f"cat-{n_spectra}"
    meta = cache / f"night-{n_spectra}.json"
    if not meta.exists():
        shutil.rmtree(night, ignore_errors=True)
        shutil.rmtree(cat_dir, ignore_errors=True)
        info = simulate_night(night, n=n_spectra, seed=12)
        with Catalog.create(cat_dir) as cat:
            ingest(cat, [night / "spectra"], workers=1, progress=False)
        meta.write_text(json.dumps({"fields": info["fields"]}))
    return cat_dir, list(json.loads(meta.read_text())["fields"])


def build_rows(cache: Path, n_rows: int, night: Path, fields: list[int]) -> list[Path]:
    """Input Parquet files (10^6 rows each) of a Gaia-like catalogue of ``n_rows`` rows."""
    from lamostdb.sim.refcat import field_centre

    folder = cache / "rows"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n_rows // CHUNK):
        path = folder / f"chunk-{i:03d}.parquet"
        files.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng([7, i])
        if i == 0:  # the night's own Gaia rows plus background around its fields
            own = pq.read_table(night / "gaia.parquet")
            centres = np.array([field_centre(f) for f in fields])
            bg = _gaia_rows(rng, centres[:, 0], centres[:, 1], NEAR_ROWS - own.num_rows, 1)
            table = pa.concat_tables([own.cast(bg.schema), bg])
        else:  # elsewhere: 3 fields per chunk, never within 6 degrees of the night's
            ra0, dec0 = _other_fields(fields, 3 * (n_rows // CHUNK))
            sl = slice(3 * (i - 1), 3 * i)
            table = _gaia_rows(rng, ra0[sl], dec0[sl], CHUNK, 1 + i * CHUNK)
        pq.write_table(table, path, row_group_size=200_000)
    return files


def build_hats(cache: Path, n_rows: int, inputs: list[Path]) -> Path:
    out = cache / f"hats-{n_rows}"
    if (out / "gaia_margin" / "hats.properties").exists():
        return out / "gaia"
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.margin_cache.margin_cache_arguments import MarginCacheArguments
    from hats_import.pipeline import pipeline_with_client

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Client(
            n_workers=2,
            threads_per_worker=1,
            dashboard_address=None,
            local_directory=str(cache / "dask"),
        ) as client:
            pipeline_with_client(
                ImportArguments(
                    output_artifact_name="gaia",
                    input_file_list=[str(p) for p in inputs],
                    file_reader="parquet",
                    ra_column="ra",
                    dec_column="dec",
                    output_path=str(out),
                    pixel_threshold=150_000,
                    highest_healpix_order=8,
                    progress_bar=False,
                    tmp_dir=str(cache / "tmp"),
                ),
                client,
            )
            pipeline_with_client(
                MarginCacheArguments(
                    input_catalog_path=str(out / "gaia"),
                    output_path=str(out),
                    output_artifact_name="gaia_margin",
                    margin_threshold=MARGIN_ARCSEC,
                    progress_bar=False,
                    tmp_dir=str(cache / "tmp"),
                ),
                client,
            )
    print(f"  built {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out / "gaia"


def _child(code: str, *args: str) -> dict[str, object]:
    res = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    out: dict[str, object] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--spectra", type=int, default=1000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/lamostdb-bench-hats"))
    ap.add_argument("--refcat-rows", type=int, nargs="*", default=[])
    args = ap.parse_args()
    cache = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    cat_dir, fields = build_spectra(cache, args.spectra)
    night = cache / f"night-{args.spectra}"
    print(f"spectra: {args.spectra} in {len(fields)} fields ({cat_dir})")
    rows = []
    for n in sorted(args.sizes):
        if n % CHUNK:
            raise SystemExit(f"--sizes: multiples of {CHUNK}")
        hats = build_hats(cache, n, build_rows(cache, n, night, fields))
        rows.append(_child(_CHILD, str(cat_dir), str(hats)))
    print(
        f"\n{'gaia rows':>11} {'partitions':>10} {'files read':>10} {'margin':>6} "
        f"{'matched':>7} {'xmatch s':>8} {'RSS before MB':>13} {'peak RSS MB':>11}"
    )
    for r in rows:
        print(
            f"{r['n_rows']:>11,} {r['n_partitions']:>10} {r['files_read']:>10} "
            f"{r['margin_files_read']:>6} {r['matched']:>7} {r['wall_s']:>8} "
            f"{r['base_rss_mb']:>13} {r['peak_rss_mb']:>11}"
        )
    if args.refcat_rows:
        print(
            f"\nrefcat ingest of one Parquet file\n{'rows':>11} {'MiB':>5} {'batch rows':>12} "
            f"{'added':>10} {'wall s':>7} {'RSS before MB':>13} {'peak RSS MB':>11}"
        )
    for n_ref in args.refcat_rows:
        inputs = build_rows(cache, max(n_ref, CHUNK), night, fields)
        big = cache / f"refcat-{n_ref}.parquet"
        if not big.exists():
            with pq.ParquetWriter(big, pq.read_schema(inputs[0])) as w:
                for p in inputs[: n_ref // CHUNK]:
                    w.write_table(pq.read_table(p), row_group_size=200_000)
        for batch in (500_000, 10**12):
            shutil.rmtree(cache / "refcat-cat", ignore_errors=True)
            r = _child(_REFCAT_CHILD, str(cache / "refcat-cat"), str(big), str(batch))
            label = "whole file" if batch == 10**12 else f"{batch:,}"
            print(
                f"{n_ref:>11,} {big.stat().st_size / 2**20:>5.0f} {label:>12} "
                f"{r['n_added']:>10,} {r['wall_s']:>7} {r['base_rss_mb']:>13} "
                f"{r['peak_rss_mb']:>11}",
                flush=True,
            )
        shutil.rmtree(cache / "refcat-cat", ignore_errors=True)


if __name__ == "__main__":
    main()
