"""The executor contract shared by the local pool and the Dask cluster."""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ClusterError(RuntimeError):
    """The cluster cannot be used: Dask is not installed, no scheduler answers, no worker
    joins, or the workers do not see the catalogue folder. The message says what to do."""


class WorkerLost(RuntimeError):
    """A worker process died (a signal, the OOM killer) while it ran ``task``.

    The local pool cannot tell which of its running tasks killed it, so every task not
    finished when the pool broke is in ``unfinished`` (``task`` is the first of them).
    """

    def __init__(self, task: Any, unfinished: list[Any], detail: str) -> None:
        super().__init__(detail)
        self.task = task
        self.unfinished = unfinished


@dataclass
class ExecutorSummary:
    """Where a stage's partitions ran: recorded in the run summary (``--json``)."""

    cluster: str
    n_workers: int
    tasks_per_worker: dict[str, int] = field(default_factory=dict)
    retries: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "cluster": self.cluster,
            "n_workers": self.n_workers,
            "tasks_per_worker": dict(sorted(self.tasks_per_worker.items())),
            "retries": self.retries,
        }


def worker_name() -> str:
    """This process as a worker: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def call_recorded(fn: Callable[[T], R], task: T) -> tuple[str, R]:
    """Run ``fn(task)`` and say which process ran it (module level: picklable)."""
    return worker_name(), fn(task)


@dataclass(frozen=True)
class ClusterSpec:
    """Where to run: ``kind`` is ``"pool"`` (local processes, the default), ``"dask-local"``
    (a ``dask.distributed.LocalCluster`` of ``n_workers``) or ``"dask"`` (the scheduler at
    ``address``)."""

    kind: str
    n_workers: int | None = None
    address: str | None = None


class Executor(ABC):
    """Runs a partition function over tasks; results come back as each finishes."""

    #: ``serial``, ``local:N`` (process pool), ``dask-local:N`` or ``tcp://HOST:PORT``
    address: str
    n_workers: int

    def __init__(self) -> None:
        self._tasks: Counter[str] = Counter()
        self.retries = 0

    @abstractmethod
    def _run(self, fn: Callable[[T], R], tasks: list[T]) -> Iterator[tuple[T, str, R]]:
        """``(task, worker, result)`` in completion order; raises :class:`WorkerLost`."""

    def run(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        """``(task, fn(task))`` for every task, in completion order.

        ``fn`` must be a module-level function and the tasks picklable. An exception
        raised by ``fn`` is raised here; a worker that dies raises :class:`WorkerLost`.
        """
        for task, worker, result in self._run(fn, list(tasks)):
            self._tasks[worker] += 1
            yield task, result

    def summary(self) -> ExecutorSummary:
        return ExecutorSummary(self.address, self.n_workers, dict(self._tasks), self.retries)

    def close(self) -> None:  # noqa: B027 - most executors hold nothing
        """Release the workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
