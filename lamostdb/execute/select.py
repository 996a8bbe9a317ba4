"""``--cluster`` strings to executors."""

from __future__ import annotations

import os
from pathlib import Path

from lamostdb.execute.base import ClusterSpec, Executor
from lamostdb.execute.local import LocalExecutor, SerialExecutor


def parse_cluster(text: str | None) -> ClusterSpec:
    """``None`` -> the local pool; ``local:N``; ``tcp://HOST:PORT`` (also ``tls://``).

    >>> parse_cluster("local:2")
    ClusterSpec(kind='dask-local', n_workers=2, address=None)
    >>> parse_cluster("tcp://10.0.0.5:8786").address
    'tcp://10.0.0.5:8786'
    """
    if text is None or text == "":
        return ClusterSpec("pool")
    if text.startswith("local:"):
        n = text.partition(":")[2]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(
                f"--cluster {text!r}: after 'local:' give the number of Dask workers, e.g. local:4"
            )
        return ClusterSpec("dask-local", n_workers=int(n))
    if "://" in text:
        scheme, _, where = text.partition("://")
        host, _, port = where.rpartition(":")
        if scheme not in ("tcp", "tls", "ws", "wss") or not host or not port.isdigit():
            raise ValueError(f"--cluster {text!r}: a scheduler address looks like tcp://HOST:PORT")
        return ClusterSpec("dask", address=text)
    raise ValueError(
        f"--cluster {text!r}: use local:N (a local Dask cluster of N workers) or "
        "tcp://HOST:PORT (a running Dask scheduler); leave it out for the local "
        "process pool"
    )


def open_executor(
    cluster: str | ClusterSpec | None,
    *,
    workers: int | None,
    n_tasks: int,
    root: Path,
    staging: str,
    run_id: str,
    preload: str,
) -> Executor:
    """The executor a stage runs its ``n_tasks`` partitions on (use it as a context manager).

    With no cluster: in this process when one worker is asked for or there is one task,
    else a local pool of ``min(workers or cpu_count, n_tasks)`` processes.
    """
    spec = cluster if isinstance(cluster, ClusterSpec) else parse_cluster(cluster)
    if spec.kind == "pool":
        n = max(1, min(workers or os.cpu_count() or 1, n_tasks))
        if n == 1:
            return SerialExecutor()
        return LocalExecutor(n, root=root, staging=staging, run_id=run_id, preload=preload)
    from lamostdb.execute.dask import DaskExecutor

    return DaskExecutor(spec, root=root, preload=preload)
