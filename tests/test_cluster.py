"""Acceptance (issue 12): a night run through a real Dask cluster gives the local tables.

A ``dask scheduler`` and two ``dask worker`` processes (one thread each, 127.0.0.1, random
ports) are started as subprocesses, as on a real cluster; the same simulated night is run
once on the local executor and once with ``--cluster tcp://...``, and every table and view
of the two catalogues is compared (run ids and times excluded). Each stage whose driver
runs its partitions on an executor (its report's ``executor`` is set in the local run too)
must have run them on the cluster, and the night's tasks must have run on both workers.
Last, a worker killed mid-task: the scheduler reruns its task on the other worker and the
executor counts the rerun.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import lamostdb
from lamostdb.cli.main import main
from lamostdb.cli.nightly_cmd import format_summary
from lamostdb.execute import open_executor
from lamostdb.pipeline import NightlyOptions, run_nightly
from lamostdb.sim import simulate_night

N_SPECTRA = 8
CHUNK = 3  # files per ingest task: several ingest tasks even on a small night
HOST = socket.gethostname()
START_S = 60.0
#: Columns that name a run or say when something happened: they differ between any two runs.
RUN_COLUMNS = {"ingest_run", "run_id", "xmatch_run_id", "superseded_by_run"}
#: Stages whose drivers run their partitions on an executor (lamostdb.execute), so on the
#: cluster with --cluster. The lead adds "xmatch", "ids" and "export" when their drivers are
#: merged (checked in a scratch merge of dask + pixel + xhats: all five ran on the cluster).
ON_CLUSTER = ("ingest", "classify", "xmatch", "ids", "export")
#: Header cards of a release that name a run or a time (CHECKSUM covers them).
RELEASE_RUN_CARDS = {"DATE", "CLASSRUN", "CHECKSUM"}
#: Bookkeeping views compared in their own way below (their rows name staged files and runs).
BOOKKEEPING = {"files", "runs", "catalog_meta"}


# --- the cluster --------------------------------------------------------------------------


@dataclass
class DaskCluster:
    address: str
    workers: set[str]  # host:pid of each worker process, as the executors name them


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process group, SIGKILL what is left after 3 s; reap them all."""
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def _wait_for(what: str, ready: object, procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    deadline = time.monotonic() + START_S
    while not ready():  # type: ignore[operator]
        dead = [p.args for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            text = "\n".join(f"--- {f.name}\n{f.read_text()[-2000:]}" for f in logs.glob("*.log"))
            raise RuntimeError(f"{what} did not start (exited: {dead}):\n{text}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """``dask scheduler`` + two ``dask worker --nthreads 1 --no-nanny`` on 127.0.0.1."""
    logs = tmp_path_factory.mktemp("dask-logs")
    sched_file = logs / "scheduler.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMOSTDB_", "DASK_"))}
    env |= {
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), env.get("PYTHONPATH", "")]
        ).rstrip(os.pathsep),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    dask = [sys.executable, "-m", "dask"]
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with open(logs / f"{name}.log", "wb") as log:
            p = subprocess.Popen(
                [*dask, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=logs,
                start_new_session=True,
            )
        procs.append(p)
        return p

    try:
        start(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
        )
        _wait_for("dask scheduler", sched_file.exists, procs, logs)
        address = json.loads(sched_file.read_text())["address"]
        workers = [
            start(
                f"worker{i}",
                [
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                    "--name",
                    f"w{i}",
                ],
            )
            for i in (1, 2)
        ]
        yield DaskCluster(address, {f"{HOST}:{p.pid}" for p in workers})
    finally:
        _stop(procs)
        assert all(p.poll() is not None for p in procs)


def where_am_i(task: tuple[str, int]) -> tuple[int, int]:
    """Wait (up to 30 s) until both workers hold a task, so that each runs one."""
    folder, x = task
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid(), x


def kill_first_runner(task: tuple[str, int]) -> tuple[int, int]:
    """Task 0 SIGKILLs the first worker that runs it (leaving its pid in ``marker``)."""
    marker, x = task
    if x == 0 and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid(), x


# --- the comparison -----------------------------------------------------------------------


def content(path: Path) -> dict[str, pl.DataFrame]:
    """Every table and view of the catalogue, run ids and times left out, rows sorted."""
    out: dict[str, pl.DataFrame] = {}
    with lamostdb.open(path) as cat:
        names = [
            n
            for (n,) in cat.con.execute(
                "SELECT table_name FROM information_schema.tables ORDER BY table_name"
            ).fetchall()
        ]
        for name in names:
            if name in BOOKKEEPING:
                continue
            df = cat.sql(f'SELECT * FROM "{name}"')  # names the catalogue itself lists
            df = df.drop([c for c in df.columns if c in RUN_COLUMNS or c.endswith("_at")])
            flat = [c for c, t in df.schema.items() if not t.is_nested()]
            out[name] = df.sort(flat)
        out["files"] = cat.sql(
            "SELECT table_name, sum(n_rows) AS n_rows FROM files GROUP BY ALL ORDER BY table_name"
        )
        out["runs"] = cat.sql(
            "SELECT stage, state, count(*) AS n FROM runs GROUP BY ALL ORDER BY ALL"
        )
        out["catalog_meta"] = cat.sql(
            "SELECT * FROM catalog_meta WHERE key <> 'created_at' ORDER BY key"
        )
    assert [p for p in (path / "_staging").rglob("*") if p.is_file()] == []
    return out


def release_content(out: Path) -> dict[str, list[tuple[dict[str, object], object]]]:
    """Every FITS file of a release: per HDU, its header cards (runs, times left out) and data."""
    from astropy.io import fits

    files: dict[str, list[tuple[dict[str, object], object]]] = {}
    for path in sorted(out.rglob("*.fits")):
        with fits.open(path) as hdus:
            files[str(path.relative_to(out))] = [
                (
                    {k: v for k, v in h.header.items() if k not in RELEASE_RUN_CARDS},
                    None
                    if h.data is None
                    else [[repr(v) for v in row] for row in h.data.tolist()]
                    if hasattr(h.data, "columns")
                    else h.data.tolist(),
                )
                for h in hdus
            ]
    return files


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cluster-night") / "night-00011"
    simulate_night(out, n=N_SPECTRA, seed=11)
    (out / "spectra" / "spec-damaged.fits").write_bytes(b"not a fits file" * 10)
    return out


@pytest.mark.slow
def test_night_on_a_dask_cluster_gives_the_local_tables(
    night: Path, tmp_path: Path, dask_cluster: DaskCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    local = run_nightly(
        tmp_path / "local",
        night,
        NightlyOptions(workers=1, chunk_size=CHUNK, refcat_from_night=True, progress=False),
    )
    reference = content(tmp_path / "local")
    assert reference["spectra"].height == N_SPECTRA and reference["quarantine"].height == 1

    # the cluster itself: both workers take tasks and are named as the executors name them
    meet = tmp_path / "meet"
    meet.mkdir()
    with open_executor(
        dask_cluster.address,
        workers=None,
        n_tasks=6,
        root=tmp_path,
        staging="_staging",
        run_id="probe",
        preload="json",
    ) as ex:
        got = dict(ex.run(where_am_i, [(str(meet), x) for x in range(6)]))
        summary = ex.summary().as_dict()
    assert sorted(x for _, x in got.values()) == list(range(6))
    assert summary["cluster"] == dask_cluster.address and summary["n_workers"] == 2
    assert set(summary["tasks_per_worker"]) == dask_cluster.workers  # type: ignore[arg-type]

    rc = main(
        [
            "nightly",
            str(tmp_path / "remote"),
            str(night),
            "--refcat-from-night",
            "--chunk-size",
            str(CHUNK),
            "--cluster",
            dask_cluster.address,
            "--quiet",
            "--json",
        ]
    )
    remote = json.loads(capsys.readouterr().out)
    assert rc == 0 and remote["cluster"] == dask_cluster.address
    got_content = content(tmp_path / "remote")
    assert set(got_content) == set(reference)
    for name, ref in reference.items():
        try:
            assert_frame_equal(got_content[name], ref, check_exact=True)
        except AssertionError as exc:
            raise AssertionError(
                f"{name} differs between the local and the Dask run: {exc}"
            ) from None

    # the stages that run partitions on an executor ran them on the cluster's workers, and
    # the night's tasks, all stages together, ran on both workers
    executors = {s["name"]: s["executor"] for s in remote["stages"]}
    on_cluster = sorted(name for name, ex in executors.items() if ex is not None)
    assert set(ON_CLUSTER) - {"export"} <= set(on_cluster), executors
    ran: set[str] = set()
    for name in on_cluster:
        executor = executors[name]
        assert executor["cluster"] == dask_cluster.address, (name, executor)
        assert executor["n_workers"] == 2 and executor["retries"] == 0, (name, executor)
        tasks = executor["tasks_per_worker"]
        assert set(tasks) <= dask_cluster.workers and sum(tasks.values()) >= 1, (name, executor)
        ran |= set(tasks)
    assert ran == dask_cluster.workers
    # the text summary names the cluster and what each worker ran
    text = format_summary(
        replace(
            local,
            cluster=dask_cluster.address,
            stages=[replace(s, executor=executors[s.name]) for s in local.stages],
        )
    )
    assert f"cluster: {dask_cluster.address}; tasks per worker:" in text
    for name in on_cluster:
        tasks = ", ".join(f"{w} {n}" for w, n in executors[name]["tasks_per_worker"].items())
        assert f"  {name}: {dask_cluster.address}: {tasks}\n" in text + "\n"
    # export: the release written through the cluster is the local one (times aside)
    from lamostdb.export import export_release

    with lamostdb.open(tmp_path / "local") as cat:
        export_release(cat, tmp_path / "release-local", release="t", progress=False)
    with lamostdb.open(tmp_path / "remote") as cat:
        rep = export_release(
            cat,
            tmp_path / "release-remote",
            release="t",
            progress=False,
            cluster=dask_cluster.address,
        )
    expected = release_content(tmp_path / "release-local")
    assert len(expected) == N_SPECTRA + 2  # lrs.fits, mec.fits and one file per spectrum
    assert release_content(tmp_path / "release-remote") == expected
    if rep.executor is not None or "export" in ON_CLUSTER:
        assert rep.executor is not None and rep.executor["cluster"] == dask_cluster.address
        assert set(rep.executor["tasks_per_worker"]) <= dask_cluster.workers
        on_cluster.append("export")
    print(f"stages run on the Dask cluster: {on_cluster}", file=sys.stderr)
    # the local run used no cluster
    assert all(
        s.executor is None or not s.executor["cluster"].startswith("tcp://") for s in local.stages
    )

    # last (it leaves one worker): a worker killed mid-task; the scheduler reruns the task
    # on the other worker by itself, and the executor counts that rerun
    marker = tmp_path / "killed"
    with open_executor(
        dask_cluster.address,
        workers=None,
        n_tasks=3,
        root=tmp_path,
        staging="_staging",
        run_id="kill",
        preload="json",
    ) as ex:
        got = dict(ex.run(kill_first_runner, [(str(marker), x) for x in range(3)]))
        assert ex.summary().retries >= 1
    killed = f"{HOST}:{marker.read_text()}"
    assert killed in dask_cluster.workers
    assert {x for _, x in got.values()} == {0, 1, 2}
    assert f"{HOST}:{got[(str(marker), 0)][0]}" in dask_cluster.workers - {killed}
