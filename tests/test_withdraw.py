"""Withdrawing spectra, and stages that one bad stored spectrum cannot stop.

``lamostdb withdraw`` takes spectra out of every view and stage, in one audited commit.
Classify fits a stored row whose arrays cannot be used as an unplugged spectrum, and export
leaves out (and names) a spectrum whose file cannot be made, instead of failing for all.
Damaged stored rows are made by rewriting a committed Parquet file, as a catalogue written
by an older, less strict reader would hold them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lamostdb
from lamostdb.catalog.commit import FaultInjected
from lamostdb.catalog.store import Catalog
from lamostdb.catalog.withdraw import WithdrawError, withdraw
from lamostdb.classify.stage import classify
from lamostdb.cli.main import main
from lamostdb.export import export_release
from lamostdb.ingest.stage import ingest
from lamostdb.match.zwarning import ZWarning
from lamostdb.pipeline import NightlyOptions, run_nightly
from lamostdb.sim import simulate_night

OPTIONS = NightlyOptions(workers=1, refcat_from_night=True, progress=False)
VIEWS = ("spectra", "results", "candidates", "xmatch", "objects", "lrs")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(night folder, catalogue after one nightly run on it): copy before changing."""
    work = tmp_path_factory.mktemp("withdraw")
    night = work / "night-00011"
    simulate_night(night, n=10, seed=11)
    run_nightly(work / "cat", night, OPTIONS)
    return night, work / "cat"


@pytest.fixture()
def cat_copy(built: tuple[Path, Path], tmp_path: Path) -> Path:
    dst = tmp_path / "cat"
    shutil.copytree(built[1], dst)
    return dst


def _specids(path: Path, view: str = "spectra") -> list[str]:
    with lamostdb.open(path) as cat:
        return cat.sql(f"SELECT DISTINCT specid FROM {view} ORDER BY specid")["specid"].to_list()


def _count(path: Path, query: str) -> int:
    with lamostdb.open(path) as cat:
        return int(cat.sql(query).row(0)[0])


