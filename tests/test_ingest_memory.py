"""Issue 11: bounded memory per file. A gzip bomb and a sparse 3 GiB file are quarantined
with the cap as the reason, and no ingest process passes 500 MB of RSS on the way.

Before the fix a 1.1 MB bomb took the worker to 2.4 GB and the sparse file to 3.4 GB.
The figures are measured in a child process (``benchmarks/bench_ingest_memory.py``,
which prints them) as the kernel reports them (``VmHWM``, the peak resident set of each process).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from lamostdb.catalog.store import Catalog
from lamostdb.ingest.stage import ingest
from lamostdb.io.validate import ReadLimits

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_ingest_memory.py"
RSS_BOUND_MB = 500


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ingest_memory", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("workers", [1, 2])
def test_gzip_bomb_and_sparse_file_are_quarantined_within_500_mb(
    tmp_path: Path, workers: int
) -> None:
    bench = _bench()
    night = tmp_path / "night"
    night.mkdir()
    size = bench.write_gzip_bomb(night / "spec-bomb.fits.gz", 1.0)
    assert size < 1_500_000  # ~1 MB that inflates to 1 GiB
    bench.write_sparse(night / "spec-sparse.fits")
    assert (night / "spec-sparse.fits").stat().st_size == 3 << 30
    shutil.copyfile(bench.GOOD, night / bench.GOOD.name)
    res = bench.measure(night, workers)
    reasons = {Path(p).name: r for p, r in res["quarantined"]}
    assert set(reasons) == {"spec-bomb.fits.gz", "spec-sparse.fits"}
    assert "ReadLimits.max_fits_bytes" in reasons["spec-bomb.fits.gz"]
    assert "ReadLimits.max_file_bytes" in reasons["spec-sparse.fits"]
    assert "3,221,225,472 bytes" in reasons["spec-sparse.fits"]
    assert res["n_ingested"] == 1
    for key in ("peak_worker_rss_mb", "child_peak_rss_mb"):
        assert 0 < res[key] <= RSS_BOUND_MB, (key, res[key])


def test_the_caps_come_from_the_limits_passed_to_ingest(tmp_path: Path) -> None:
    bench = _bench()
    night = tmp_path / "night"
    night.mkdir()
    shutil.copyfile(bench.GOOD, night / bench.GOOD.name)  # 206 kB plain FITS
    bomb = night / "spec-bomb.fits.gz"
    bench.write_gzip_bomb(bomb, 0.0)  # one 64 MiB member: exactly at the default cap
    limits = ReadLimits(max_file_bytes=100_000, max_fits_bytes=1 << 20)
    with Catalog.create(tmp_path / "cat") as cat:
        rep = ingest(cat, [night], workers=1, progress=False, limits=limits)
    reasons = {Path(p).name: r for p, r in rep.quarantined}
    assert rep.n_ingested == 0
    assert "above the cap of 100,000 (ReadLimits.max_file_bytes)" in reasons[bench.GOOD.name]
    assert "above the cap of 1,048,576 (ReadLimits.max_fits_bytes)" in reasons[bomb.name]
    # the same files with the default caps: the good one goes in, the bomb does not
    with Catalog.create(tmp_path / "cat2") as cat:
        rep = ingest(cat, [night], workers=1, progress=False)
    assert rep.n_ingested == 1 and [Path(p).name for p, _ in rep.quarantined] == [bomb.name]
