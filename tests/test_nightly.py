"""``lamostdb nightly``: all stages on one night, resumable after a crash or error at any point.

The oracle is an uninterrupted run on the same night files: after crashes (``os._exit``,
SIGKILL, exceptions) at every stage boundary and every step of every stage's commit, the
rerun must leave every table with the same content (run ids and timestamps aside) and no
stage run committed twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from conftest import SHIPPED_SPECTRA
from polars.testing import assert_frame_equal

import lamostdb
from lamostdb.catalog.commit import FAULT_POINTS, FaultInjected, fault
from lamostdb.catalog.store import Catalog, CatalogError
from lamostdb.cli.main import main
from lamostdb.pipeline import STAGES, NightlyError, NightlyOptions, NightlySummary, run_nightly
from lamostdb.sim import simulate_night

N_SPECTRA = 10
OPTIONS = NightlyOptions(workers=1, refcat_from_night=True, progress=False)
#: Columns that name a run or a time: different in every run, excluded from comparisons.
RUN_COLUMNS = {
    "ingest_run",
    "run_id",
    "xmatch_run_id",
    "superseded_by_run",
    "ingested_at",
    "quarantined_at",
    "checked_at",
}
#: Every table and view whose content must not depend on crashes, with its row key.
TABLES = {
    "spectra_history": ("specid", "source_sha256"),
    "spectra": ("specid",),
    "quarantine": ("path",),
    "ingest_ledger": ("sha256",),
    "ingest_paths": ("path",),
    "spectrum_versions": ("specid", "version"),
    "results_history": ("specid",),
    "results": ("specid",),
    "candidates_history": ("specid", "rank"),
    "candidates": ("specid", "rank"),
    "gaia": ("source_id",),
    "ps1": ("objID",),
    "refcat_ledger": ("sha256", "kind"),
    "xmatch_history": ("specid",),
    "xmatch": ("specid",),
    "objects_history": ("specid",),
    "objects": ("specid",),
    "uid_aliases": ("old_uid", "uid"),
    "lrs": ("specid",),
    "mec": ("uid",),
}


def snapshot(path: Path) -> dict[str, pl.DataFrame]:
    """Every table's rows without run ids and timestamps, sorted by key; plus bookkeeping."""
    with lamostdb.open(path) as cat:
        out = {}
        for name, key in TABLES.items():
            df = cat.sql(f"SELECT * FROM {name}")  # names from the fixed list above
            out[name] = df.drop([c for c in df.columns if c in RUN_COLUMNS]).sort(key)
        # each stage committed exactly once per table: nothing redone, nothing duplicated
        out["files"] = cat.sql(
            "SELECT table_name, sum(n_rows) AS n_rows, count(*) AS n_files "
            "FROM files GROUP BY ALL ORDER BY table_name"
        )
        out["runs"] = cat.sql(
            "SELECT stage, count(*) AS n FROM runs WHERE state = 'committed' "
            "AND stage <> 'nightly' GROUP BY ALL ORDER BY stage"
        )
    return out


def assert_same_content(path: Path, reference: dict[str, pl.DataFrame]) -> None:
    got = snapshot(path)
    for name, ref in reference.items():
        assert ref.height > 0 or name == "uid_aliases", f"reference {name} is empty"
        try:
            assert_frame_equal(got[name], ref, check_exact=True)
        except AssertionError as exc:
            raise AssertionError(
                f"table {name} differs from the uninterrupted run: {exc}"
            ) from None
    # staging debris of crashed runs is gone (stages leave the empty _staging folder)
    assert [p for p in (path / "_staging").rglob("*") if p.is_file()] == []
    with Catalog(path) as cat:
        listed = {str(p) for (p,) in cat.con.execute("SELECT path FROM files").fetchall()}
        n_open = cat.con.execute("SELECT count(*) FROM runs WHERE state = 'committing'").fetchall()[
            0
        ][0]
    on_disk = {
        str(p.relative_to(path))
        for p in path.glob("*/dataset/**/*.parquet")
        if p.name.startswith("part-")
    }
    assert on_disk == listed, "Parquet files on disk that the catalogue does not list"
    assert n_open == 0


