"""A measured plan for a full release: 2x10^7 spectra against 1.8x10^9 Gaia sources.

Usage::

    nice python benchmarks/plan_full_release.py [--n 1000] [--quick] [--json FILE]

Measures on this machine, on a simulated night of ``--n`` spectra (:mod:`lamostdb.sim`):

- spectra/s per core of every stage (ingest, classify, xmatch, ids, export) run with one
  worker in this process (n / CPU seconds, so that other users of the machine do not
  count), the commit excluded; refcat ingest rows/s; the pixel join's Gaia rows/s per core
  (one DuckDB thread) on mock references at the real Gaia density;
- bytes per spectrum per table (spectra, results, candidates, xmatch, objects) and per
  Gaia row, from the committed Parquet file sizes (size = per file + per row x rows);
- the density of the real Gaia DR3 cone in ``data/catalogs/astroquery_testdata``, next to
  the all-sky mean of 1.8e9 sources;
- the driver: every ``commit_run`` of the run is timed, with its HATS ``_metadata``
  rewrites and schema checks, then commits of 10-400 files (per run, per file); the
  metadata rewrite again on 100-3200 files; and the ledger pass per input file (an ingest
  of the same night again, which has nothing new);
- the scaling: classify and xmatch with 1 and with 2 local workers in the same run (xmatch
  where its driver takes ``workers=``), and the pixel join on 1 and 2 DuckDB threads.

Then prints the projected wall time and storage of the release on N = 1, 8, 64, 512
workers with the model of ``plan_model.py`` (printed too), and the first bottleneck at
each N with the design's answer to it. ``--json FILE`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from plan_model import ANSWERS, SKY_DEG2, Assumptions, Measured, format_table, projection
from simcatalog import (
    Catalog,
    accepts,
    assign_ids,
    classify,
    crossmatch_pairs,
    export_release,
    ingest,
    ingest_refcat,
    simulate_night,
    xmatch,
)
from threadpoolctl import threadpool_limits

import lamostdb.catalog.commit as commit_module
from lamostdb.catalog.hats import TableFile, leaf_relpath, write_table_metadata
from lamostdb.catalog.schema import load_schema
from lamostdb.sim.xmatch_sky import SPECIAL_FIELDS, mock_sky

TABLES = ("spectra", "results", "candidates", "xmatch", "objects", "gaia")
CONE = "gaia__cone_search.json"
HERE = Path(__file__).resolve().parent
#: the project's shared data folder beside the checkout, else the copy in the tests
CONE_PLACES = (
    HERE.parents[1] / "shared/data/catalogs/astroquery_testdata" / CONE,
    HERE.parent / "tests/data/catalogs/astroquery" / CONE,
)


@dataclass
class StageRun:
    """One stage call: wall seconds, and the commits it made."""

    stage: str
    workers: int | None  # None: the stage takes no workers= (ran as it does by default)
    n: int
    wall_s: float
    cpu_s: float  # CPU seconds of this process (all its threads; not of worker processes)
    commit_s: float
    commit_cpu_s: float
    metadata_s: float
    n_files: int

    @property
    def per_core(self) -> float:
        """Spectra (or rows) per CPU second of this process, commit excluded: the rate of
        one core when the stage ran in this process (one worker), whatever the load."""
        return self.n / max(self.cpu_s - self.commit_cpu_s, 1e-9)

    @property
    def per_wall(self) -> float:
        """Spectra (or rows) per wall second, commit excluded."""
        return self.n / max(self.wall_s - self.commit_s, 1e-9)


class DriverTimer:
    """Times every ``commit_run`` and HATS metadata rewrite in this process.

    Instrumentation only: the stage modules' ``commit_run`` and
    ``Catalog.write_hats_metadata`` are wrapped, their behaviour unchanged.
    """

    def __init__(self) -> None:
        # stage, files, seconds, of which metadata rewrite and schema check, CPU seconds
        self.commits: list[tuple[str, int, float, float, float]] = []
        self.metadata: list[tuple[int, float]] = []  # files listed, s
        self.schema_checks: list[tuple[int, float]] = []  # files listed, s
        self._meta_in_commit = 0.0

    def install(self) -> None:
        original = commit_module.commit_run

        def timed_commit(
            cat: Catalog, run_id: str, stage: str, files: Any, *args: Any, **kwargs: Any
        ) -> None:
            self._meta_in_commit = 0.0
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                original(cat, run_id, stage, files, *args, **kwargs)
            finally:
                self.commits.append(
                    (
                        stage,
                        len(files),
                        time.perf_counter() - t0,
                        self._meta_in_commit,
                        time.process_time() - c0,
                    )
                )

        for module in list(sys.modules.values()):
            if vars(module).get("commit_run") is original:
                module.commit_run = timed_commit  # type: ignore[attr-defined]
        upgrade = commit_module.upgrade_table_files

        def timed_upgrade(cat: Catalog, table: str) -> int:
            n = len(cat.table_files(table))
            t0 = time.perf_counter()
            out = upgrade(cat, table)
            dt = time.perf_counter() - t0
            self.schema_checks.append((n, dt))
            self._meta_in_commit += dt
            return out

        commit_module.upgrade_table_files = timed_upgrade  # type: ignore[attr-defined]
        write_meta = Catalog.write_hats_metadata

        def timed_meta(cat: Catalog, table: str) -> None:
            n = len(cat.table_files(table))
            t0 = time.perf_counter()
            write_meta(cat, table)
            dt = time.perf_counter() - t0
            self.metadata.append((n, dt))
            self._meta_in_commit += dt

        Catalog.write_hats_metadata = timed_meta  # type: ignore[method-assign]

    def run(
        self,
        stage: str,
        fn: Callable[..., Any],
        n_of: Callable[[Any], int],
        cat: Catalog,
        workers: int | None = None,
        **kwargs: Any,
    ) -> tuple[StageRun, Any]:
        """Call stage ``fn(cat, **kwargs)`` (with ``workers`` when it takes it), timed; the
        run and the stage's report."""
        if workers is not None and accepts(fn, "workers"):
            kwargs["workers"] = workers
        else:
            workers = None
        k = len(self.commits)
        # one BLAS thread in this process, as in a worker (classify with one worker would
        # otherwise run its BLAS on every core, and spinning threads count as CPU time)
        with threadpool_limits(limits=1 if workers in (1, None) else None):
            t0, c0 = time.perf_counter(), time.process_time()
            report = fn(cat, progress=False, **kwargs)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        mine = self.commits[k:]
        return StageRun(
            stage,
            workers,
            n_of(report),
            wall,
            cpu,
            sum(c[2] for c in mine),
            sum(c[4] for c in mine),
            sum(c[3] for c in mine),
            sum(c[1] for c in mine),
        ), report


