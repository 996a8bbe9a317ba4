"""Imported by the classify workers' fork server, and only there: it builds the default engine.

``multiprocessing``'s fork server runs module imports only (``set_forkserver_preload``);
importing this module builds the default engine with its first-use arrays
(:func:`lamostdb.classify.partition.warm_engine`) in the server, once, and the workers it
forks share it (copy-on-write) instead of each building its own. The classify driver names
this module for a run with the default engine (:func:`lamostdb.classify.stage.classify`).
A failure here only costs the speed-up: each worker then builds the engine on first use.
"""

from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_limits

from lamostdb.classify.partition import warm_engine

with contextlib.suppress(Exception), threadpool_limits(limits=1):
    warm_engine()