def committed_runs(path: Path) -> Counter[str]:
    if not (path / "catalog.duckdb").exists():
        return Counter()
    with lamostdb.open(path) as cat:
        rows = cat.con.execute("SELECT stage FROM runs WHERE state = 'committed'").fetchall()
    return Counter(r[0] for r in rows)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated night with mock references and one damaged file."""
    out = tmp_path_factory.mktemp("nightly") / "night-00007"
    simulate_night(out, n=N_SPECTRA, seed=7)
    (out / "spectra" / "spec-damaged.fits").write_bytes(b"not a fits file" * 10)
    return out


@pytest.fixture(scope="module")
def reference(
    night: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, NightlySummary, dict[str, pl.DataFrame]]:
    """One uninterrupted nightly run: its catalogue, summary and content."""
    path = tmp_path_factory.mktemp("reference") / "cat"
    summary = run_nightly(path, night, OPTIONS)
    return path, summary, snapshot(path)


def test_one_run_does_every_stage_and_summarises_the_night(
    night: Path, reference: tuple[Path, NightlySummary, dict[str, pl.DataFrame]]
) -> None:
    path, summary, content = reference
    assert [s.name for s in summary.stages] == list(STAGES)
    assert summary.n_new_spectra == N_SPECTRA and summary.n_new_quarantined == 1
    assert summary.n_fitted == N_SPECTRA and summary.n_matched == N_SPECTRA
    assert summary.n_ids_written == N_SPECTRA and not summary.nothing_new
    assert summary.n_reference_rows_added == content["gaia"].height + content["ps1"].height
    state = summary.night
    assert (
        state.n_files,
        state.n_spectra,
        state.n_classified,
        state.n_matched,
        state.n_identified,
    ) == (N_SPECTRA + 1,) + (N_SPECTRA,) * 4
    expected = dict(content["results"]["class"].value_counts().iter_rows())
    assert state.classes == expected and sum(expected.values()) == N_SPECTRA
    damaged = str(night.resolve() / "spectra" / "spec-damaged.fits")
    assert [p for p, _ in state.quarantined] == [damaged]
    assert "FITS" in state.quarantined[0][1]
    assert set(summary.stage_seconds) == set(STAGES)
    assert all(v >= 0 for v in summary.stage_seconds.values())
    assert summary.total_s >= sum(summary.stage_seconds.values())
    assert summary.spectra_per_s == pytest.approx(N_SPECTRA / summary.total_s, abs=0.06)
    assert summary.missing_references == [] and summary.notes == []
    assert all(Path(summary.locations[t]).is_dir() for t in ("spectra", "results", "objects"))
    # every stage's committed run is named, and the summary is recorded as JSON
    for s in summary.stages:
        assert len(s.run_ids) == (2 if s.name == "refcat" else 1), s
    with lamostdb.open(path) as cat:
        rows = cat.sql("SELECT run_id, summary FROM runs WHERE stage = 'nightly'")
    assert rows["run_id"].to_list() == [summary.run_id]
    assert json.loads(rows["summary"][0]) == json.loads(json.dumps(summary.as_dict()))


def test_second_run_does_nothing_and_says_so(
    night: Path,
    reference: tuple[Path, NightlySummary, dict[str, pl.DataFrame]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "cat"
    shutil.copytree(reference[0], path)
    rc = main(
        ["nightly", str(path), str(night), "--workers", "1", "--refcat-from-night", "--quiet"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "nothing new" in out and "(0 new spectra, 0 fitted)" in out
    assert "classes: " + ", ".join(f"{k} {v}" for k, v in reference[1].night.classes.items()) in out
    assert "spec-damaged.fits: not a FITS file" in out
    rc = main(["nightly", str(path), str(night), "--workers", "1", "--quiet", "--json"])
    again = json.loads(capsys.readouterr().out)
    assert rc == 0 and again["nothing_new"]
    assert again["n_new_spectra"] == again["n_fitted"] == again["n_matched"] == 0
    assert all(s["run_ids"] == [] for s in again["stages"])
    assert again["night"] == json.loads(json.dumps(reference[1].as_dict()["night"]))
    # the mock references were not named this time: said, not loaded silently
    assert any("--refcat-from-night" in n for n in again["notes"])
    assert_same_content(path, reference[2])


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("stage", STAGES)
def test_exception_at_every_commit_step_of_a_stage_then_resume(
    stage: str,
    night: Path,
    reference: tuple[Path, NightlySummary, dict[str, pl.DataFrame]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stage that raises at each step of its commit in turn; the next run finishes it."""
    path = tmp_path / "cat"
    monkeypatch.setenv("LAMOSTDB_FAULT_ACTION", "raise")
    for point in FAULT_POINTS:
        monkeypatch.setenv("LAMOSTDB_FAULT", f"{stage}:{point}")
        with pytest.raises(NightlyError, match=f"stage {stage} failed: FaultInjected") as info:
            run_nightly(path, night, OPTIONS)
        assert isinstance(info.value.__cause__, FaultInjected)
        # before the commit's last step the stage left no committed run; at it, one
        n_stage = committed_runs(path)[stage]
        assert n_stage == (1 if point == "committed" else 0), (point, committed_runs(path))
        assert committed_runs(path)["nightly"] == 0
    monkeypatch.delenv("LAMOSTDB_FAULT")
    summary = run_nightly(path, night, OPTIONS)
    assert summary.night == reference[1].night
    assert_same_content(path, reference[2])