def linear_fit(x: list[float], y: list[float]) -> tuple[float, float]:
    """``(intercept, slope)`` of ``y = a + b x`` by least squares, both clipped at 0;
    the mean ratio when ``x`` takes one value."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if np.unique(xs).size < 2:
        return 0.0, float(ys.sum() / max(xs.sum(), 1e-9))
    b, a = np.polyfit(xs, ys, 1)
    if b <= 0:
        return float(max(ys.mean(), 0.0)), 0.0
    if a < 0:
        return 0.0, float(ys.sum() / xs.sum())
    return float(a), float(b)


def table_bytes(cat: Catalog, table: str) -> dict[str, float]:
    """Bytes per row and per file of ``table`` from its committed Parquet files."""
    files = cat.table_files(table)
    sizes = [float((cat.root / f.path).stat().st_size) for f in files]
    rows = [float(f.n_rows) for f in files]
    per_file, per_row = linear_fit(rows, sizes)
    return {
        "files": len(files),
        "rows": sum(rows),
        "bytes": sum(sizes),
        "per_row": per_row,
        "per_file": per_file,
        "as_stored_per_row": sum(sizes) / max(sum(rows), 1.0),
    }


def metadata_cost(
    source: Path, n_rows: int, sizes: tuple[int, ...], work: Path
) -> list[tuple[int, float]]:
    """Seconds of one ``spectra`` metadata rewrite listing F files (hard links of one
    committed file), best of two, for each F in ``sizes``."""
    schema = load_schema("spectra")
    out = []
    for n_files in sizes:
        root = work / f"meta-{n_files}"
        order = max(0, math.ceil(math.log(n_files / 12, 4))) if n_files > 12 else 0
        files = []
        for i in range(n_files):
            rel = f"{leaf_relpath('spectra', order, i)}/part.parquet"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(source, root / rel)
            files.append(TableFile(rel, order, i, n_rows))
        best = math.inf
        for _ in range(2):
            t0 = time.perf_counter()
            write_table_metadata(
                root,
                "spectra",
                files,
                schema.arrow_schema(),
                ra_column=schema.ra_column,
                dec_column=schema.dec_column,
            )
            best = min(best, time.perf_counter() - t0)
        out.append((n_files, best))
        shutil.rmtree(root)
    return out


def commit_cost(cat: Catalog, source: Path, n_rows: int, sizes: tuple[int, ...]) -> None:
    """Commit K hard links of one ``spectra`` file for each K in ``sizes`` (timed by the
    installed :class:`DriverTimer`); the catalogue's tables are meaningless afterwards."""
    for k in sizes:
        run_id = commit_module.new_run_id()
        staging = commit_module.staging_dir(cat, run_id)
        staging.mkdir(parents=True)
        files = []
        for i in range(k):
            (staging / f"{i}.parquet").hardlink_to(source)
            npix = (7 * i) % 3072
            files.append(
                commit_module.StagedFile(
                    "spectra",
                    str((staging / f"{i}.parquet").relative_to(cat.root)),
                    f"{leaf_relpath('spectra', 4, npix)}/plan-{run_id}-{i}.parquet",
                    4,
                    npix,
                    n_rows,
                    source.stat().st_size,
                )
            )
        commit_module.commit_run(cat, run_id, "plan", files, lambda: None, {})


