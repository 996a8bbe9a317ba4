"""``lamostdb compact``: same rows and answers, fewer files, mixed-order leaves, atomic."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import hats
import numpy as np
import pandas as pd
import pytest

import lamostdb
from lamostdb.catalog.commit import RETIRE_FAULT_POINT, FaultInjected
from lamostdb.catalog.compact import compact
from lamostdb.catalog.leaves import LeafSet, pixel_range, plan_leaves
from lamostdb.catalog.retire import RETIRED
from lamostdb.catalog.store import Catalog
from lamostdb.cli.main import main
from lamostdb.ids import assign_ids
from lamostdb.ingest.stage import ingest
from lamostdb.pipeline import NightlyOptions, run_nightly
from lamostdb.refcat import ingest_refcat
from lamostdb.sim import simulate_night
from lamostdb.xmatch import xmatch

with warnings.catch_warnings():
    # lsdb 0.11 sets a pandas option that pandas 3 deprecates (a warning at import)
    warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
    import lsdb

pytestmark = [  # lsdb 0.11 / nested-pandas 0.7 use pandas keywords pandas 3.1 deprecates
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
]

TABLES = ("spectra", "gaia", "ps1", "xmatch", "objects")
SPECTRUM_TABLES = ["spectra", "xmatch", "objects"]  # ~120 rows: a few rows per leaf
REFERENCE_TABLES = ["gaia", "ps1"]  # ~30,000 rows each
#: Everything a user sees: tables (history included) and views, in a fixed order.
QUERIES = {
    "spectra_history": "SELECT * FROM spectra_history ORDER BY specid, source_sha256",
    "spectra": "SELECT specid, obsid, ra, dec, flux FROM spectra ORDER BY specid",
    "gaia": "SELECT * FROM gaia ORDER BY source_id",
    "ps1": "SELECT * FROM ps1 ORDER BY objID",
    "xmatch": "SELECT * FROM xmatch ORDER BY specid, source_sha256, run_id",
    "objects": "SELECT * FROM objects ORDER BY specid, source_sha256, run_id",
    "lrs": "SELECT * FROM lrs ORDER BY specid",
    "mec": "SELECT * FROM mec ORDER BY uid",
    "cone": "SELECT count(*) AS n FROM spectra",
}


def _build(base: Path, nights: int) -> Path:
    cat = base / "cat"
    with Catalog.create(cat) as c:
        for i in range(nights):
            night = base / f"night{i}"
            simulate_night(night, n=40, seed=300 + i)
            ingest(c, [night / "spectra"], workers=1, progress=False)
            for kind in ("gaia", "ps1"):
                ingest_refcat(c, kind, [night / f"{kind}.parquet"], progress=False)
            xmatch(c, progress=False)
            assign_ids(c, progress=False)
    return cat


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small simulated nights, every stage but classify (read-only: copy it)."""
    return _build(tmp_path_factory.mktemp("compact"), 3)


@pytest.fixture()
def cat(built: Path, tmp_path: Path) -> Path:
    out = tmp_path / "cat"
    shutil.copytree(built, out)
    return out


def _answers(path: Path) -> dict[str, object]:
    with lamostdb.open(path) as c:
        out: dict[str, object] = {k: c.sql(q).to_dicts() for k, q in QUERIES.items()}
        ra, dec = out["spectra"][0]["ra"], out["spectra"][0]["dec"]  # type: ignore[index]
        out["cone_search"] = c.cone(ra, dec, 7200.0)["specid"].to_list()
    return out


def _files(path: Path) -> dict[str, list[tuple[int, int]]]:
    """Table -> leaves (norder, npix) of its committed files, one entry per file."""
    with lamostdb.open(path) as c:
        rows = c.sql("SELECT table_name, norder, npix FROM files ORDER BY path").rows()
    out: dict[str, list[tuple[int, int]]] = {}
    for t, o, n in rows:
        out.setdefault(t, []).append((int(o), int(n)))
    return out


def _check_hats(path: Path) -> None:
    """hats opens every table, its leaves are the registry's, no two overlap, and each leaf
    folder holds exactly the rows the registry says (no retired file left beside them)."""
    files = _files(path)
    with lamostdb.open(path) as c:
        n_rows = dict(c.sql("SELECT table_name, sum(n_rows)::BIGINT FROM files GROUP BY 1").rows())
        per_leaf = {
            (t, int(o), int(n)): int(r)
            for t, o, n, r in c.sql(
                "SELECT table_name, norder, npix, sum(n_rows)::BIGINT FROM files GROUP BY ALL"
            ).rows()
        }
    for table in TABLES:
        hc = hats.read_hats(path / table)
        pixels = {(p.order, p.pixel) for p in hc.get_healpix_pixels()}
        assert pixels == set(files[table])
        assert hc.catalog_info.total_rows == n_rows[table]
        ranges = sorted(pixel_range(o, n) for o, n in pixels)
        assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:], strict=False)), table
        for p in hc.get_healpix_pixels()[:5]:
            assert len(hc.read_pixel_to_pandas(p)) == per_leaf[(table, p.order, p.pixel)]
        # and LSDB reads every row, once
        assert (
            len(lsdb.read_hats(path / table, columns=["_healpix_29"]).compute()) == n_rows[table]
        ), table


