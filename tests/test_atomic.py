"""Crash consistency: a killed ingest leaves the catalogue as before or after, never between."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import hats
import pytest
from conftest import SHIPPED_SPECTRA

import lamostdb
from lamostdb.catalog.commit import FAULT_POINTS
from lamostdb.catalog.store import Catalog
from lamostdb.ingest.stage import ingest

FIRST = SHIPPED_SPECTRA / "cmost"
SECOND = SHIPPED_SPECTRA / "spectraml"


def _state(path: Path) -> tuple[int, int, int, int]:
    """(rows in spectra_history, ledger rows, quarantine rows, parquet files on disk)."""
    with Catalog(path, mode="w") as cat:  # opening for write runs recovery
        n = cat.sql(
            "SELECT (SELECT count(*) FROM spectra_history) AS h, "
            "(SELECT count(*) FROM ingest_ledger) AS l, "
            "(SELECT count(*) FROM quarantine) AS q"
        ).row(0)
        n_files = cat.sql("SELECT count(*) AS n FROM files")["n"][0]
    on_disk = len(list((path / "spectra" / "dataset").rglob("*.parquet")))
    assert on_disk == n_files, "files on disk that the catalogue does not list"
    assert not (path / "_staging").exists()
    hc = hats.read_hats(path / "spectra")
    assert hc.catalog_info.total_rows == n[0]
    return (int(n[0]), int(n[1]), int(n[2]), on_disk)


def _run_ingest(cat: Path, src: Path, fault: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("LAMOSTDB_FAULT", None)
    if fault:
        env["LAMOSTDB_FAULT"] = fault
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lamostdb.cli",
            "ingest",
            str(cat),
            str(src),
            "--workers",
            "1",
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("point", FAULT_POINTS)
def test_crash_at_each_commit_step_leaves_before_or_after(tmp_path: Path, point: str) -> None:
    cat = tmp_path / "cat"
    with Catalog.create(cat) as c:
        ingest(c, [FIRST], workers=1, progress=False)
    before = _state(cat)
    proc = _run_ingest(cat, SECOND, point)
    assert proc.returncode == 70, proc.stderr  # died at the fault point
    crashed = _state(cat)
    proc = _run_ingest(cat, SECOND, None)
    assert proc.returncode == 0, proc.stderr
    after = _state(cat)
    assert after[0] > before[0]
    if point == "committed":
        assert crashed == after  # the commit was durable before the crash
    else:
        assert crashed == before
    # and a further ingest is a no-op
    assert _run_ingest(cat, SECOND, None).returncode == 0
    assert _state(cat) == after


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    """Kill a real multi-process ingest at several delays; every state is before or after."""
    cat = tmp_path / "cat"
    with Catalog.create(cat) as c:
        ingest(c, [FIRST], workers=1, progress=False)
    before = _state(cat)
    seen = set()
    for delay in (0.3, 0.8, 1.3, 1.8, 2.5):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lamostdb.cli",
                "ingest",
                str(cat),
                str(SHIPPED_SPECTRA),
                "--quiet",
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        state = _state(cat)
        seen.add(state)
        if state != before:
            break
    assert _run_ingest(cat, SHIPPED_SPECTRA, None).returncode == 0
    after = _state(cat)
    assert seen <= {before, after}
    with lamostdb.open(cat) as c:
        assert c.sql("SELECT count(*) AS n FROM runs WHERE state = 'committing'")["n"][0] == 0
