"""benchmarks/plan_full_release.py: the measured plan of a full release, and its model."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
WORKERS = (1, 8, 64, 512)


def _model() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plan_model", BENCH / "plan_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["plan_model"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def _measured(model: ModuleType, **changes: object) -> object:
    tables = ("spectra", "results", "candidates", "xmatch", "objects")
    base = model.Measured(
        rate={"ingest": 1000.0, "classify": 50.0, "xmatch": 500.0, "ids": 2000.0, "export": 300.0},
        join_rows_per_s=1e6,
        refcat_rows_per_s=1e5,
        bytes_per_row={**dict.fromkeys(tables, 200.0), "spectra": 20_000.0, "gaia": 60.0},
        bytes_per_file=dict.fromkeys((*tables, "gaia"), 10_000.0),
        files_per_spectrum=dict.fromkeys(tables, 0.008),
        files_per_plate=dict.fromkeys(tables, 4.0),
        fits_bytes=90_000.0,
        export_bytes=90_000.0,
        commit_per_run_s=0.25,
        commit_per_file_s=0.005,
        meta_per_file_s=0.002,
        meta_per_table_s=0.03,
        ledger_per_file_s=2e-4,
    )
    return dataclasses.replace(base, **changes)


def test_model_terms_by_hand() -> None:
    model = _model()
    m, a = _measured(model), model.Assumptions()
    rows = {(r.layout, r.n_workers): r for r in model.projection(m, a)}
    one = rows[("compacted", 1)]
    core_s = 2e7 * (1 / 1000 + 1 / 50 + 1 / 500 + 1 / 2000 + 1 / 300) + 1.8e9 / 1e6
    assert one.compute_h == pytest.approx(core_s / 3600)
    assert rows[("compacted", 512)].compute_h == pytest.approx(core_s / 512 / 3600)
    assert one.ledger_h == pytest.approx(2e7 * 2e-4 / 3600)
    per_spectrum = 90_000 + 90_000 + 3 * 20_000 + 200 + 200 + 2 * 200 + 200
    assert one.fs_h == pytest.approx((2e7 * per_spectrum + 1.8e9 * 60) / 1.25e9 / 3600)
    # nightly: spectra, results, candidates 0.008 files per spectrum; xmatch and objects
    # 4 per plate of 4000; every commit lists all the files so far
    night = rows[("nightly", 1)]
    n_files = 3 * 0.008 * 2e7 + 2 * 4 * 5000
    assert night.files == pytest.approx(n_files)
    assert night.metadata_h == pytest.approx((0.002 * n_files * 1001 / 2 + 1000 * 5 * 0.03) / 3600)
    assert night.wall_h == pytest.approx(
        max(night.compute_h, night.fs_h) + night.commit_h + night.metadata_h + night.ledger_h
    )


def test_model_bottleneck_moves_off_compute() -> None:
    model = _model()
    rows = model.projection(_measured(model), model.Assumptions())
    first = {(r.layout, r.n_workers): r.bottleneck for r in rows}
    assert first[("nightly", 1)] == "compute"
    # 5e5 files re-listed at 1000 commits: 140 h of metadata beats 512 workers' compute
    assert first[("nightly", 512)] == "metadata rewrite"
    assert first[("compacted", 512)] != "metadata rewrite"
    assert all(name in model.ANSWERS for name in first.values())
    then = {(r.layout, r.n_workers): r.then for r in rows}
    assert then[("nightly", 1)] == "metadata rewrite"
    assert all(r.then != "compute" and r.then in model.ANSWERS for r in rows)
    # more nights of the same release: quadratic metadata, so more than twice as long
    twice = model.projection(_measured(model), model.Assumptions(nights=2000))
    meta = {r.layout: r.metadata_h for r in rows if r.n_workers == 1}
    meta2 = {r.layout: r.metadata_h for r in twice if r.n_workers == 1}
    assert meta2["nightly"] > 1.9 * meta["nightly"]
    assert meta2["compacted"] == pytest.approx(meta["compacted"])


@pytest.mark.slow
def test_quick_run_prints_the_plan(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    res = subprocess.run(
        [sys.executable, str(BENCH / "plan_full_release.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    plan = json.loads(out.read_text())
    for layout in ("nightly", "compacted"):
        rows = [r for r in plan["rows"] if r["layout"] == layout]
        assert [r["n_workers"] for r in rows] == list(WORKERS)
        for r in rows:
            for key in ("compute_h", "fs_h", "wall_h", "files", "storage_tb"):
                assert math.isfinite(r[key]) and r[key] > 0, (layout, r["n_workers"], key)
            for key in ("commit_h", "metadata_h", "ledger_h"):
                assert math.isfinite(r[key]) and r[key] >= 0, (layout, r["n_workers"], key)
        assert rows[0]["compute_h"] == pytest.approx(512 * rows[-1]["compute_h"])
        walls = [r["wall_h"] for r in rows]
        assert walls == sorted(walls, reverse=True)
    measured = plan["measured"]
    assert set(measured["rate"]) == {"ingest", "classify", "xmatch", "ids", "export"}
    assert all(v > 0 for v in measured["rate"].values())
    # the bytes come from the files: spectra carry the pixels, so they dominate
    per_row = measured["bytes_per_row"]
    assert per_row["spectra"] > 10 * per_row["results"] > 0
    assert plan["runs"]["classify"]["workers"] == 1 and plan["runs"]["classify2"]["workers"] == 2
    assert plan["runs"]["classify2"]["n"] == plan["runs"]["classify"]["n"] == 30
    assert plan["scaling_2_workers"]["classify"] > 0
    # the real Gaia cone near b = -22 deg: within a factor 3 of the all-sky mean
    assert 43_633 / 3 < plan["cone"]["per_deg2"] < 3 * 43_633
    for layout in ("nightly (", "compacted ("):  # the printed table: name, then N
        printed = [line.split()[3] for line in res.stdout.splitlines() if line.startswith(layout)]
        assert printed == [str(n) for n in WORKERS]
