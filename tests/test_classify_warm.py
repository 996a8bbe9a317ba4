"""The classify workers' fork server builds the default engine once; answers do not change."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import SHIPPED_SPECTRA

import lamostdb
import lamostdb.classify.forkserver as forkserver
import lamostdb.classify.stage as stage
from lamostdb.catalog.store import Catalog
from lamostdb.ingest.stage import ingest
from lamostdb.match.config import DEFAULT_CONFIG, EngineConfig, SearchConfig
from lamostdb.sim import simulate_night

_WARM_PROBE = r"""
import json
import lamostdb.classify.warm  # what the fork server imports
from lamostdb.match.config import DEFAULT_CONFIG
from lamostdb.match.engine import get_engine
engine = get_engine(DEFAULT_CONFIG)
built = {
    "engines": get_engine.cache_info().currsize,
    "tpl_jtb": "tpl_jtb" in vars(engine.star),
    "spline_coeffs": "spline_coeffs" in vars(engine.star),
    "star_coarse": len(engine.star._coarse_cache),
    "eigen_coarse": [len(b.coarse_cache) for b in engine.eigen],
}
print(json.dumps(built))
"""

_CLASSIFY_TWO_WORKERS = r"""
import json, sys
from multiprocessing import forkserver
from lamostdb.catalog.store import Catalog
from lamostdb.classify.stage import classify
with Catalog(sys.argv[1], mode="w") as cat:
    rep = classify(cat, workers=2, progress=False)
print(json.dumps({"n": rep.n_fitted, "preload": forkserver._forkserver._preload_modules}))
"""


def test_the_warm_module_builds_the_default_engine_and_its_first_use_arrays() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _WARM_PROBE], capture_output=True, text=True, check=True
    )
    built = json.loads(out.stdout.strip().splitlines()[-1])
    assert built == {
        "engines": 1,
        "tpl_jtb": True,
        "spline_coeffs": True,
        "star_coarse": 1,
        "eigen_coarse": [1, 1],
    }


_EXHAUSTIVE = EngineConfig(search=SearchConfig(exhaustive=True))


@pytest.mark.parametrize(
    ("config", "workers", "cluster", "expected"),
    [
        (DEFAULT_CONFIG, 2, None, "lamostdb.classify.warm"),
        (DEFAULT_CONFIG, None, None, "lamostdb.classify.warm"),
        (_EXHAUSTIVE, 2, None, "lamostdb.classify.partition"),
        (DEFAULT_CONFIG, 1, None, None),
        (DEFAULT_CONFIG, 2, "local:2", None),
    ],
)
def test_the_fork_server_preloads_the_engine_only_for_a_local_pool(
    monkeypatch: pytest.MonkeyPatch,
    config: EngineConfig,
    workers: int | None,
    cluster: str | None,
    expected: str | None,
) -> None:
    started: list[str] = []
    monkeypatch.setattr(forkserver, "start_fork_server", started.append)
    forkserver.start_workers_early(config, workers=workers, cluster=cluster)
    assert started == ([expected] if expected else [])


def test_workers_forked_from_the_warm_server_give_the_in_process_answers(tmp_path: Path) -> None:
    simulate_night(tmp_path / "night", n=48, seed=5)
    base = tmp_path / "base"
    with Catalog.create(base) as c:
        ingest(c, [tmp_path / "night" / "spectra", SHIPPED_SPECTRA], workers=1, progress=False)
    shutil.copytree(base, tmp_path / "pool")
    with Catalog(base, mode="w") as c:  # one worker: in this process, no fork server
        assert stage.classify(c, workers=1, progress=False).n_fitted == 48 + 18
    out = subprocess.run(  # a fresh process, so that its fork server is the classify one
        [sys.executable, "-c", _CLASSIFY_TWO_WORKERS, str(tmp_path / "pool")],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"n": 48 + 18, "preload": ["lamostdb.classify.warm"]}
    cols = "specid, class, subclass, z, z_err, rchi2, conf, zwarning, rv_kms"
    with lamostdb.open(base) as a, lamostdb.open(tmp_path / "pool") as b:
        serial = a.sql(f"SELECT {cols} FROM results ORDER BY specid")
        pooled = b.sql(f"SELECT {cols} FROM results ORDER BY specid")
        cand_a = a.sql("SELECT specid, rank, class, z, chi2 FROM candidates ORDER BY specid, rank")
        cand_b = b.sql("SELECT specid, rank, class, z, chi2 FROM candidates ORDER BY specid, rank")
    assert serial.height == 66
    assert serial.equals(pooled)
    assert cand_a.equals(cand_b)
    assert pl.Series(serial["class"]).n_unique() >= 2


_MALLOC_PROBE = r"""
import sys
from lamostdb.catalog import workers
first = workers.keep_freed_memory()
again = workers.keep_freed_memory()
print(first, again, len(workers._MALLOC_SET))
"""


def test_classify_workers_keep_freed_memory_once_per_process() -> None:
    # in a fresh process: the policy is process-wide, and this test process must keep its own
    out = subprocess.run(
        [sys.executable, "-c", _MALLOC_PROBE], capture_output=True, text=True, check=True
    )
    first, again, n_set = out.stdout.split()
    assert first == again
    assert n_set == "1"
    if sys.platform.startswith("linux"):
        assert first == "True"