def test_plan_leaves_splits_dense_pixels_and_merges_sparse_ones() -> None:
    rng = np.random.default_rng(1)
    dense = (np.int64(5) << np.int64(2 * 29 - 8)) + rng.integers(0, 1 << 40, 500)  # order-4 px
    sparse = rng.integers(0, 12 << 58, 30)
    hp = np.sort(np.concatenate([dense, sparse]).astype(np.int64))
    plan = plan_leaves(hp, 100)
    assert sum(p.n_rows for p in plan) == hp.size and all(p.n_rows <= 100 for p in plan)
    orders = {p.norder for p in plan}
    assert min(orders) == 0 and max(orders) > 4  # sparse sky coarse, the dense pixel split
    for p in plan:
        lo, hi = pixel_range(p.norder, p.npix)
        assert p.n_rows == int(((hp >= lo) & (hp < hi)).sum())


def test_route_puts_rows_in_existing_leaves_or_new_ones_that_overlap_none() -> None:
    leaves = LeafSet([(5, 4 * 7), (6, 4 * (4 * 7 + 1) + 2)])  # inside order-4 pixel 7
    lo, hi = pixel_range(4, 7)
    hp = np.linspace(lo, hi - 1, 64).astype(np.int64)
    orders, pix = leaves.route(hp, 4)
    got = set(zip(orders.tolist(), pix.tolist(), strict=True))
    assert (5, 28) in got and (6, 4 * 29 + 2) in got
    assert (5, 30) in got and (5, 31) in got and (6, 4 * 29) in got  # new, no overlap
    ranges = sorted(pixel_range(o, n) for o, n in leaves.leaves)
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    for (o, n), h in zip(zip(orders.tolist(), pix.tolist(), strict=True), hp, strict=True):
        assert pixel_range(o, n)[0] <= h < pixel_range(o, n)[1]


def test_compact_keeps_every_answer_and_drops_the_file_count(cat: Path) -> None:
    before, files_before = _answers(cat), _files(cat)
    _check_hats(cat)
    with Catalog(cat, mode="w") as w:
        rep = compact(w)
    assert _answers(cat) == before
    _check_hats(cat)
    after = _files(cat)
    for table in TABLES:
        assert len(after[table]) < len(files_before[table]), table
        assert len(after[table]) == len(set(after[table]))  # one file per leaf
    assert rep.files_after == sum(len(v) for v in after.values()) < rep.files_before
    with Catalog(cat, mode="w") as w:  # a second run finds nothing to do
        again = compact(w)
    assert [t.run_id for t in again.tables] == [None] * len(TABLES)
    assert _files(cat) == after


def _split(w: Catalog) -> None:
    """Compact to small leaves: mixed orders in every table."""
    compact(w, max_rows=15, tables=SPECTRUM_TABLES)
    compact(w, max_rows=2000, tables=REFERENCE_TABLES)


@pytest.mark.slow
def test_split_gives_mixed_orders_and_later_nights_keep_leaves_disjoint(
    cat: Path, tmp_path: Path
) -> None:
    before = _answers(cat)
    with Catalog(cat, mode="w") as w:
        _split(w)
    assert _answers(cat) == before
    _check_hats(cat)
    files = _files(cat)
    for table in TABLES:
        assert len({o for o, _ in files[table]}) >= 2, table  # mixed Norder
    assert max(o for o, _ in files["gaia"]) > 4 and min(o for o, _ in files["spectra"]) < 4
    # a new night, written at order 4, lands in the compacted leaves (moved or split)
    night = tmp_path / "night9"
    simulate_night(night, n=40, seed=309)
    with Catalog(cat, mode="w") as w:
        ingest(w, [night / "spectra"], workers=1, progress=False)
        ingest_refcat(w, "gaia", [night / "gaia.parquet"], progress=False)
        xmatch(w, progress=False)
    _check_hats(cat)
    with lamostdb.open(cat) as c:
        assert c.sql("SELECT count(*) AS n FROM xmatch")["n"][0] == len(before["spectra"]) + 40


