"""The classify workers' fork server: what it preloads, and starting it before the work.

Light on purpose (no engine, no store): the command line starts the fork server from here
before it imports and opens anything else.
"""

from __future__ import annotations

from lamostdb.catalog.workers import start_fork_server
from lamostdb.match.config import DEFAULT_CONFIG, EngineConfig

#: What the workers' fork server imports once: the partition function and the engine; with
#: the default engine also the engine itself, built once for all workers (``warm``)
WORKER_PRELOAD = "lamostdb.classify.partition"
WORKER_PRELOAD_DEFAULT = "lamostdb.classify.warm"


def start_workers_early(
    config: EngineConfig, *, workers: int | None = None, cluster: str | None = None
) -> str:
    """Start the local workers' fork server now, so that it imports the engine (and, for the
    default engine, builds it once for all workers) while this process opens the catalogue
    and plans; returns the module it preloads. Nothing happens for one worker or a cluster,
    or when this process already runs a fork server. :func:`classify` calls it; a command
    line may call it earlier, before opening the catalogue.
    """
    preload = WORKER_PRELOAD_DEFAULT if config == DEFAULT_CONFIG else WORKER_PRELOAD
    if cluster is None and workers != 1:
        start_fork_server(preload)
    return preload
