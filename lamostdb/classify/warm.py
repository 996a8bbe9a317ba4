"""Imported by the classify workers' fork server, and only there: it builds the default engine.

``multiprocessing``'s fork server runs module imports only (``set_forkserver_preload``);
importing this module builds the default engine with its first-use arrays
(:func:`lamostdb.classify.partition.warm_engine`) in the server, once, and the workers it
forks share it (copy-on-write) instead of each building its own. The classify driver names
this module for a run with the default engine (:func:`lamostdb.classify.stage.classify`).
A failure here only costs the speed-up: each worker then builds the engine on first use.

Nothing here may start a thread pool that the workers would use (polars', pyarrow's, a BLAS
pool beyond one thread): threads do not survive the fork, and a forked worker would wait on
pool threads that are not there. The engine is numpy only, run with one BLAS thread; the
helper thread below is joined before any fork.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from lamostdb.classify.partition import warm_engine


def _first_calls() -> None:
    # what each worker's first task would otherwise pay: the task function's module, and
    # pyarrow's first array from numpy, which imports pandas when it is installed (0.12 s)
    importlib.import_module("lamostdb.classify.stage")
    pa.array(np.zeros(1))


# in a thread beside the engine build (mostly numpy, which releases the GIL): the build and
# these imports took 0.44 s together against 0.32 s and 0.91 s built alone and one after the other
_imports = threading.Thread(target=_first_calls, name="lamostdb-warm-imports")
_imports.start()
with contextlib.suppress(Exception), threadpool_limits(limits=1):
    warm_engine()
_imports.join()
