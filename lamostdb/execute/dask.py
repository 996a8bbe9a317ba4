"""Partition functions on a Dask cluster (``pip install 'lamostdb[dask]'``).

``local:N`` starts a ``dask.distributed.LocalCluster`` of N single-threaded worker
processes for this run; ``tcp://HOST:PORT`` connects to a running scheduler. Workers must
see the catalogue folder at the same path (a shared filesystem): they read its committed
files and write staged Parquet under ``_staging/``; the driver alone commits.

A task whose worker dies is retried on another worker (``retries``, Dask's
``KilledWorker`` protection); a task that raises is not retried (the error is in the
data, not the worker) and its exception is raised in the driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from lamostdb.execute.base import ClusterSpec, Executor, WorkerLost, call_recorded

T = TypeVar("T")
R = TypeVar("R")

#: Times a task is resubmitted after its worker died.
RETRIES = 2


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("--cluster needs Dask: pip install 'lamostdb[dask]' (dask and "
                           "distributed), or leave --cluster out to use the local process "
                           "pool") from exc
    return distributed


class DaskExecutor(Executor):
    """Runs tasks as Dask futures; see the module docstring."""

    def __init__(self, spec: ClusterSpec, *, root: Path, preload: str) -> None:
        super().__init__()
        distributed = _import_distributed()
        self._stack = contextlib.ExitStack()
        if spec.kind == "dask-local":
            n = int(spec.n_workers or 1)
            cluster = self._stack.enter_context(distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=40))
            self._client = self._stack.enter_context(distributed.Client(cluster))
            self.address = f"local:{n} ({cluster.scheduler_address})"
        else:
            try:
                self._client = self._stack.enter_context(
                    distributed.Client(spec.address, timeout="20s"))
            except OSError as exc:
                raise RuntimeError(f"--cluster {spec.address}: no Dask scheduler answers "
                                   f"there ({exc}); start one (dask scheduler) or check the "
                                   "address") from exc
            self.address = str(spec.address)
        workers = self._client.scheduler_info(n_workers=-1)["workers"]
        if not workers:
            self._client.wait_for_workers(1, timeout=60)
            workers = self._client.scheduler_info(n_workers=-1)["workers"]
        self.n_workers = len(workers)
        self._root = root
        self._distributed = distributed

    def _run(self, fn: Callable[[T], R], tasks: list[T]) -> Iterator[tuple[T, str, R]]:
        d = self._distributed
        futures = {self._client.submit(call_recorded, fn, t, pure=False, retries=0,
                                       key=f"lamostdb-{fn.__name__}-{i}-{id(self):x}"): t
                   for i, t in enumerate(tasks)}
        attempts = dict.fromkeys(range(len(tasks)), 0)
        index = {id(t): i for i, t in enumerate(tasks)}
        ac = d.as_completed(list(futures))
        for fut in ac:
            task = futures.pop(fut)
            try:
                worker, result = fut.result()
            except d.KilledWorker as exc:
                i = index[id(task)]
                if attempts[i] >= RETRIES:
                    for f in futures:
                        f.cancel()
                    raise WorkerLost(task, [task, *futures.values()],
                                     f"Dask workers died {attempts[i] + 1} times running this "
                                     f"task: {exc}") from exc
                attempts[i] += 1
                self.retries += 1
                again = self._client.submit(call_recorded, fn, task, pure=False,
                                            key=f"lamostdb-{fn.__name__}-{i}-r{attempts[i]}"
                                                f"-{id(self):x}")
                futures[again] = task
                ac.add(again)
                continue
            yield task, worker, result

    def close(self) -> None:
        self._stack.close()
