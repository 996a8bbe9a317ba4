"""Worker processes of the writing stages: they die with their parent, and leave a trace.

Ingest and classify run their workers in a ``forkserver`` pool made by :func:`worker_pool`.
Each worker, when it starts:

- asks the kernel to SIGKILL it when its parent (the fork server) dies
  (``prctl(PR_SET_PDEATHSIG)``, Linux), and runs a watchdog thread that ends it within
  :data:`WATCH_S` seconds of the stage process (whose death ends the fork server) going
  away, on any system;
- records its pid and start time under ``_staging/<run_id>/workers/``.

After a ``kill -9`` of the stage the workers are gone within milliseconds, and the next
writer's recovery (:func:`lamostdb.catalog.commit.recover`) first ends any worker still
listed (same pid *and* start time, so a reused pid is never touched) and waits for it to be
gone, and only then clears staging: no worker writes into staging after the cleanup.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.pool import Pool
from pathlib import Path

from lamostdb.catalog.errors import CatalogError

WATCH_S = 0.05
WORKERS_DIR = "workers"
_PR_SET_PDEATHSIG = 1


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc``), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has stopped running; its parent reaps it
        return None
    return fields[19]


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _stage_alive(pid: int, started: str | None) -> bool:
    if started is not None:  # /proc: a killed stage not yet reaped (a zombie) counts as dead
        return _start_time(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _watch(stage_pid: int, stage_started: str | None) -> None:
    while True:
        time.sleep(WATCH_S)
        if not _stage_alive(stage_pid, stage_started):
            os._exit(70)


def init_worker(stage_pid: int, stage_started: str | None, pid_dir: str) -> None:
    """Pool initializer: die with the stage process, and record this worker's pid."""
    _die_with_parent()
    if os.getppid() == 1 or not _stage_alive(stage_pid, stage_started):
        os._exit(70)  # the parent died before the request took effect
    threading.Thread(target=_watch, args=(stage_pid, stage_started), daemon=True).start()
    pid = os.getpid()
    started = _start_time(pid)
    if started is not None:
        Path(pid_dir, str(pid)).write_text(started)


_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_MALLOC_SET: list[bool] = []


def keep_freed_memory(mmap_mb: int = 64, trim_mb: int = 256) -> bool:
    """Let this worker process reuse freed blocks of up to ``mmap_mb`` MB instead of
    returning them to the system, keeping up to ``trim_mb`` MB free (glibc; once per
    process; False where there is no glibc).

    glibc gives blocks over its (adaptive) mmap threshold back to the system when they are
    freed, and the next array of that size faults in fresh zeroed pages: the classify engine
    makes tens of such 20-30 MB temporaries per batch. Measured on a 32-spectrum batch, one
    core: 174 -> 165 ms for the whole method. Only for worker processes, whose memory this
    program owns; the peak (what the memory targets bound) does not grow.
    """
    if _MALLOC_SET:
        return _MALLOC_SET[0]
    ok = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None)
            ok = bool(
                libc.mallopt(_M_MMAP_THRESHOLD, mmap_mb << 20)
                and libc.mallopt(_M_TRIM_THRESHOLD, trim_mb << 20)
            )
        except (OSError, AttributeError):
            ok = False
    _MALLOC_SET.append(ok)
    return ok


def _pid_dir(root: Path, staging: str, run_id: str) -> Path:
    pid_dir = root / staging / run_id / WORKERS_DIR
    pid_dir.mkdir(parents=True, exist_ok=True)
    return pid_dir


def _forget_workers(pid_dir: Path) -> None:
    for f in pid_dir.iterdir():  # the workers are gone: so is their trace
        f.unlink()
    for d in (pid_dir, pid_dir.parent, pid_dir.parent.parent):  # and empty folders
        with contextlib.suppress(OSError):
            d.rmdir()


def start_fork_server(preload: str) -> None:
    """Start this process's ``forkserver`` now, importing ``preload``, without waiting for it.

    A stage calls it before planning its tasks: the server's interpreter start and imports
    (half a second for the classify engine) then run on another core while the stage reads
    the catalogue, instead of after. It does nothing when a fork server already runs (one
    per process, e.g. started by an earlier stage of a nightly run): pools reuse it as before.
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([preload])
    from multiprocessing import forkserver

    forkserver.ensure_running()


@contextlib.contextmanager
def worker_executor(
    n_workers: int,
    root: Path,
    staging: str,
    run_id: str,
    preload: str,
) -> Iterator[ProcessPoolExecutor]:
    """Like :func:`worker_pool`, as a ``ProcessPoolExecutor``: a worker that dies (a signal,
    the OOM killer) breaks it with ``BrokenProcessPool`` instead of losing its task silently,
    so the caller can find the input that killed it."""
    pid_dir = _pid_dir(root, staging, run_id)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([preload])
    ex = ProcessPoolExecutor(
        n_workers,
        mp_context=ctx,
        initializer=init_worker,
        initargs=(os.getpid(), _start_time(os.getpid()), str(pid_dir)),
    )
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
        _forget_workers(pid_dir)


@contextlib.contextmanager
def worker_pool(
    n_workers: int,
    root: Path,
    staging: str,
    run_id: str,
    preload: str,
) -> Iterator[Pool]:
    """A forkserver pool of ``n_workers`` whose workers die with this process.

    Parameters
    ----------
    n_workers
        Processes.
    root
        Catalogue folder.
    staging
        Name of the staging folder in ``root``.
    run_id
        The run: worker pids go to ``<root>/<staging>/<run_id>/workers/``.
    preload
        Module the fork server imports once.
    """
    pid_dir = _pid_dir(root, staging, run_id)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([preload])
    pool = ctx.Pool(
        n_workers,
        initializer=init_worker,
        initargs=(os.getpid(), _start_time(os.getpid()), str(pid_dir)),
    )
    try:
        yield pool
        pool.close()
    finally:
        pool.terminate()
        pool.join()
        _forget_workers(pid_dir)


def end_leftover_workers(
    staging_root: Path, *, timeout_s: float = 10.0, kill: Callable[[int, int], None] = os.kill
) -> list[int]:
    """SIGKILL the workers that ``staging_root`` lists and that still run; wait until gone.

    Returns the pids that were still running. A pid is only signalled when its start time
    is the recorded one (so a reused pid is left alone).
    """
    alive: list[int] = []
    for f in sorted(staging_root.glob(f"*/{WORKERS_DIR}/*")):
        try:
            pid, started = int(f.name), f.read_text().strip()
        except (OSError, ValueError):
            continue
        if started and _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)
            alive.append(pid)
    deadline = time.monotonic() + timeout_s
    waiting = list(alive)
    while waiting and time.monotonic() < deadline:
        waiting = [p for p in waiting if _start_time(p) is not None]
        if waiting:
            time.sleep(0.02)
    if waiting:
        raise CatalogError(
            f"worker processes {waiting} of an earlier run did not end after "
            f"SIGKILL within {timeout_s:.0f} s; end them (kill -9 PID) and "
            "open the catalogue again"
        )
    return alive
