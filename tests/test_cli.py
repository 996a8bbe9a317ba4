"""The lamostdb command: ingest, sql in every format, errors with exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import SHIPPED_SPECTRA


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamostdb.cli", *args], capture_output=True, text=True, timeout=180
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ingest_then_sql_in_all_formats(tmp_path: Path) -> None:
    cat = tmp_path / "cat"
    r = run("ingest", str(cat), str(SHIPPED_SPECTRA / "cmost"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "10 ingested" in r.stdout and "0 quarantined" in r.stdout
    q = "SELECT obsid, lasp_class FROM spectra WHERE obsid = $o"
    r = run("sql", str(cat), q, "--param", "o=1247301005")
    assert r.returncode == 0 and "QSO" in r.stdout and "1247301005" in r.stdout
    r = run("sql", str(cat), q, "--param", "o=1247301005", "--format", "csv")
    assert r.stdout.splitlines() == ["obsid,lasp_class", "1247301005,QSO"]
    r = run("sql", str(cat), q, "--param", "o=1247301005", "--format", "json")
    assert json.loads(r.stdout) == [{"obsid": 1247301005, "lasp_class": "QSO"}]
    out = tmp_path / "o.parquet"
    r = run(
        "sql", str(cat), "SELECT specid FROM spectra", "--format", "parquet", "--output", str(out)
    )
    assert r.returncode == 0 and pl.read_parquet(out).height == 8


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_errors_are_clear_and_exit_nonzero(tmp_path: Path) -> None:
    r = run("sql", str(tmp_path / "nothing"), "SELECT 1")
    assert r.returncode == 2 and "not a lamostdb catalogue" in r.stderr
    r = run("ingest", str(tmp_path / "cat"), str(tmp_path / "missing-night"))
    assert r.returncode == 2 and "no such file or folder" in r.stderr
    run("ingest", str(tmp_path / "cat"), str(SHIPPED_SPECTRA / "cmost"), "--quiet")
    r = run("sql", str(tmp_path / "cat"), "SELECT no_such_column FROM spectra")
    assert r.returncode == 2 and "SQL error" in r.stderr and "no_such_column" in r.stderr
    r = run("sql", str(tmp_path / "cat"), "SELECT 1", "--format", "parquet")
    assert r.returncode == 2 and "--output" in r.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ingest_reports_quarantine(tmp_path: Path) -> None:
    r = run("ingest", str(tmp_path / "cat"), str(SHIPPED_SPECTRA / "spectraml"), "--quiet")
    assert r.returncode == 0
    assert "1 quarantined" in r.stdout and "oe270005.fits" in r.stdout


def test_help_explains_subcommands() -> None:
    r = run("--help")
    for word in ("ingest", "sql", "simulate", "demo", "info"):
        assert word in r.stdout


def test_sql_piped_into_a_reader_that_stops_early_exits_quietly(shipped_catalog: Path) -> None:
    """`lamostdb sql ... | head -1`: no BrokenPipeError traceback, exit status 0."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lamostdb.cli",
            "sql",
            str(shipped_catalog),
            "SELECT specid, snrg FROM spectra_history, range(2000)",
            "--max-rows",
            "100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
