"""`lamostdb demo` and `lamostdb simulate` end to end, as a newcomer runs them."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import lamostdb


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamostdb.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_builds_a_catalogue_and_answers_queries(tmp_path: Path) -> None:
    r = run("demo", str(tmp_path / "demo"), "--n", "300", "--quiet")
    assert r.returncode == 0, r.stderr
    for text in (
        "All QSOs with z > $zmin",
        "RV scatter > $rv km/s",
        "no Gaia counterpart",
        "ZWARNING",
        "oe270005.fits",
        "lamostdb nightly",
        "classes: ",
        "seconds: ",
        "against the LAMOST pipeline",
        "Cone search",
        "55859-F5902_sp01-001",
        "lamostdb plot",
    ):
        assert text in r.stdout
    nights = sorted((tmp_path / "demo").glob("night-sim-*/truth.parquet"))
    truths = [pl.read_parquet(p) for p in nights]
    assert len(truths) == 3
    with lamostdb.open(tmp_path / "demo" / "catalog") as cat:
        n = cat.sql("SELECT count(*) AS n FROM spectra")["n"][0]
        n_res = cat.sql("SELECT count(*) AS n FROM results")["n"][0]
        epochs = cat.sql("SELECT max(n_epochs) AS m, count(*) AS n FROM mec")
        n_lrs = cat.sql("SELECT count(*) AS n FROM lrs")["n"][0]
    assert n == n_res == n_lrs == sum(t.height for t in truths) + 18  # + 18 real spectra
    # the three nights revisit one field: objects have three epochs, fewer objects than spectra
    assert epochs["m"][0] == 3 and epochs["n"][0] < n
    # running it again adds nothing
    r = run("demo", str(tmp_path / "demo"), "--n", "300", "--quiet")
    assert r.returncode == 0 and r.stdout.count("nothing new: ") == 3


@pytest.mark.slow
@pytest.mark.timeout(300)
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
