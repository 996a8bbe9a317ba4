"""Where partition functions run: an :class:`Executor` chosen once per stage run.

A stage driver plans its partitions as picklable task objects, hands them with a
module-level partition function to :meth:`Executor.run`, and commits what comes back.
Executors differ only in where the function runs:

- :class:`SerialExecutor`: in this process (one worker, tests, debugging);
- :class:`LocalExecutor`: a pool of local worker processes that die with this one
  (:mod:`lamostdb.catalog.workers`), the default;
- a Dask cluster (:mod:`lamostdb.execute.dask`), chosen with ``cluster="local:N"`` or
  ``cluster="tcp://HOST:PORT"`` (``pip install 'lamostdb[dask]'``).

Whatever the executor, partition functions only write staged files under the catalogue
folder and return descriptions of them; the driver alone commits.
"""

from lamostdb.execute.base import (
    ClusterError,
    ClusterSpec,
    Executor,
    ExecutorSummary,
    WorkerLost,
)
from lamostdb.execute.local import LocalExecutor, SerialExecutor
from lamostdb.execute.select import open_executor, parse_cluster

__all__ = [
    "ClusterError",
    "ClusterSpec",
    "Executor",
    "ExecutorSummary",
    "LocalExecutor",
    "SerialExecutor",
    "WorkerLost",
    "open_executor",
    "parse_cluster",
]