def cli(
    path: Path, night: Path, fault_at: str | None = None, action: str = "exit", *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMOSTDB_FAULT")}
    if fault_at:
        env |= {"LAMOSTDB_FAULT": fault_at, "LAMOSTDB_FAULT_ACTION": action}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "lamostdb.cli",
            "nightly",
            str(path),
            str(night),
            "--workers",
            "1",
            "--refcat-from-night",
            "--quiet",
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_processes_at_each_stage_boundary_then_resume(
    night: Path, reference: tuple[Path, NightlySummary, dict[str, pl.DataFrame]], tmp_path: Path
) -> None:
    """Real processes: SIGKILL after every stage, os._exit inside classify's commit."""
    path = tmp_path / "cat"
    done: list[str] = []
    chain = [(f"nightly:after_{s}", "kill") for s in STAGES]
    chain.insert(2, ("classify:moved", "exit"))  # dies after moving its files into place
    for point, action in chain:
        proc = cli(path, night, point, action)
        assert proc.returncode == (-9 if action == "kill" else 70), (point, proc.stderr)
        if point.startswith("nightly:after_"):
            done.append(point.removeprefix("nightly:after_"))
        runs = committed_runs(path)
        # exactly the stages before the boundary are in, each once (refcat: gaia and ps1)
        assert {s: runs[s] for s in STAGES} == {
            s: (2 if s == "refcat" else 1) * (s in done) for s in STAGES
        }, point
    proc = cli(path, night, None, "exit", "--json")
    assert proc.returncode == 0, proc.stderr
    final = json.loads(proc.stdout)
    assert final["nothing_new"]  # the last kill came after ids: all was done
    assert final["night"] == json.loads(json.dumps(reference[1].as_dict()["night"]))
    assert_same_content(path, reference[2])


def test_fault_points_match_only_their_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMOSTDB_FAULT_ACTION", "raise")
    monkeypatch.setenv("LAMOSTDB_FAULT", "classify:intent")
    fault("intent", "ingest")
    fault("intent")
    fault("moved", "classify")
    with pytest.raises(FaultInjected, match="classify:intent"):
        fault("intent", "classify")
    monkeypatch.setenv("LAMOSTDB_FAULT", "intent")  # unqualified: any stage
    with pytest.raises(FaultInjected):
        fault("intent", "ids")


def test_night_counts_cover_only_that_night(
    reference: tuple[Path, NightlySummary, dict[str, pl.DataFrame]], tmp_path: Path
) -> None:
    path = tmp_path / "cat"
    shutil.copytree(reference[0], path)
    night2 = tmp_path / "night2"
    shutil.copytree(SHIPPED_SPECTRA / "learninglamost", night2)
    summary = run_nightly(path, night2, NightlyOptions(workers=1, progress=False))
    n2 = len(list(night2.glob("*.fits")))
    assert summary.n_new_spectra == summary.n_fitted == summary.night.n_spectra == n2
    assert sum(summary.night.classes.values()) == n2 and summary.night.quarantined == []
    assert summary.n_matched == n2
    assert summary.n_reference_rows_added == 0 and summary.missing_references == []
    with lamostdb.open(path) as cat:
        n_objects = cat.sql("SELECT count(*) AS n FROM objects")["n"][0]
    assert n_objects == N_SPECTRA + n2  # ids covers every night, the summary this night


def test_unusable_night_folders_are_clear_errors(
    night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = tmp_path / "cat"
    with pytest.raises(NightlyError, match="no such folder"):
        run_nightly(cat, tmp_path / "missing", OPTIONS)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("clouds")
    with pytest.raises(NightlyError, match="holds no spectrum files"):
        run_nightly(cat, empty, OPTIONS)
    with pytest.raises(NightlyError, match="is a file, not a night folder"):
        run_nightly(cat, empty / "notes.txt", OPTIONS)
    with pytest.raises(NightlyError, match="holds neither gaia.parquet nor ps1.parquet"):
        run_nightly(cat, SHIPPED_SPECTRA / "cmost", OPTIONS)
    with pytest.raises(NightlyError, match="--gaia .*nope.parquet: no such file"):
        run_nightly(cat, night, NightlyOptions(gaia_files=(tmp_path / "nope.parquet",)))
    assert not cat.exists()  # nothing is created for a night that cannot run
    assert main(["nightly", str(cat), str(empty)]) == 2
    assert "lamostdb nightly: error:" in capsys.readouterr().err


def test_a_catalogue_held_by_another_writer_is_a_clear_error(
    night: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cat"
    Catalog.create(path).close()
    with open(path / ".lock", "a+") as fh:  # what a writing stage holds
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CatalogError, match="locked by another writing process"):
            run_nightly(path, night, OPTIONS)
    holder = subprocess.Popen(  # another process with the catalogue open for writing
        [
            sys.executable,
            "-c",
            "import sys; from lamostdb.catalog.store import Catalog; "
            f"c = Catalog({str(path)!r}, mode='w'); print('open', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert main(["nightly", str(path), str(night), "--quiet"]) == 2
        assert "Another process may be writing" in capsys.readouterr().err
    finally:
        holder.communicate("", timeout=60)
    assert committed_runs(path) == Counter()  # nothing ran


def _running_in_group(pgid: int) -> list[int]:
    """Pids of the processes of process group ``pgid`` that still run (zombies aside)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("delays", [(2.5, 6.0)])  # in ingest, in classify (roughly)
def test_sigkill_of_nightly_with_workers_leaves_no_worker_and_no_stray_file(
    night: Path, tmp_path: Path, delays: tuple[float, ...]
) -> None:
    """kill -9 of the nightly process alone (not its workers) at several moments: its
    workers die with it, the rerun cleans staging after they are gone, nothing is written
    into staging afterwards, and the tables are those of an uninterrupted run.

    (benchmarks/bench_kill9.py runs the 20-trial version on a larger night.)
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMOSTDB_FAULT")}
    args = ["--workers", "2", "--chunk-size", "2", "--refcat-from-night", "--quiet"]
    # the reference with the same options (one BLAS thread per worker: last digits differ)
    subprocess.run(
        [sys.executable, "-m", "lamostdb.cli", "nightly", str(tmp_path / "ref"), str(night), *args],
        env=env,
        check=True,
        capture_output=True,
        timeout=240,
    )
    reference = snapshot(tmp_path / "ref")
    for i, delay in enumerate(delays):
        path = tmp_path / f"cat{i}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "lamostdb.cli", "nightly", str(path), str(night), *args],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)  # the stage process only: workers are its business
        proc.wait()
        rerun = subprocess.run(
            [sys.executable, "-m", "lamostdb.cli", "nightly", str(path), str(night), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert rerun.returncode == 0, rerun.stderr
        time.sleep(2.0)  # a surviving worker would write its staged files by now
        assert _running_in_group(proc.pid) == [], f"workers outlived the kill at {delay} s"
        assert not [p for p in (path / "_staging").rglob("*") if p.is_file()], delay
        assert_same_content(path, reference)