def cone_density(path: Path) -> dict[str, float]:
    """Sources per square degree of a Gaia archive cone (TOP K rows by distance):
    ``(K - 1) / (pi r_K^2)`` with ``r_K`` the largest distance returned."""
    from astropy.coordinates import SkyCoord

    doc = json.loads(path.read_text())
    names = [c["name"] for c in doc["metadata"]]
    rows = doc["data"]
    dist = np.array([r[names.index("dist")] for r in rows], float)
    ra = np.array([r[names.index("ra")] for r in rows], float)
    dec = np.array([r[names.index("dec")] for r in rows], float)
    radius = float(dist.max())
    b = SkyCoord(ra.mean(), dec.mean(), unit="deg").galactic.b.deg
    return {
        "k": len(rows),
        "radius_deg": radius,
        "ra": float(ra.mean()),
        "dec": float(dec.mean()),
        "gal_b": float(b),
        "per_deg2": (len(rows) - 1) / (math.pi * radius**2),
    }


def join_rate(n_left: int, n_right: int, density: float, work: Path) -> dict[str, float]:
    """Reference rows/s of the pixel join, references scanned from Parquet, at ``density``
    sources per square degree, on one and on two DuckDB threads (best of two each)."""
    import duckdb

    n_fields = max(len(SPECIAL_FIELDS), n_right // 40_000)
    radius = math.sqrt(n_right / n_fields / (math.pi * density))
    left, right = mock_sky(n_left, n_right, seed=5, n_fields=n_fields, field_radius_deg=radius)
    left = left.select(["id", "ra", "dec", "_healpix_29"])
    pq.write_table(right.select(["id", "ra", "dec", "_healpix_29"]), work / "right.parquet")
    out: dict[str, float] = {"n_left": n_left, "n_right": n_right}
    for threads in (1, 2):
        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        best = math.inf
        for _ in range(2):
            ref = con.read_parquet(str(work / "right.parquet"))
            t0 = time.perf_counter()
            pairs = crossmatch_pairs(con, left, ref, radius_arcsec=3.0).num_rows
            best = min(best, time.perf_counter() - t0)
        con.close()
        out[f"seconds_{threads}"], out["pairs"] = best, pairs
    out["rows_per_s"] = n_right / out["seconds_1"]
    out["speedup_2"] = out["seconds_1"] / out["seconds_2"]
    return out


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores visible, load {os.getloadavg()[0]:.1f}"


def measure(args: argparse.Namespace, work: Path, timer: DriverTimer) -> dict[str, Any]:
    """Run every stage on a simulated night and return the raw figures."""
    night = work / "night"
    t0 = time.perf_counter()
    sim = simulate_night(night, n=args.n, seed=args.seed)
    print(
        f"simulated {args.n} spectra on {len(sim['fields'])} plate(s) in "
        f"{time.perf_counter() - t0:.1f} s (not timed below)",
        flush=True,
    )
    a, b = work / "a", work / "b"
    spectra = [night / "spectra"]
    runs: dict[str, StageRun] = {}
    with Catalog.create(a) as cat:
        runs["ingest"], rep = timer.run(
            "ingest", ingest, lambda r: r.n_ingested, cat, workers=1, inputs=spectra
        )
        fits_bytes = rep.bytes_read / max(rep.n_ingested, 1)
        runs["ledger"], _ = timer.run(
            "ledger", ingest, lambda r: r.n_inputs, cat, workers=1, inputs=spectra
        )
    shutil.copytree(a, b)  # ingested, not classified: the 2-worker runs start from here
    with Catalog(a, mode="w") as cat:
        runs["classify"], _ = timer.run("classify", classify, lambda r: r.n_fitted, cat, workers=1)
        runs["refcat"], _ = timer.run(
            "refcat",
            ingest_refcat,
            lambda r: r.n_added,
            cat,
            kind="gaia",
            files=[night / "gaia.parquet"],
        )
        ingest_refcat(cat, kind="ps1", files=[night / "ps1.parquet"], progress=False)
        runs["xmatch"], _ = timer.run("xmatch", xmatch, lambda r: r.n_todo, cat, workers=1)
        runs["ids"], _ = timer.run("ids", assign_ids, lambda r: r.n_spectra, cat, workers=1)
        tables = {t: table_bytes(cat, t) for t in TABLES}
        order = cat.partition_order
        biggest = max(cat.table_files("spectra"), key=lambda f: f.n_rows)
        source, source_rows = cat.root / biggest.path, biggest.n_rows
    with Catalog(a) as cat:
        runs["export"], rep = timer.run(
            "export",
            export_release,
            lambda r: r.n_spectra,
            cat,
            workers=1,
            out=work / "release",
            release="plan",
        )
        export_bytes = rep.nbytes / max(rep.n_spectra, 1)
    with Catalog(a, mode="w") as cat:
        commit_cost(cat, source, source_rows, (2, 16) if args.quick else (10, 100, 400))
    with Catalog(b, mode="w") as cat:
        runs["classify2"], _ = timer.run("classify", classify, lambda r: r.n_fitted, cat, workers=2)
        ingest_refcat(cat, kind="gaia", files=[night / "gaia.parquet"], progress=False)
        ingest_refcat(cat, kind="ps1", files=[night / "ps1.parquet"], progress=False)
        runs["xmatch2"], _ = timer.run("xmatch", xmatch, lambda r: r.n_todo, cat, workers=2)
    print(f"stages done; load average {os.getloadavg()[0]:.1f}", flush=True)
    meta_sizes = (10, 40) if args.quick else (100, 400, 1600, 3200)
    meta = metadata_cost(source, source_rows, meta_sizes, work)
    cone = cone_density(args.cone)
    n_right = 20_000 if args.quick else 1_000_000
    join = join_rate(n_right // 50, n_right, cone["per_deg2"], work)
    return {
        "n": args.n,
        "plates": len(sim["fields"]),
        "partition_order": order,
        "runs": runs,
        "tables": tables,
        "fits_bytes": fits_bytes,
        "export_bytes": export_bytes,
        "metadata": meta,
        "cone": cone,
        "join": join,
        "commits": timer.commits,
        "metadata_in_commits": timer.metadata,
        "schema_checks": timer.schema_checks,
    }


def to_measured(raw: dict[str, Any]) -> Measured:
    """The model's inputs from the raw figures (fits of the driver costs)."""
    runs, tables = raw["runs"], raw["tables"]
    commit_a, commit_b = linear_fit(
        [c[1] for c in raw["commits"]], [c[2] - c[3] for c in raw["commits"]]
    )
    meta_a, meta_b = linear_fit([m[0] for m in raw["metadata"]], [m[1] for m in raw["metadata"]])
    schema_a, schema_b = linear_fit(
        [m[0] for m in raw["schema_checks"]], [m[1] for m in raw["schema_checks"]]
    )
    ledger = runs["ledger"]
    return Measured(
        rate={s: runs[s].per_core for s in ("ingest", "classify", "xmatch", "ids", "export")},
        join_rows_per_s=raw["join"]["rows_per_s"],
        refcat_rows_per_s=runs["refcat"].per_core,
        bytes_per_row={t: v["per_row"] for t, v in tables.items()},
        bytes_per_file={t: v["per_file"] for t, v in tables.items()},
        files_per_spectrum={t: v["files"] / raw["n"] for t, v in tables.items()},
        files_per_plate={t: v["files"] / raw["plates"] for t, v in tables.items()},
        fits_bytes=raw["fits_bytes"],
        export_bytes=raw["export_bytes"],
        commit_per_run_s=commit_a,
        commit_per_file_s=commit_b,
        meta_per_file_s=meta_b + schema_b,
        meta_per_table_s=meta_a + schema_a,
        ledger_per_file_s=ledger.wall_s / max(ledger.n, 1),
    )


def report(raw: dict[str, Any], m: Measured, a: Assumptions) -> dict[str, Any]:
    """Print the measured inputs, the scaling, the model and the projection."""
    runs = raw["runs"]
    print(f"\nmeasured on {machine()}; simulated night of {raw['n']} spectra")
    print(
        "one worker, in this process; per core = n / CPU seconds, commit excluded "
        "(wall clock: shared machine)"
    )
    print(
        f"{'stage':<10}{'workers':>8}{'n':>7}{'wall s':>9}{'CPU s':>8}{'commit s':>10}"
        f"{'files':>7}{'per core /s':>13}"
    )
    for key in ("ingest", "classify", "refcat", "xmatch", "ids", "export"):
        r = runs[key]
        unit = "rows" if key == "refcat" else "spectra"
        print(
            f"{key:<10}{r.workers or '-':>8}{r.n:>7}{r.wall_s:>9.2f}{r.cpu_s:>8.2f}"
            f"{r.commit_s:>10.3f}{r.n_files:>7}{r.per_core:>13.1f}  {unit}/s"
        )
    j = raw["join"]
    print(
        f"pixel join, 1 DuckDB thread: {j['n_right']:,} Gaia-density rows x {j['n_left']:,} "
        f"positions in {j['seconds_1']:.2f} s: {j['rows_per_s']:,.0f} reference rows/s"
    )
    print(
        "\nbytes per spectrum (per Gaia row for gaia), from the Parquet files: "
        "size = per file + per row x rows"
    )
    for t, v in raw["tables"].items():
        print(
            f"  {t:<11}{v['per_row']:>10,.0f} B/row marginal, {v['per_file']:>8,.0f} B per "
            f"file; as stored {v['as_stored_per_row']:>9,.0f} B/row ({v['files']} files, "
            f"{v['rows']:,.0f} rows)"
        )
    print(
        f"  input FITS {m.fits_bytes:,.0f} B/spectrum; exported release "
        f"{m.export_bytes:,.0f} B/spectrum"
    )
    c = raw["cone"]
    print(
        f"\nGaia density: the real DR3 cone ({c['k']} sources within "
        f'{c["radius_deg"] * 3600:.1f}" of RA {c["ra"]:.2f}, Dec {c["dec"]:.2f}, '
        f"b = {c['gal_b']:.1f} deg) holds "
        f"{c['per_deg2']:,.0f} sources/deg^2; the all-sky mean of {a.n_reference:.2g} is "
        f"{a.n_reference / SKY_DEG2:,.0f}/deg^2"
    )
    leaf_deg2 = SKY_DEG2 / (12 * 4 ** raw["partition_order"])
    per_leaf = a.n_reference / SKY_DEG2 * leaf_deg2
    print(
        f"  an order-{raw['partition_order']} partition ({leaf_deg2:.1f} deg^2) holds "
        f"{per_leaf:.3g} Gaia rows on average ({per_leaf * m.bytes_per_row['gaia'] / 1e6:.0f}"
        f" MB at {m.bytes_per_row['gaia']:.0f} B/row): what one xmatch task reads, plus "
        "its margin"
    )
    meta_a, meta_b = linear_fit([x[0] for x in raw["metadata"]], [x[1] for x in raw["metadata"]])
    check_a, check_b = linear_fit(
        [x[0] for x in raw["schema_checks"]], [x[1] for x in raw["schema_checks"]]
    )
    big = max(raw["commits"], key=lambda c: c[1])
    print(
        f"driver, serial: commit {m.commit_per_run_s * 1e3:.0f} ms per run + "
        f"{m.commit_per_file_s * 1e3:.2f} ms per file committed (fit over "
        f"{len(raw['commits'])} commits, the largest {big[1]} files in {big[2]:.2f} s);\n"
        f"  at every commit, per file already in the table: HATS _metadata rewrite "
        f"{meta_b * 1e3:.3f} ms (+ {meta_a * 1e3:.0f} ms; "
        + ", ".join(f"{n} files {t:.3f} s" for n, t in raw["metadata"])
        + f"), schema check {check_b * 1e3:.3f} ms (+ {check_a * 1e3:.0f} ms, "
        f"{len(raw['schema_checks'])} commits up to "
        f"{max(x[0] for x in raw['schema_checks'])} files);\n"
        f"  ledger {m.ledger_per_file_s * 1e3:.2f} ms per input file (ingest of the same "
        f"{runs['ledger'].n} files again, nothing new: {runs['ledger'].wall_s:.2f} s)"
    )
    scaling: dict[str, float | None] = {}
    print("\nscaling measured on this machine, 1 vs 2 local workers (commit excluded):")
    for key in ("classify", "xmatch"):
        one, two = runs[key], runs[f"{key}2"]
        if two.workers is None:
            print(f"  {key}: not measured: {key}() takes no workers= in this version")
            scaling[key] = None
            continue
        speed = two.per_wall / one.per_wall
        scaling[key] = speed
        print(
            f"  {key}: {one.wall_s - one.commit_s:.1f} s on 1 worker, "
            f"{two.wall_s - two.commit_s:.1f} s on 2 (wall, commit excluded): speed-up "
            f"{speed:.2f} (ideal 2; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})"
        )
    scaling["pixel_join_threads"] = j["speedup_2"]
    print(
        f"  pixel join (the xmatch kernel), DuckDB threads 1 vs 2: {j['seconds_1']:.2f} vs "
        f"{j['seconds_2']:.2f} s: speed-up {j['speedup_2']:.2f}"
    )
    print(
        "\nmodel (benchmarks/plan_model.py): wall = max(compute / N, FS) + commit + "
        "metadata + ledger;\n  compute = S x sum(1 / per-core rate) + G / join rate; "
        f"FS = bytes moved / {a.fs_gb_per_s:g} GB/s (assumed, not measured);\n"
        "  commit, metadata (_metadata rewrite + schema check) and ledger are serial on the "
        "driver;\n"
        f"  nightly: {a.nights} runs of today's files (as many per spectrum or per plate of "
        f"{a.fibres_per_plate} fibres as measured),\n  every file of a table listed again "
        f"at each of its commits; compacted: one run per stage, one file per "
        f"{a.target_mb:g} MB partition"
    )
    rows = projection(m, a)
    print(
        f"\nprojection: {a.n_spectra:.2g} spectra against {a.n_reference:.2g} Gaia rows "
        f"(attached as HATS{'' if not a.gaia_ingested else ', and ingested'}); hours"
    )
    print(format_table(rows, a))
    print(
        f"storage: catalogue tables {rows[0].storage_tb:.2f} TB as written nightly, "
        f"{rows[-1].storage_tb:.2f} TB compacted; Gaia ingested would add "
        f"{a.n_reference * m.bytes_per_row['gaia'] / 1e12:.2f} TB (attached: 0); the "
        f"exported release {a.n_spectra * m.export_bytes / 1e12:.2f} TB; input FITS "
        f"{a.n_spectra * m.fits_bytes / 1e12:.2f} TB"
    )
    print("\nfirst bottleneck and the design's answer:")
    for name in dict.fromkeys(n for r in rows for n in (r.bottleneck, r.then)):
        print(f"  {name}: {ANSWERS[name]}")
    return {
        "machine": machine(),
        "measured": asdict(m),
        "assumptions": asdict(a),
        "scaling_2_workers": scaling,
        "rows": [r.as_dict() for r in rows],
        "runs": {
            k: asdict(v) | {"per_core": v.per_core, "per_wall": v.per_wall} for k, v in runs.items()
        },
        "tables": raw["tables"],
        "cone": raw["cone"],
        "join": raw["join"],
        "metadata": raw["metadata"],
        "commits": raw["commits"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="spectra in the night (default 1000)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a test runs it)")
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument(
        "--cone",
        type=Path,
        default=next((p for p in CONE_PLACES if p.exists()), CONE_PLACES[-1]),
        help="Gaia archive cone-search JSON (the density of real Gaia)",
    )
    ap.add_argument("--nights", type=int, default=Assumptions.nights)
    ap.add_argument("--fs-gb-per-s", type=float, default=Assumptions.fs_gb_per_s)
    ap.add_argument("--target-mb", type=float, default=Assumptions.target_mb)
    ap.add_argument(
        "--gaia-ingested",
        action="store_true",
        help="count Gaia ingested into the catalogue (default: attached as HATS)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.n = min(args.n, 30)
    assumptions = Assumptions(
        nights=args.nights,
        fs_gb_per_s=args.fs_gb_per_s,
        target_mb=args.target_mb,
        gaia_ingested=args.gaia_ingested,
    )
    timer = DriverTimer()
    timer.install()
    work = Path(tempfile.mkdtemp(prefix="plan-release-"))
    try:
        raw = measure(args, work, timer)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = report(raw, to_measured(raw), assumptions)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