def test_reader_opened_before_compact_keeps_reading(cat: Path) -> None:
    with lamostdb.open(cat) as reader:
        first = reader.sql(QUERIES["spectra"]).to_dicts()
        with Catalog(cat, mode="w") as w:
            _split(w)
        assert (cat / RETIRED).is_dir()  # old files moved out of the leaves, kept for it
        assert reader.sql(QUERIES["spectra"]).to_dicts() == first
        assert reader.spectrum(specid=first[0]["specid"]).specid == first[0]["specid"]
    # once no snapshot lists them, the next compact removes the retired files
    with Catalog(cat, mode="w") as w:
        rep = compact(w, max_rows=15, tables=SPECTRUM_TABLES, keep_snapshots=0, grace_s=0.0)
    assert [t.run_id for t in rep.tables] == [None] * 3
    assert rep.n_retired_removed > 0 and not (cat / RETIRED).exists()
    on_disk = {str(p.relative_to(cat)) for t in TABLES for p in (cat / t).rglob("*.parquet")}
    assert on_disk == {p for t in TABLES for p in _paths(cat, t)}


def _paths(cat: Path, table: str) -> list[str]:
    with lamostdb.open(cat) as c:
        return [
            str(p)
            for p in c.sql("SELECT path FROM files WHERE table_name = $t", {"t": table})["path"]
        ]


@pytest.mark.slow
@pytest.mark.parametrize("point", ["metadata", RETIRE_FAULT_POINT])  # before / after commit
def test_crash_mid_compact_leaves_before_or_after_and_a_rerun_finishes(
    cat: Path, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, files_before = _answers(cat), _files(cat)
    monkeypatch.setenv("LAMOSTDB_FAULT", f"compact:{point}")
    monkeypatch.setenv("LAMOSTDB_FAULT_ACTION", "raise")
    with pytest.raises(FaultInjected), Catalog(cat, mode="w") as w:
        compact(w, max_rows=15, tables=SPECTRUM_TABLES)
    monkeypatch.delenv("LAMOSTDB_FAULT")
    # readers, and hats once the next writer has recovered, see a whole catalogue
    assert _answers(cat) == before
    for table in TABLES:
        assert hats.read_hats(cat / table).catalog_info.total_rows > 0
    with Catalog(cat, mode="w"):
        pass  # recovery
    _check_hats(cat)
    crashed = _files(cat)
    n_changed = sum(crashed[t] != files_before[t] for t in TABLES)
    assert n_changed == (0 if point == "metadata" else 1)  # spectra: the first table
    with Catalog(cat, mode="w") as w:
        rep = compact(w, max_rows=15, tables=SPECTRUM_TABLES)
    assert [t.run_id is None for t in rep.tables] == [n_changed == 1] + [False] * 2
    assert _answers(cat) == before
    _check_hats(cat)
    with lamostdb.open(cat) as c:
        assert c.sql("SELECT count(*) AS n FROM runs WHERE state = 'committing'")["n"][0] == 0


def test_cli_compact_prints_file_counts(cat: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n_before = sum(len(v) for v in _files(cat).values())
    assert main(["compact", str(cat), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["files_before"] == n_before
    assert rep["files_after"] == sum(len(v) for v in _files(cat).values()) < n_before
    assert main(["compact", str(cat)]) == 0
    assert "already compact" in capsys.readouterr().out


@pytest.mark.slow
def test_nightly_compact_keeps_results_and_every_view(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    night = tmp_path / "night"
    simulate_night(night, n=10, seed=17)
    cat = tmp_path / "cat"
    run_nightly(cat, night, NightlyOptions(workers=1, refcat_from_night=True, progress=False))
    queries = {
        **QUERIES,
        "results": "SELECT * FROM results_history ORDER BY specid",
        "candidates": "SELECT * FROM candidates_history ORDER BY specid, rank",
    }
    with lamostdb.open(cat) as c:
        before = {k: c.sql(q).to_dicts() for k, q in queries.items()}
    assert len(before["results"]) == 10 and len(before["lrs"]) == 10
    assert (
        main(["nightly", str(cat), str(night), "--workers", "1", "--quiet", "--json", "--compact"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["stages"][-1]["name"] == "compact" and summary["nothing_new"]
    assert len(summary["stages"][-1]["run_ids"]) == 7  # every table (gaia, ps1 included)
    with lamostdb.open(cat) as c:
        assert {k: c.sql(q).to_dicts() for k, q in queries.items()} == before
        per_leaf = c.sql("SELECT count(*) AS n FROM files GROUP BY table_name, norder, npix")
    assert per_leaf["n"].max() == 1
    for table in ("results", "candidates"):
        assert hats.read_hats(cat / table).catalog_info.total_rows == len(before[table])
