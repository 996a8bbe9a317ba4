"""Executors (:mod:`lamostdb.execute`): where partition functions run.

Serial, the local process pool and a Dask ``LocalCluster`` must all give every task's
result back once, say which worker ran what, raise a task's exception in the driver, and
survive (Dask) or report (the local pool) a worker that dies mid-task.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamostdb.execute import (
    ClusterError,
    ClusterSpec,
    LocalExecutor,
    SerialExecutor,
    WorkerLost,
    open_executor,
    parse_cluster,
)
from lamostdb.execute import dask as dask_exec
from lamostdb.execute.base import Executor, worker_name

HOST = socket.gethostname()
#: Seconds a barrier task waits for the other workers before it gives up.
BARRIER_S = 30.0


# --- task functions (module level: pickled by reference into the workers) -------------


def square(x: int) -> int:
    return x * x


def barrier(task: tuple[str, int, int]) -> tuple[int, int]:
    """Record this worker, wait until ``n`` distinct workers have: every worker gets a task."""
    folder, n, x = task
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + BARRIER_S
    while len(os.listdir(folder)) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid(), x * x


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad partition {x}")
    return x


def dies_on_three(task: tuple[int, str]) -> int:
    """Task 3 ends its worker (``exit``: ``os._exit``; ``kill``: SIGKILL to itself)."""
    x, how = task
    if x == 3:
        if how == "exit":
            os._exit(9)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return x


def dies_once(task: tuple[int, str]) -> tuple[int, int]:
    """Task 0 kills the first worker that runs it (it leaves its pid in ``marker``)."""
    x, marker = task
    if x == 0 and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return os.getpid(), x * x


def always_dies(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


def workers_of(summary: dict[str, object]) -> dict[str, int]:
    tasks = summary["tasks_per_worker"]
    assert isinstance(tasks, dict)
    return tasks


# --- --cluster strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        (None, ClusterSpec("pool")),
        ("", ClusterSpec("pool")),
        ("local:1", ClusterSpec("dask-local", n_workers=1)),
        ("local:16", ClusterSpec("dask-local", n_workers=16)),
        ("tcp://10.0.0.5:8786", ClusterSpec("dask", address="tcp://10.0.0.5:8786")),
        (
            "tls://sched.example.org:8786",
            ClusterSpec("dask", address="tls://sched.example.org:8786"),
        ),
    ],
)
def test_parse_cluster_reads_the_three_forms(text: str | None, spec: ClusterSpec) -> None:
    assert parse_cluster(text) == spec


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("local:0", "after 'local:' give the number of Dask workers, e.g. local:4"),
        ("local:", "after 'local:' give the number"),
        ("local:two", "after 'local:' give the number"),
        ("local:-2", "after 'local:' give the number"),
        ("http://10.0.0.5:8786", "a scheduler address looks like tcp://HOST:PORT"),
        ("tcp://", "a scheduler address looks like tcp://HOST:PORT"),
        ("tcp://10.0.0.5", "a scheduler address looks like tcp://HOST:PORT"),
        ("10.0.0.5:8786", "use local:N (a local Dask cluster of N workers) or tcp://HOST:PORT"),
        ("4", "leave it out for the local process pool"),
    ],
)
def test_bad_cluster_strings_say_what_to_write(text: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_cluster(text)
    assert str(info.value).startswith(f"--cluster {text!r}: ")
    assert says in str(info.value)


def test_without_dask_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    for cluster in ("local:2", "tcp://127.0.0.1:8786"):
        with pytest.raises(ClusterError, match=r"pip install 'lamostdb\[dask\]'") as info:
            open_executor(
                cluster,
                workers=None,
                n_tasks=4,
                root=tmp_path,
                staging="_staging",
                run_id="r",
                preload="json",
            )
        assert "leave --cluster out" in str(info.value)
        assert isinstance(info.value.__cause__, ImportError)
    # the local pool does not need Dask
    with open_executor(
        None, workers=1, n_tasks=4, root=tmp_path, staging="_staging", run_id="r", preload="json"
    ) as ex:
        assert dict(ex.run(square, [1, 2])) == {1: 1, 2: 4}


# --- serial and local pool ----------------------------------------------------------------


def open_pool(tmp_path: Path, workers: int | None, n_tasks: int) -> Executor:
    return open_executor(
        None,
        workers=workers,
        n_tasks=n_tasks,
        root=tmp_path,
        staging="_staging",
        run_id="run1",
        preload="json",
    )


@pytest.mark.parametrize(
    ("workers", "n_tasks", "kind", "n"),
    [
        (1, 10, SerialExecutor, 1),
        (4, 1, SerialExecutor, 1),
        (2, 10, LocalExecutor, 2),
        (8, 3, LocalExecutor, 3),
    ],
)
def test_open_executor_picks_serial_or_a_pool_no_larger_than_the_work(
    tmp_path: Path, workers: int, n_tasks: int, kind: type, n: int
) -> None:
    with open_pool(tmp_path, workers, n_tasks) as ex:
        assert type(ex) is kind and ex.n_workers == n
        assert ex.address == ("serial" if n == 1 else f"local:{n}")


def test_serial_runs_in_order_here_and_counts_its_tasks(tmp_path: Path) -> None:
    with open_pool(tmp_path, 1, 5) as ex:
        assert list(ex.run(square, range(5))) == [(i, i * i) for i in range(5)]
        assert ex.summary().as_dict() == {
            "cluster": "serial",
            "n_workers": 1,
            "tasks_per_worker": {worker_name(): 5},
            "retries": 0,
        }
        with pytest.raises(ValueError, match="bad partition 3"):
            list(ex.run(fails_on_three, range(5)))


@pytest.mark.slow
def test_local_pool_spreads_tasks_over_its_workers_and_records_them(tmp_path: Path) -> None:
    meet = tmp_path / "meet"
    meet.mkdir()
    tasks = [(str(meet), 2, x) for x in range(8)]
    with open_pool(tmp_path, 2, len(tasks)) as ex:
        got = {task[2]: out for task, out in ex.run(barrier, tasks)}
        pid_dir = tmp_path / "_staging" / "run1" / "workers"
        listed = sorted(int(p.name) for p in pid_dir.iterdir())  # the workers' trace
        summary = ex.summary().as_dict()
        # a task that raises: its error is raised here, and the pool goes on
        with pytest.raises(ValueError, match="bad partition 3"):
            list(ex.run(fails_on_three, range(6)))
        assert dict(ex.run(square, range(3))) == {0: 0, 1: 1, 2: 4}
    assert {x: sq for x, (_, sq) in got.items()} == {x: x * x for x in range(8)}
    ran = Counter(f"{HOST}:{pid}" for pid, _ in got.values())
    assert len(ran) == 2 and os.getpid() not in {pid for pid, _ in got.values()}
    assert summary == {
        "cluster": "local:2",
        "n_workers": 2,
        "tasks_per_worker": dict(ran),
        "retries": 0,
    }
    assert listed == sorted({pid for pid, _ in got.values()})
    assert not (tmp_path / "_staging" / "run1").exists()  # the trace goes with the pool


@pytest.mark.slow
def test_local_pool_worker_that_dies_raises_worker_lost(tmp_path: Path) -> None:
    tasks = [(x, "exit") for x in range(6)]  # task 3: os._exit in the worker
    seen: list[int] = []
    with open_pool(tmp_path, 2, len(tasks)) as ex, pytest.raises(WorkerLost) as info:
        for (x, _), _out in ex.run(dies_on_three, tasks):
            seen.append(x)
    lost = info.value
    assert (3, "exit") in lost.unfinished and lost.task == lost.unfinished[0]
    # every task is either done or listed as unfinished, none twice
    assert sorted(seen + [x for x, _ in lost.unfinished]) == list(range(6))
    assert "a worker process died" in str(lost)


# --- Dask ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executor]:
    """A Dask LocalCluster of two single-threaded workers (``--cluster local:2``)."""
    root = tmp_path_factory.mktemp("dask-root")
    environ = dict(os.environ)
    with open_executor(
        "local:2",
        workers=None,
        n_tasks=8,
        root=root,
        staging="_staging",
        run_id="run1",
        preload="json",
    ) as ex:
        # the nannies' OMP_NUM_THREADS=1, PYTHONHASHSEED, ... stay out of the driver's
        # environment (its later subprocesses would inherit them)
        assert dict(os.environ) == environ
        yield ex
    assert dict(os.environ) == environ


@pytest.fixture()
def dask2(dask_cluster: Executor) -> Executor:
    """The cluster with both workers up (the nanny restarts a killed one in a second or two)."""
    dask_cluster._client.wait_for_workers(2, timeout=30)  # type: ignore[attr-defined]
    return dask_cluster


def scheduler_of(ex: Executor) -> str:
    return ex.address.split("(")[1].rstrip(")")


@pytest.mark.slow
def test_dask_local_cluster_spreads_tasks_over_both_workers(
    dask2: Executor, tmp_path: Path
) -> None:
    assert dask2.n_workers == 2 and dask2.address.startswith("local:2 (tcp://127.0.0.1:")
    before = Counter(workers_of(dask2.summary().as_dict()))
    tasks = [(str(tmp_path), 2, x) for x in range(8)]
    got = {task[2]: out for task, out in dask2.run(barrier, tasks)}
    assert {x: sq for x, (_, sq) in got.items()} == {x: x * x for x in range(8)}
    ran = Counter(f"{HOST}:{pid}" for pid, _ in got.values())
    assert len(ran) == 2 and os.getpid() not in {pid for pid, _ in got.values()}
    after = Counter(workers_of(dask2.summary().as_dict()))
    assert after - before == ran  # the summary counts exactly who ran what
    # a task that raises is not retried: its error comes back as it is
    with pytest.raises(ValueError, match="bad partition 3"):
        list(dask2.run(fails_on_three, range(6)))
    assert dask2.summary().retries == 0


@pytest.mark.slow
def test_dask_task_of_a_killed_worker_is_retried_on_another(
    dask2: Executor, tmp_path: Path
) -> None:
    marker = tmp_path / "killed"
    retries0 = dask2.summary().retries
    tasks = [(x, str(marker)) for x in range(6)]
    got = {task[0]: out for task, out in dask2.run(dies_once, tasks)}
    assert {x: sq for x, (_, sq) in got.items()} == {x: x * x for x in range(6)}
    killed = int(marker.read_text())
    assert got[0][0] != killed  # task 0 came back from a worker that did not die
    retries = dask2.summary().retries - retries0
    assert 1 <= retries <= 6  # task 0, and any task queued on the killed worker with it
    # the cluster is whole again (the nanny restarts the worker) and keeps working
    assert dict(dask2.run(square, range(4))) == {0: 0, 1: 1, 2: 4, 3: 9}


@pytest.mark.slow
def test_dask_task_that_kills_every_worker_raises_worker_lost(
    dask2: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dask_exec, "RETRIES", 1)
    with pytest.raises(WorkerLost, match="Dask workers died 2 times running this task") as info:
        list(dask2.run(always_dies, [7]))
    assert info.value.task == 7 and info.value.unfinished == [7]


@pytest.mark.slow
def test_dask_scheduler_address_connects_and_checks_the_folder(
    dask2: Executor, tmp_path: Path
) -> None:
    address = scheduler_of(dask2)
    with open_executor(
        address,
        workers=None,
        n_tasks=3,
        root=tmp_path,
        staging="_staging",
        run_id="r",
        preload="json",
    ) as ex:
        assert ex.address == address and ex.n_workers == 2
        assert dict(ex.run(square, range(3))) == {0: 0, 1: 1, 2: 4}
        assert sum(workers_of(ex.summary().as_dict()).values()) == 3
        assert ex.summary().retries == 0
    missing = tmp_path / "not-shared"
    with pytest.raises(ClusterError, match="do not see the catalogue folder") as info:
        open_executor(
            address,
            workers=None,
            n_tasks=3,
            root=missing,
            staging="_staging",
            run_id="r",
            preload="json",
        )
    assert str(missing) in str(info.value) and "shared filesystem" in str(info.value)


def test_no_scheduler_at_the_address_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dask_exec, "CONNECT_S", 1)
    with socket.socket() as s:  # a free port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterError, match="no Dask scheduler answers there"):
        open_executor(
            f"tcp://127.0.0.1:{port}",
            workers=None,
            n_tasks=1,
            root=tmp_path,
            staging="_staging",
            run_id="r",
            preload="json",
        )


# --- --cluster on the command line --------------------------------------------------------

#: Each subcommand with --cluster, its other arguments, and the stage function it calls.
COMMANDS = {
    "ingest": (["{cat}", "{cat}"], "lamostdb.ingest.stage", "ingest"),
    "classify": (["{cat}"], "lamostdb.classify", "classify"),
    "xmatch": (["{cat}"], "lamostdb.xmatch", "xmatch"),
    "ids": (["{cat}"], "lamostdb.ids", "assign_ids"),
    "export": (["{cat}", "{out}", "--release", "t"], "lamostdb.export", "export_release"),
    # the nightly command imports the pipeline when it runs (the parser stays light)
    "nightly": (["{cat}", "{night}"], "lamostdb.pipeline", "run_nightly"),
}


class Called(Exception):
    """Raised by a stand-in stage: the CLI got as far as calling it."""


@pytest.mark.parametrize("command", list(COMMANDS))
def test_cli_cluster_reaches_the_stage(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import importlib

    from lamostdb.catalog.store import Catalog
    from lamostdb.cli.main import main

    cat, night = tmp_path / "cat", tmp_path / "night"
    Catalog.create(cat).close()
    night.mkdir()
    (night / "spec-1.fits").write_bytes(b"")
    template, module, name = COMMANDS[command]
    argv = [command] + [a.format(cat=cat, out=tmp_path / "out", night=night) for a in template]
    seen: list[object] = []

    def stand_in(*args: object, **kwargs: object) -> None:
        options = args[2] if command == "nightly" else None
        seen.append(getattr(options, "cluster", None) if options else kwargs["cluster"])
        raise Called

    monkeypatch.setattr(importlib.import_module(module), name, stand_in)
    for cluster in ("tcp://10.1.2.3:8786", None):
        extra = [] if cluster is None else ["--cluster", cluster]
        with pytest.raises(Called):
            main([*argv, *extra, "--quiet"])
    assert seen == ["tcp://10.1.2.3:8786", None]
    # a bad string is refused while parsing, before the stage runs, with parse_cluster's words
    with pytest.raises(SystemExit) as info:
        main([*argv, "--cluster", "local:two", "--quiet"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--cluster 'local:two': after 'local:' give the number of Dask workers" in err
    assert len(seen) == 2