def test_withdrawn_spectra_leave_every_view_and_the_export(
    cat_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    all_ids = _specids(cat_copy)
    gone = all_ids[:2]
    with lamostdb.open(cat_copy) as cat:
        obsids = dict(cat.sql("SELECT specid, obsid FROM spectra").iter_rows())
    assert main(["withdraw", str(cat_copy), *gone, "--reason", "IVAR shorter than FLUX"]) == 0
    assert "withdrew 2 spectra" in capsys.readouterr().out
    for view in VIEWS:
        ids = _specids(cat_copy, view)
        assert set(ids) == set(all_ids) - set(gone), view
    with lamostdb.open(cat_copy) as cat:
        rows = cat.sql("SELECT * FROM withdrawn ORDER BY specid").to_dicts()
        n_history = cat.sql(
            f"SELECT count(*) FROM spectra_history WHERE specid IN ('{gone[0]}', '{gone[1]}')"
        ).row(0)[0]
        run = cat.sql("SELECT state, summary FROM runs WHERE stage = 'withdraw'").to_dicts()
        mec_epochs = cat.sql("SELECT sum(n_epochs) FROM mec").row(0)[0]
    assert [r["specid"] for r in rows] == gone
    assert all(
        r["reason"] == "IVAR shorter than FLUX"
        and "lamostdb withdraw" in r["withdrawn_by"]
        and r["obsid"] == obsids[r["specid"]]
        and r["version"] == 1
        for r in rows
    )
    assert n_history == 2  # nothing deleted
    assert len(run) == 1 and run[0]["state"] == "committed"
    assert rows[0]["run_id"] == rows[1]["run_id"]
    assert json.loads(run[0]["summary"])["withdrawn"] == gone
    assert mec_epochs == len(all_ids) - 2
    # the stages have nothing to do for them, and the release leaves them out
    with Catalog(cat_copy, mode="w") as cat:
        assert classify(cat, progress=False).n_todo == 0
        rep = export_release(cat, tmp_path / "rel", release="T", progress=False)
    assert rep.n_spectra == len(all_ids) - 2 and not rep.not_written
    written = {p.name for p in (tmp_path / "rel").rglob("spec-*.fits")}
    assert written == {f"spec-{s}.fits" for s in all_ids[2:]}
    # a second withdrawal of the same spectra changes nothing and says so
    assert main(["withdraw", str(cat_copy), *gone, "--reason", "again"]) == 0
    assert "already withdrawn" in capsys.readouterr().out
    assert _count(cat_copy, "SELECT count(*) FROM withdrawn") == 2


def test_unknown_specids_are_an_error_and_nothing_is_written(
    cat_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = _specids(cat_copy)[0]
    n_runs = _count(cat_copy, "SELECT count(*) FROM runs")
    rc = main(["withdraw", str(cat_copy), known, "no-such-spectrum", "--reason", "x"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "no-such-spectrum" in err and "nothing was withdrawn" in err
    assert _count(cat_copy, "SELECT count(*) FROM withdrawn") == 0
    assert _count(cat_copy, "SELECT count(*) FROM runs") == n_runs
    assert known in _specids(cat_copy)
    with Catalog(cat_copy, mode="w") as cat, pytest.raises(WithdrawError, match="reason"):
        withdraw(cat, [known], reason="  ")


def test_a_crash_inside_the_commit_withdraws_nothing(
    cat_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _specids(cat_copy)[0]
    monkeypatch.setenv("LAMOSTDB_FAULT", "withdraw:metadata")
    monkeypatch.setenv("LAMOSTDB_FAULT_ACTION", "raise")
    with Catalog(cat_copy, mode="w") as cat, pytest.raises(FaultInjected):
        withdraw(cat, [target], reason="test")
    monkeypatch.delenv("LAMOSTDB_FAULT")
    with Catalog(cat_copy, mode="w"):  # recovery marks the run rolled back
        pass
    assert target in _specids(cat_copy)
    assert _count(cat_copy, "SELECT count(*) FROM withdrawn") == 0
    assert (
        _count(
            cat_copy, "SELECT count(*) FROM runs WHERE stage = 'withdraw' AND state = 'rolled_back'"
        )
        == 1
    )


def test_the_same_bytes_delivered_again_stay_withdrawn(
    built: tuple[Path, Path], cat_copy: Path, tmp_path: Path
) -> None:
    night = built[0]
    target = _specids(cat_copy)[0]
    with lamostdb.open(cat_copy) as cat:
        src = Path(
            cat.sql("SELECT source_path FROM spectra WHERE specid = $s", {"s": target}).row(0)[0]
        )
    with Catalog(cat_copy, mode="w") as cat:
        withdraw(cat, [target], reason="bad fibre")
    again = tmp_path / "redelivery"
    again.mkdir()
    shutil.copy2(src, again / "copy.fits")  # same bytes under a new path
    with Catalog(cat_copy, mode="w") as cat:
        rep = ingest(cat, [night, again], workers=1, progress=False)
    assert target not in _specids(cat_copy)
    assert rep.n_ingested == 0
    assert any(p.endswith("copy.fits") and "withdrawn" in why for p, why in rep.skipped)


def _damage(path: Path, changes: dict[int, Callable[[dict[str, Any]], None]]) -> list[str]:
    """Apply ``changes`` (row number in specid order -> edit of the row) to the stored rows."""
    wanted = dict(zip(_specids(path), range(10**6), strict=False))
    by_index = {}
    for f in sorted((path / "spectra" / "dataset").rglob("*.parquet")):
        table = pq.read_table(f)
        rows = table.to_pylist()
        touched = False
        for row in rows:
            i = wanted.get(row["specid"])
            if i in changes:
                changes[i](row)
                by_index[i] = row["specid"]
                touched = True
        if touched:
            pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), f)
    assert len(by_index) == len(changes)
    return [by_index[i] for i in sorted(changes)]


def _short_ivar(row: dict[str, Any]) -> None:
    row["ivar"] = row["ivar"][:100]


def _null_andmask(row: dict[str, Any]) -> None:
    row["andmask"] = None


def _unsafe_planid(row: dict[str, Any]) -> None:
    row["planid"] = "../../x"


def _null_pixel(row: dict[str, Any]) -> None:
    row["flux"] = [None] + row["flux"][1:]


def test_classify_fits_unusable_rows_as_unplugged_and_goes_on(cat_copy: Path) -> None:
    bad = _damage(cat_copy, {0: _short_ivar, 3: _null_andmask})
    with Catalog(cat_copy, mode="w") as cat:
        rep = classify(cat, rerun=True, workers=1, progress=False)
    assert rep.n_fitted == rep.n_todo == 10
    assert sorted(s for s, _ in rep.unusable) == sorted(bad), rep.unusable
    reasons = dict(rep.unusable)
    assert "IVAR is not as long as FLUX" in reasons[bad[0]]
    assert "ANDMASK" in reasons[bad[1]]  # stored as an empty list, or null
    with lamostdb.open(cat_copy) as cat:
        res = {
            r["specid"]: r
            for r in cat.sql("SELECT specid, zwarning, n_good, run_id FROM results").to_dicts()
        }
        summary = json.loads(
            cat.sql("SELECT summary FROM runs WHERE run_id = $r", {"r": rep.run_id}).row(0)[0]
        )
    assert len(res) == 10 and {r["run_id"] for r in res.values()} == {rep.run_id}
    for s in bad:
        assert res[s]["n_good"] == 0 and res[s]["zwarning"] & ZWarning.UNPLUGGED
    assert sum(bool(r["zwarning"] & ZWarning.UNPLUGGED) for r in res.values()) == 2
    assert sorted(s for s, _ in summary["unusable"]) == sorted(bad)


def test_export_names_the_spectra_it_cannot_write_and_writes_the_rest(
    cat_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _damage(cat_copy, {1: _short_ivar, 4: _unsafe_planid, 6: _null_pixel})
    out = tmp_path / "rel"
    rc = main(["export", str(cat_copy), str(out), "--release", "T", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "Resource In Use" not in err
    manifest = json.loads((out / "manifest.json").read_text())
    not_written = {d["specid"]: d["reason"] for d in manifest["not_written"]}
    assert sorted(not_written) == sorted(bad)
    assert "ivar has 100 values" in not_written[bad[0]]
    assert "planid '../../x'" in not_written[bad[1]]
    assert "null pixel values" in not_written[bad[2]]
    assert all(s in err for s in bad)
    written = {p.name for p in out.rglob("spec-*.fits")}
    assert len(written) == 7 and not written & {f"spec-{s}.fits" for s in bad}
    assert manifest["counts"]["spectra"] == 7 and manifest["counts"]["not_written"] == 3


def test_a_catalogue_of_an_older_version_opens_read_only(cat_copy: Path) -> None:
    """Before any writer of this version opened it, it has no withdrawn table: none withdrawn."""
    n = len(_specids(cat_copy))
    con = duckdb.connect(str(cat_copy / "catalog.duckdb"))
    con.execute("DROP TABLE withdrawn")
    con.close()
    assert len(_specids(cat_copy)) == n
    assert _count(cat_copy, "SELECT count(*) FROM withdrawn") == 0
