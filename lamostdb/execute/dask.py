"""Partition functions on a Dask cluster (``pip install 'lamostdb[dask]'``).

``local:N`` starts a ``dask.distributed.LocalCluster`` of N single-threaded worker
processes for this run; ``tcp://HOST:PORT`` connects to a running scheduler. Workers must
see the catalogue folder at the same path (a shared filesystem; checked when the executor
opens): they read its committed files and write staged Parquet under ``_staging/``; the
driver alone commits.

A task whose worker dies is run again on another worker. The scheduler of a ``local:N``
cluster gives up on a task at its first lost worker (``allowed-failures`` 0) and the
executor resubmits it, up to :data:`RETRIES` times. A running scheduler (``tcp://``) first
retries by itself (its ``allowed-failures``, 3 by default), and only when it gives up does
the executor resubmit. ``retries`` counts every rerun, read back from the scheduler (or,
when the scheduler cannot run lamostdb code, the executor's own resubmits). A task that
raises is not retried (the error is in the data, not the worker) and its exception is
raised in the driver.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from lamostdb.execute.base import ClusterError, ClusterSpec, Executor, WorkerLost, call_recorded

T = TypeVar("T")
R = TypeVar("R")

#: Times the executor resubmits a task after the scheduler gave up on it (its worker died).
RETRIES = 2
#: Seconds to wait for a scheduler to answer, and for a first worker to join it.
CONNECT_S = 20
WORKERS_S = 60
INSTALL_HINT = (
    "--cluster needs Dask: pip install 'lamostdb[dask]' (dask and distributed), "
    "or leave --cluster out to use the local process pool"
)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(INSTALL_HINT) from exc
    return distributed


def scheduler_retries(keys: list[str], dask_scheduler: Any = None) -> int:
    """On the scheduler: times the tasks ``keys`` were rescheduled after a worker died."""
    total = 0
    for key in keys:
        ts = dask_scheduler.tasks.get(key)
        if ts is not None:
            total += int(getattr(ts, "suspicious", 0))
    return total


def _restore_environ(saved: dict[str, str]) -> None:
    """Make ``os.environ`` equal to ``saved`` again."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


class DaskExecutor(Executor):
    """Runs tasks as Dask futures; see the module docstring."""

    def __init__(self, spec: ClusterSpec, *, root: Path, preload: str) -> None:
        super().__init__()
        distributed = _import_distributed()
        self._distributed = distributed
        self._stack = contextlib.ExitStack()
        self._local = spec.kind == "dask-local"
        # a LocalCluster's nannies write OMP_NUM_THREADS=1, PYTHONHASHSEED, ... into this
        # process's environment before spawning workers; every later subprocess of the
        # driver would inherit them (found when a nightly run after a Dask run got other BLAS
        # threads): the environment is put back after the start and after the close
        self._environ = dict(os.environ)
        self._stack.callback(_restore_environ, self._environ)
        try:
            self._client = self._connect(distributed, spec)
            self.n_workers = self._check_workers(Path(root))
        except BaseException:
            self._stack.close()
            raise

    def _connect(self, distributed: Any, spec: ClusterSpec) -> Any:
        if self._local:
            import dask

            n = int(spec.n_workers or 1)
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                cluster = self._stack.enter_context(
                    distributed.LocalCluster(
                        n_workers=n,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=40,
                    )
                )
            self.address = f"local:{n} ({cluster.scheduler_address})"
            client = self._stack.enter_context(distributed.Client(cluster))
            _restore_environ(self._environ)
            return client
        self.address = str(spec.address)
        try:
            return self._stack.enter_context(
                distributed.Client(spec.address, timeout=f"{CONNECT_S}s")
            )
        except OSError as exc:
            raise ClusterError(
                f"--cluster {spec.address}: no Dask scheduler answers there "
                f"({exc}); start one (`dask scheduler`) or check the address"
            ) from exc

    def _check_workers(self, root: Path) -> int:
        client = self._client
        try:
            client.wait_for_workers(1, timeout=WORKERS_S)
        except TimeoutError as exc:
            raise ClusterError(
                f"--cluster {self.address}: no worker joined the scheduler in "
                f"{WORKERS_S} s; start some (`dask worker {self.address}`)"
            ) from exc
        sees = client.run(os.path.isdir, str(root))
        blind = sorted(w for w, ok in sees.items() if not ok)
        if blind:
            raise ClusterError(
                f"--cluster {self.address}: workers {', '.join(blind)} do not see "
                f"the catalogue folder {root}; every worker needs it at the same "
                "path (a shared filesystem)"
            )
        return len(sees)

    def _run(self, fn: Callable[[T], R], tasks: list[T]) -> Iterator[tuple[T, str, R]]:
        d = self._distributed
        tag = f"lamostdb-{getattr(fn, '__name__', 'task')}-{uuid.uuid4().hex[:12]}"
        held: list[Any] = []  # every future until the end: the scheduler keeps their history

        def submit(i: int, attempt: int) -> Any:
            fut = self._client.submit(
                call_recorded, fn, tasks[i], pure=False, retries=0, key=f"{tag}-{i}-{attempt}"
            )
            held.append(fut)
            return fut

        futures = {submit(i, 0): i for i in range(len(tasks))}
        attempts = dict.fromkeys(range(len(tasks)), 0)
        resubmits = 0
        ac = d.as_completed(list(futures))
        try:
            for fut in ac:
                i = futures.pop(fut)
                try:
                    worker, result = fut.result()
                except d.KilledWorker as exc:
                    if attempts[i] >= RETRIES:
                        left = [tasks[i], *(tasks[j] for j in sorted(futures.values()))]
                        raise WorkerLost(
                            tasks[i],
                            left,
                            f"Dask workers died {attempts[i] + 1} times running this task: {exc}",
                        ) from exc
                    attempts[i] += 1
                    resubmits += 1
                    again = submit(i, attempts[i])
                    futures[again] = i
                    ac.add(again)
                    continue
                yield tasks[i], worker, result
            counted = self._scheduler_retries([f.key for f in held])
            self.retries += resubmits if counted is None else counted
        finally:
            for f in futures:
                f.cancel()

    def _scheduler_retries(self, keys: list[str]) -> int | None:
        """Reruns of ``keys`` after lost workers, as the scheduler counted them; None if it
        cannot say (a scheduler without lamostdb installed cannot run the count)."""
        try:
            return int(self._client.run_on_scheduler(scheduler_retries, keys))
        except Exception:
            return None

    def close(self) -> None:
        self._stack.close()
