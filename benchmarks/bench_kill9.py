"""kill -9 of ``lamostdb nightly`` at random moments: same tables, no worker left, no stray file.

Each trial runs ``lamostdb nightly`` on a fresh catalogue with several workers, sends
SIGKILL to the nightly process only (its workers are its own business) after a random
delay, reruns the same command to completion, waits, and then checks that

- no process of the killed run is still running,
- ``_staging`` holds no file,
- every table holds what an uninterrupted run wrote (run ids and times aside).

Prints one line per trial and a summary; exit status 1 if any trial failed.

    python benchmarks/bench_kill9.py --trials 20 --n 80 --workers 2
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

import lamostdb
from lamostdb.sim import simulate_night

#: Columns that name a run or a time: excluded from the comparison.
RUN_COLUMNS = {
    "ingest_run",
    "run_id",
    "xmatch_run_id",
    "superseded_by_run",
    "ingested_at",
    "quarantined_at",
    "checked_at",
}
TABLES = (
    "spectra_history",
    "spectra",
    "quarantine",
    "ingest_ledger",
    "ingest_paths",
    "spectrum_versions",
    "results_history",
    "results",
    "candidates_history",
    "gaia",
    "ps1",
    "xmatch_history",
    "objects_history",
    "objects",
    "uid_aliases",
    "lrs",
    "mec",
)


def snapshot(path: Path) -> dict[str, pl.DataFrame]:
    """Every table without run ids and times, in a fixed row order; plus committed runs."""
    out = {}
    with lamostdb.open(path) as cat:
        for name in TABLES:
            df = cat.sql(f"SELECT * FROM {name}")  # names from the fixed list above
            df = df.drop([c for c in df.columns if c in RUN_COLUMNS])
            keys = [
                c
                for c in df.columns
                if df.schema[c] != pl.Object and not isinstance(df.schema[c], pl.List | pl.Struct)
            ]
            out[name] = df.sort(keys)
        out["runs"] = cat.sql(
            "SELECT stage, count(*) AS n FROM runs WHERE state = 'committed' "
            "AND stage <> 'nightly' GROUP BY ALL ORDER BY stage"
        )
    return out


def running_in_group(pgid: int, parents: bool = False) -> list[int]:
    """Pids of the processes of group ``pgid`` still running (zombies aside); with
    ``parents``, only those whose parent is in the group too and is not its leader (the
    pool workers, children of the fork server)."""
    procs = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            procs[int(stat.parent.name)] = int(fields[1])
    if parents:
        return [p for p, pp in procs.items() if pp in procs and pp != pgid]
    return list(procs)


def alive(pids: list[int]) -> list[int]:
    out = []
    for p in pids:
        try:
            if Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                out.append(p)
        except OSError:
            pass
    return out


def nightly(cat: Path, night: Path, workers: int, chunk: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lamostdb.cli",
        "nightly",
        str(cat),
        str(night),
        "--workers",
        str(workers),
        "--chunk-size",
        str(chunk),
        "--refcat-from-night",
        "--quiet",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--n", type=int, default=80, help="spectra in the night")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk-size", type=int, default=5)
    ap.add_argument("--wait", type=float, default=3.0, help="seconds after the rerun")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", help="work folder (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_kill9-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMOSTDB_FAULT")}
    night = work / "night-00005"
    if not night.exists():
        simulate_night(night, n=args.n, seed=5)
        (night / "spectra" / "spec-damaged.fits").write_bytes(b"not a fits file" * 10)
    ref_cat = work / "reference"
    shutil.rmtree(ref_cat, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run(
        nightly(ref_cat, night, args.workers, args.chunk_size),
        env=env,
        check=True,
        capture_output=True,
    )
    t_ref = time.perf_counter() - t0
    reference = snapshot(ref_cat)
    print(
        f"reference: {args.n} spectra + 1 damaged file, {args.workers} workers, "
        f"{t_ref:.1f} s uninterrupted"
    )
    rng = random.Random(args.seed)
    failures = 0
    gone: list[float] = []
    worker_gone: list[float] = []
    for trial in range(args.trials):
        cat = work / f"trial{trial:02d}"
        shutil.rmtree(cat, ignore_errors=True)
        delay = rng.uniform(0.5, t_ref)
        proc = subprocess.Popen(
            nightly(cat, night, args.workers, args.chunk_size),
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        workers = running_in_group(proc.pid, parents=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t_kill = time.perf_counter()
        # the rerun starts at once, as an operator's retry would, while we time the old run's
        # processes (the rerun has a new session, so it is not counted)
        rerun_proc = subprocess.Popen(
            nightly(cat, night, args.workers, args.chunk_size),
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        workers_ms = None
        while time.perf_counter() - t_kill < 30:
            if workers_ms is None and not alive(workers):
                workers_ms = (time.perf_counter() - t_kill) * 1e3
            if not running_in_group(proc.pid):
                break
            time.sleep(0.005)
        gone_ms = (time.perf_counter() - t_kill) * 1e3
        if workers:
            worker_gone.append(workers_ms or gone_ms)
        _, err = rerun_proc.communicate()
        rerun = subprocess.CompletedProcess(rerun_proc.args, rerun_proc.returncode, "", err)
        t_rerun = time.perf_counter() - t_kill
        time.sleep(args.wait)
        left = running_in_group(proc.pid)
        stray = [p for p in (cat / "_staging").rglob("*") if p.is_file()]
        got = snapshot(cat) if rerun.returncode == 0 else {}
        differ = [k for k, v in reference.items() if k not in got or not got[k].equals(v)]
        ok = rerun.returncode == 0 and not left and not stray and not differ
        failures += not ok
        gone.append(gone_ms)
        wtext = (
            f"{len(workers)} workers gone {workers_ms or gone_ms:6.1f} ms after, "
            if workers
            else "no worker running, "
        )
        print(
            f"trial {trial:2d}: kill at {delay:5.2f} s, {wtext}all its processes (fork "
            f"server too) {gone_ms:6.1f} ms; left after the rerun + {args.wait:.0f} s "
            f"{len(left)}; rerun "
            f"{t_rerun:5.1f} s rc {rerun.returncode}; stray files {len(stray)}; tables "
            f"{'identical' if not differ else 'DIFFER: ' + ', '.join(differ)}"
            + ("" if ok else "  <-- FAILED")
        )
        shutil.rmtree(cat, ignore_errors=True)
    wg = sorted(worker_gone) or [float("nan")]
    print(
        f"{args.trials - failures} of {args.trials} trials passed; in the {len(worker_gone)} "
        f"trials killed while workers ran, they were gone within {wg[-1]:.0f} ms (median "
        f"{wg[len(wg) // 2]:.0f} ms); all processes of the killed run within "
        f"{max(gone):.0f} ms (median {sorted(gone)[len(gone) // 2]:.0f} ms)"
    )
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
