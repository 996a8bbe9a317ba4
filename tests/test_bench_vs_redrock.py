"""benchmarks/bench_vs_redrock.py without redrock: its lamostdb half, label reading, scoring.

The CI venv has no ``peer`` extra, so nothing here imports redrock: the script's redrock half
runs in ``python benchmarks/bench_vs_redrock.py`` with the extra installed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from astropy.io import fits
from conftest import NOT_LAMOST, SHIPPED_FILES

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_vs_redrock.py"
LAMOST_FILES = [p for p in SHIPPED_FILES if p.name not in NOT_LAMOST]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_vs_redrock", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_vs_redrock"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    from lamostdb.match.engine import get_engine

    return get_engine()


def test_without_redrock_it_stops_naming_the_peer_extra(tmp_path: Path) -> None:
    # redrock made unimportable whether or not this venv has it (None in sys.modules)
    code = (
        "import runpy, sys; sys.modules['redrock'] = None; "
        f"sys.argv = [{str(SCRIPT)!r}, '--n', '2']; "
        f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 1
    assert "pip install 'lamostdb[peer]'" in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == ""


def test_choose_keeps_every_rare_label_and_fills_with_stars(bench: ModuleType) -> None:
    labels = ["STAR"] * 50 + ["GALAXY", "QSO", "UNKNOWN", "NONE"]
    idx = bench.choose(labels, 10, seed=3)
    assert idx.size == 10 and np.unique(idx).size == 10
    assert {50, 51, 52, 53} <= set(idx.tolist())
    assert np.array_equal(idx, bench.choose(labels, 10, seed=3))
    assert not np.array_equal(np.sort(idx), np.sort(bench.choose(labels, 10, seed=4)))
    assert bench.choose(labels, 100, seed=0).size == len(labels)
    assert set(bench.choose(labels, 2, seed=0).tolist()) <= {50, 51, 52, 53}


def test_agreement_arithmetic(bench: ModuleType) -> None:
    c = 299792.458
    label = ["STAR", "STAR", "STAR", "GALAXY", "GALAXY", "QSO", "UNKNOWN", "STAR"]
    label_z = [1e-5, 0.0, 2e-5, 0.10, 0.20, 1.50, -9999.0, 0.0]
    ours = ["STAR", "STAR", "GALAXY", "GALAXY", "GALAXY", "STAR", "STAR", "STAR"]
    z = [1e-5 + 10 / c, -30 / c, 0.3, 0.1001, 0.25, 0.0, 0.0, 0.0]
    answered = [True] * 7 + [False]
    q = bench.agreement(
        label,
        label_z,
        ours,
        z,
        label_letter=["G", "K", "A", "", "", "", "", "F"],
        letter=["G", "M", "", "", "", "", "F", "F"],
        answered=answered,
    )
    # scored: the 7 answered with a known label less the UNKNOWN one = rows 0-5
    assert q["class"] == (4, 6)
    assert q["per_class"] == {"STAR": (2, 3), "GALAXY": (2, 2), "QSO": (0, 1)}
    assert q["failed"] == 1 and q["unlabelled"] == 1
    assert q["letter"] == (1, 2)  # rows 0 (G=G) and 1 (K vs M)
    assert q["star_dv_median_kms"] == pytest.approx(20.0)  # median of 10 and 30 km/s
    # galaxy 0.1001 vs 0.10: |dz|/(1+z) = 9e-5 passes; 0.25 vs 0.20 fails; the QSO is a STAR
    assert q["z_ok"] == {"GALAXY": (1, 2), "QSO": (0, 1)}
    lines = bench.format_quality("x", q)
    assert lines[0] == "x: class agrees with LAMOST CLASS: 4/6 = 66.7 %"
    assert any("failed fits (left out above): 1" in line for line in lines)


def test_redrock_letter(bench: ModuleType) -> None:
    assert bench.redrock_letter("STAR", "K") == "K"
    assert bench.redrock_letter("STAR", "WD") == ""
    assert bench.redrock_letter("STAR", "Carbon") == ""
    assert bench.redrock_letter("GALAXY", "") == ""


def test_resolution_matrix_rows_sum_to_one_with_the_lamost_width(bench: ModuleType) -> None:
    sigma = bench.lamost_sigma_px(1800.0, 1e-4)
    assert sigma == pytest.approx(1.0 / (1800 * np.log(10) * 1e-4) / 2.3548, rel=1e-4)
    r = bench.resolution_matrix(200, sigma).toarray()
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=1e-12)
    row = r[100]
    d = np.arange(200) - 100
    assert np.count_nonzero(row) == 11
    assert float((row * d).sum()) == pytest.approx(0.0, abs=1e-12)
    assert float(np.sqrt((row * d**2).sum())) == pytest.approx(sigma, rel=0.01)
    np.testing.assert_allclose(r[50:150, 50:150], r[50:150, 50:150].T, rtol=1e-12)
    assert np.count_nonzero(r[0]) == 6 and r[0, 0] > row[100]  # edge row renormalised


def test_lamostdb_half_reads_labels_and_scores_on_real_files(
    bench: ModuleType, engine: object
) -> None:
    sample = bench.read_sample(LAMOST_FILES, 5, 1, engine.grid)  # type: ignore[attr-defined]
    assert len(sample.files) == 5 and not sample.unreadable
    for k, f in enumerate(sample.files):
        hdr = fits.getheader(f)
        assert sample.label[k] == str(hdr["CLASS"]).strip().upper()
        assert sample.label_subclass[k] == str(hdr["SUBCLASS"]).strip()
        z = float(hdr["Z"])  # -9999: no redshift (the reader gives None, scored as NaN)
        assert sample.label_z[k] == pytest.approx(np.nan if z == -9999 else z, nan_ok=True)
        assert np.count_nonzero(sample.ivar[k]) > 1000
    # the rare labels of the shipped set are always in
    assert {"QSO", "UNKNOWN"} <= set(sample.label.tolist())

    ans, wall, cpu = bench.lamostdb_batch(sample.flux, sample.ivar, sample.fibertype, engine)
    assert wall > 0 and cpu > 0
    assert set(ans.cls.tolist()) <= {"STAR", "GALAXY", "QSO"}
    assert np.all(np.isfinite(ans.z))
    q = bench.agreement(sample.label, sample.label_z, ans.cls, ans.z)
    known = np.isin(sample.label, ["STAR", "GALAXY", "QSO"])
    assert q["class"] == (int((ans.cls == sample.label)[known].sum()), int(known.sum()))
    # the shipped QSO (LAMOST z = 0.308) is one lamostdb gets right, class and redshift
    assert q["z_ok"]["QSO"] == (1, 1)
    assert q["class"][0] >= q["class"][1] - 1


def test_lamostdb_throughput_on_two_processes(bench: ModuleType, engine: object) -> None:
    sample = bench.read_sample(LAMOST_FILES, 4, 0, engine.grid)  # type: ignore[attr-defined]
    t = bench.lamostdb_throughput(sample, batch=2, procs=2, min_seconds=0.3)
    assert t.spectra >= 4 and t.spectra % 2 == 0  # whole batches, at least one pass
    assert t.wall_s >= 0.3 and t.cpu_s > 0 and t.procs == 2
    assert t.rate == pytest.approx(t.spectra / t.wall_s)
    assert t.cpu_rate == pytest.approx(2 * t.spectra / t.cpu_s)
    # two single-threaded workers cannot use more CPU than 2 x the wall clock (+ slack)
    assert t.cpu_s <= 2 * t.wall_s * 1.1


def test_a_failing_redrock_fit_is_counted_not_fatal(bench: ModuleType) -> None:
    class Fake:
        """Stands in for the redrock runner: fails on any call holding target 3."""

        calls: list[list[int]] = []

        def fit(self, flux: np.ndarray, ivar: np.ndarray, ids: list[int]) -> list[dict]:
            self.calls.append(list(ids))
            if 3 in ids:
                raise FloatingPointError("bad target 3")
            return [{"spectype": "STAR", "z": float(t)} for t in ids]

    rr = Fake()
    x = np.zeros((4, 5))
    answers, failures = bench.redrock_answers(rr, x, x, first_id=1)
    assert rr.calls == [[1, 2, 3, 4], [1], [2], [3], [4]]  # the batch, then one at a time
    assert [a and a["z"] for a in answers] == [1.0, 2.0, None, 4.0]
    assert failures == [(3, "FloatingPointError: bad target 3")]
    rr.calls.clear()
    answers, failures = bench.redrock_answers(rr, x[:2], x[:2], first_id=10)
    assert rr.calls == [[10, 11]] and failures == [] and len(answers) == 2
