"""`lamostdb demo` and `lamostdb simulate` end to end, as a newcomer runs them."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import polars as pl

import lamostdb


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lamostdb.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_demo_builds_a_catalogue_and_answers_queries(tmp_path: Path) -> None:
    r = run("demo", str(tmp_path / "demo"), "--n", "300", "--quiet")
    assert r.returncode == 0, r.stderr
    for text in ("Spectra per survey", "Quarantined files", "oe270005.fits", "LAMOST DR9",
                 "classify:", "against the LAMOST pipeline",
                 "Cone search", "55859-F5902_sp01-001"):
        assert text in r.stdout
    with lamostdb.open(tmp_path / "demo" / "catalog") as cat:
        n = cat.sql("SELECT count(*) AS n FROM spectra")["n"][0]
    truth = pl.read_parquet(tmp_path / "demo" / "night-sim-00001" / "truth.parquet")
    assert n == truth.height + 18  # 18 current shipped real spectra
    # running it again adds nothing
    r = run("demo", str(tmp_path / "demo"), "--n", "300", "--quiet")
    assert r.returncode == 0 and "0 new" in r.stdout


def test_simulate_cli_is_deterministic(tmp_path: Path) -> None:
    digests = []
    for name in ("a", "b"):
        r = run("simulate", str(tmp_path / name), "--n", "60", "--seed", "42", "--quiet")
        assert r.returncode == 0, r.stderr
        h = hashlib.sha256()
        for f in sorted((tmp_path / name).rglob("*")):
            if f.is_file():
                h.update(f.relative_to(tmp_path / name).as_posix().encode())
                h.update(f.read_bytes())
        digests.append(h.hexdigest())
    assert digests[0] == digests[1]
    truth = pl.read_parquet(tmp_path / "a" / "truth.parquet")
    assert truth.height == 60
    assert {"obsid", "class", "subclass", "z"} <= set(truth.columns)
    assert set(truth["class"].unique()) <= {"STAR", "GALAXY", "QSO", "UNKNOWN"}
