"""File counts and query times of a catalogue of many nights, before and after ``compact``.

Usage::

    python benchmarks/bench_compact.py [--nights 50] [--n 40] [--runs 7] [--max-rows N]
                                       [--classify] [--keep DIR]

Simulates ``--nights`` small nights of ``--n`` spectra each (with their mock Gaia / PS1
extracts) and runs ingest, refcat ingest, xmatch and ids on each in turn, as a survey's
nightly runs would (classify only with ``--classify``: it is the slow stage and compaction
does the same to ``results`` as to every other table). Then, before and after
``lamostdb compact``, it prints per table the files and leaves (and their HEALPix orders),
the median over ``--runs`` runs of: opening the catalogue and counting spectra, a cone
search (``Catalog.cone``, 1 degree), an SQL aggregate over the ``lrs`` view (every table
joined) and a per-leaf-order count from ``spectra``; and checks that ``hats.read_hats``
opens every table and that the answers are the same. The last line is the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hats

import lamostdb
from lamostdb.catalog.compact import DEFAULT_MAX_ROWS, compact
from lamostdb.catalog.store import Catalog
from lamostdb.ids import assign_ids
from lamostdb.ingest.stage import ingest
from lamostdb.refcat import ingest_refcat
from lamostdb.sim import simulate_night
from lamostdb.xmatch import xmatch

TABLES = ("spectra", "results", "candidates", "gaia", "ps1", "xmatch", "objects")
#: Float sums depend on the order rows are read in (the last bits): rounded to compare.
AGGREGATE = (
    "SELECT count(*) AS n, count(DISTINCT uid) AS n_uid, round(avg(snrg), 6) AS "
    "mean_snrg, count(gaia_source_id) AS n_gaia, round(avg(gaia_sep_arcsec), 6) AS "
    "mean_sep, sum(obsid) AS sum_obsid FROM lrs"
)


def _build(work: Path, nights: int, n: int, seed: int, with_classify: bool) -> Path:
    cat = work / "cat"
    t0 = time.perf_counter()
    with Catalog.create(cat) as c:
        for i in range(nights):
            night = work / f"night{i:03d}"
            simulate_night(night, n=n, seed=seed + i)
            ingest(c, [night / "spectra"], workers=1, progress=False)
            for kind in ("gaia", "ps1"):
                ingest_refcat(c, kind, [night / f"{kind}.parquet"], progress=False)
            if with_classify:
                from lamostdb.classify.stage import classify

                classify(c, workers=1, progress=False)
            xmatch(c, progress=False)
            assign_ids(c, progress=False)
            shutil.rmtree(night)
    print(f"built {nights} nights of {n} spectra in {time.perf_counter() - t0:.0f} s")
    return cat


def _median_s(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 4)


def _measure(cat: Path, runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with lamostdb.open(cat) as c:
        rows = c.sql(
            "SELECT table_name, count(*) AS files, count(DISTINCT (norder, npix)) AS "
            "leaves, sum(n_rows)::BIGINT AS n_rows, sum(n_bytes)::BIGINT AS n_bytes "
            "FROM files GROUP BY 1 ORDER BY 1"
        ).to_dicts()
        out["tables"] = {r.pop("table_name"): r for r in rows}
        for t, o, k in c.sql(
            "SELECT table_name, norder, count(DISTINCT npix) FROM files GROUP BY 1, 2 ORDER BY 1, 2"
        ).rows():
            out["tables"][t].setdefault("leaves_by_order", {})[int(o)] = int(k)
        ra, dec = c.sql("SELECT ra, dec FROM spectra ORDER BY specid LIMIT 1").row(0)
        answers = {
            "aggregate": c.sql(AGGREGATE).to_dicts(),
            "cone": sorted(c.cone(ra, dec, 3600.0)["specid"].to_list()),
        }
        out["cone_s"] = _median_s(lambda: c.cone(ra, dec, 3600.0), runs)
        out["aggregate_s"] = _median_s(lambda: c.sql(AGGREGATE), runs)
        out["count_s"] = _median_s(lambda: c.sql("SELECT count(*) FROM spectra_history"), runs)

    def open_and_count() -> None:
        with lamostdb.open(cat) as c2:
            c2.sql("SELECT count(*) FROM spectra")

    out["open_count_s"] = _median_s(open_and_count, runs)
    out["on_disk_parquet"] = sum(
        1 for t in TABLES if (cat / t).is_dir() for _ in (cat / t / "dataset").rglob("*.parquet")
    )
    out["hats"] = {
        t: (len(h.get_healpix_pixels()), h.catalog_info.total_rows)
        for t in TABLES
        if (cat / t / "properties").exists()
        for h in [hats.read_hats(cat / t)]
    }
    out["answers_n_cone"] = len(answers["cone"])
    return {"m": out, "answers": answers}


def _print(label: str, m: dict[str, Any]) -> None:
    print(f"-- {label}")
    for t, r in m["tables"].items():
        orders = ", ".join(f"{k}@{o}" for o, k in sorted(r["leaves_by_order"].items()))
        print(
            f"  {t:<10} {r['files']:>6} files {r['leaves']:>6} leaves ({orders}) "
            f"{r['n_rows']:>8} rows {r['n_bytes'] / 2**20:8.1f} MiB"
        )
    print(
        f"  total files {sum(r['files'] for r in m['tables'].values())} in the registry, "
        f"{m['on_disk_parquet']} Parquet files in the leaf folders"
    )
    print(
        f"  open+count {m['open_count_s'] * 1e3:8.1f} ms   cone 1 deg "
        f"{m['cone_s'] * 1e3:8.1f} ms ({m['answers_n_cone']} spectra)   aggregate over lrs "
        f"{m['aggregate_s'] * 1e3:8.1f} ms   count(*) {m['count_s'] * 1e3:8.1f} ms"
    )
    print(f"  hats.read_hats: {', '.join(f'{t} {p} pixels' for t, (p, _) in m['hats'].items())}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nights", type=int, default=50)
    ap.add_argument("--n", type=int, default=40, help="spectra per night (default 40)")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=7, help="timed runs per query (median)")
    ap.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS)
    ap.add_argument("--classify", action="store_true", help="also run classify each night")
    ap.add_argument("--keep", type=Path, help="build the catalogue here (kept) or reuse it")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-compact-"))
    try:
        if args.keep and (args.keep / "cat").exists():
            cat = args.keep / "cat"
        else:
            base = args.keep or work
            base.mkdir(parents=True, exist_ok=True)
            cat = _build(base, args.nights, args.n, args.seed, args.classify)
        before = _measure(cat, args.runs)
        _print("before compact", before["m"])
        t0 = time.perf_counter()
        with Catalog(cat, mode="w") as w:
            rep = compact(w, max_rows=args.max_rows)
        compact_s = round(time.perf_counter() - t0, 2)
        print(f"-- compact: {rep.files_before} -> {rep.files_after} files in {compact_s} s")
        after = _measure(cat, args.runs)
        _print("after compact", after["m"])
        same = before["answers"] == after["answers"]
        print(f"same answers (aggregate, cone): {same}")
        if not same:
            print(f"  before {before['answers']}\n  after  {after['answers']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "nights": args.nights,
                "n_per_night": args.n,
                "max_rows": args.max_rows,
                "compact_s": compact_s,
                "before": before["m"],
                "after": after["m"],
                "same_answers": same,
            },
            default=str,
        )
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
