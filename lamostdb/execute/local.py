"""Executors on this machine: in-process, or a pool of worker processes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

from lamostdb.catalog.workers import worker_executor
from lamostdb.execute.base import Executor, WorkerLost, call_recorded, worker_name

T = TypeVar("T")
R = TypeVar("R")


class SerialExecutor(Executor):
    """Runs every task in this process, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.address = "serial"
        self.n_workers = 1

    def _run(self, fn: Callable[[T], R], tasks: list[T]) -> Iterator[tuple[T, str, R]]:
        me = worker_name()
        for task in tasks:
            yield task, me, fn(task)


class LocalExecutor(Executor):
    """A ``forkserver`` pool of ``n_workers`` processes that die with this one.

    Parameters
    ----------
    n_workers
        Worker processes.
    root, staging, run_id
        Where the workers record their pids (``<root>/<staging>/<run_id>/workers``), so
        that a later writer's recovery can end them (:mod:`lamostdb.catalog.workers`).
    preload
        Module the fork server imports once (the stage's partition module).
    """

    def __init__(
        self, n_workers: int, *, root: Path, staging: str, run_id: str, preload: str
    ) -> None:
        super().__init__()
        self.address = f"local:{n_workers}"
        self.n_workers = n_workers
        self._stack = contextlib.ExitStack()
        self._pool = self._stack.enter_context(
            worker_executor(n_workers, root, staging, run_id, preload)
        )

    def _run(self, fn: Callable[[T], R], tasks: list[T]) -> Iterator[tuple[T, str, R]]:
        pending: dict[Future[tuple[str, R]], T] = {
            self._pool.submit(call_recorded, fn, t): t for t in tasks
        }
        order = {id(t): i for i, t in enumerate(tasks)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: order[id(pending[f])]):
                task = pending.pop(fut)
                try:
                    worker, result = fut.result()
                except BrokenProcessPool as exc:
                    left = sorted([task, *pending.values()], key=lambda t: order[id(t)])
                    for f in pending:
                        f.cancel()
                    raise WorkerLost(left[0], left, f"a worker process died: {exc}") from exc
                yield task, worker, result

    def close(self) -> None:
        self._stack.close()
