"""The ingest ledger: one outcome per discovered path, counts that add up, unreadable
folders reported, quarantine cleared when a file is fixed, the (size, mtime, inode) skip,
and re-delivered original bytes made current again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest
from astropy.io import fits

import lamostdb
from lamostdb.catalog.store import Catalog
from lamostdb.cli.exits import EXIT_INCOMPLETE
from lamostdb.cli.main import main
from lamostdb.ingest.stage import IngestReport, ingest
from lamostdb.sim import simulate_night

JUNK = b"not a fits file" * 10


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four simulated spectrum files (read-only: copy them before changing)."""
    night = tmp_path_factory.mktemp("ledger") / "night-00021"
    simulate_night(night, n=4, seed=21)
    files = sorted((night / "spectra").glob("*.fits"))
    assert len(files) == 4
    return files


def _ingest(cat: Path, *inputs: Path) -> IngestReport:
    with Catalog.create(cat) as c:
        return ingest(c, list(inputs), workers=1, progress=False)


def _paths(cat: Path) -> dict[str, tuple[str, str | None]]:
    with lamostdb.open(cat) as c:
        rows = c.sql("SELECT path, outcome, reason FROM ingest_paths").rows()
    return {Path(p).name: (o, r) for p, o, r in rows}


def _count(cat: Path, query: str) -> int:
    with lamostdb.open(cat) as c:
        return int(c.sql(query).row(0)[0])


def test_every_path_ends_in_one_outcome_and_the_counts_add_up(
    good: list[Path], tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for f in good:
        shutil.copy2(f, src / f.name)
    shutil.copy2(good[0], src / "copy.fits")  # same bytes as a good file
    for i in range(3):
        (src / f"empty{i}.fits").write_bytes(b"")  # identical damaged files
    for i in range(2):
        (src / f"junk{i}.fits").write_bytes(JUNK)
    cat = tmp_path / "cat"
    rep = _ingest(cat, src)
    assert rep.n_inputs == 10 == rep.n_accounted
    assert (rep.n_ingested, rep.n_duplicate_content, rep.n_quarantined, rep.n_skipped) == (
        4,
        1,
        5,
        0,
    )
    got = _paths(cat)
    assert len(got) == 10
    assert {n for n, (o, _) in got.items() if o == "quarantined"} == {
        "empty0.fits",
        "empty1.fits",
        "empty2.fits",
        "junk0.fits",
        "junk1.fits",
    }
    assert all(r for n, (o, r) in got.items() if o == "quarantined")  # each with its reason
    # of two paths with the same bytes the first in path order is stored
    assert got["copy.fits"] == ("ingested", None)
    assert got[good[0].name][0] == "duplicate" and "copy.fits" in (got[good[0].name][1] or "")
    assert sorted(p for p, _ in rep.quarantined) == sorted(
        str((src / n).resolve()) for n, (o, _) in got.items() if o == "quarantined"
    )
    assert _count(cat, "SELECT count(*) FROM quarantine") == 2  # one row per content
    # nothing changed: every path is skipped without being read, and still counted
    again = _ingest(cat, src)
    assert again.n_inputs == again.n_accounted == again.n_unchanged == 10
    assert again.bytes_read == 0


def test_an_unreadable_folder_is_reported_and_the_exit_status_says_so(
    good: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "in"
    locked = src / "locked"
    locked.mkdir(parents=True)
    shutil.copy2(good[0], src / good[0].name)
    shutil.copy2(good[1], locked / good[1].name)
    if os.geteuid() == 0:  # root reads a chmod-000 folder anyway: simulate the refusal
        real_scandir = os.scandir

        def scandir(path: object = ".") -> object:
            if Path(str(path)).resolve() == locked.resolve():
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "scandir", scandir)
    else:
        locked.chmod(0)
    try:
        rc = main(["ingest", str(tmp_path / "cat"), str(src), "--workers", "1", "--quiet"])
    finally:
        locked.chmod(0o755)
    out = capsys.readouterr()
    assert rc == EXIT_INCOMPLETE == 3
    assert f"folder {locked}" in out.err and "Permission denied" in out.err
    assert "1 ingested" in out.out
    with lamostdb.open(tmp_path / "cat") as c:
        summary = c.sql("SELECT summary FROM runs WHERE stage = 'ingest'").row(0)[0]
    assert str(locked) in summary  # the run's JSON summary names it too (unreadable_dirs)


def test_a_fixed_quarantined_file_clears_its_quarantine_row(
    good: list[Path], tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    bad = src / "spec-fixed.fits"
    bad.write_bytes(JUNK)
    cat = tmp_path / "cat"
    first = _ingest(cat, src)
    assert first.n_quarantined == 1
    assert _count(cat, "SELECT count(*) FROM quarantine") == 1
    shutil.copyfile(good[2], bad)  # the survey delivers a fixed file under the same name
    fixed = _ingest(cat, src)
    assert (fixed.n_ingested, fixed.n_quarantine_cleared) == (1, 1)
    assert _count(cat, "SELECT count(*) FROM quarantine") == 0
    assert _paths(cat)["spec-fixed.fits"] == ("ingested", None)


def test_touched_files_are_hashed_once_and_a_new_inode_is_noticed(
    good: list[Path], tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    files = [Path(shutil.copy2(f, src / f.name)) for f in good]
    cat = tmp_path / "cat"
    _ingest(cat, src)
    st = files[0].stat()
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # `touch`
    touched = _ingest(cat, src)
    assert touched.n_unchanged == 3 and touched.bytes_read == st.st_size
    assert touched.skipped == [(str(files[0].resolve()), "content unchanged")]
    assert touched.n_accounted == 4 and touched.n_ingested == 0
    with lamostdb.open(cat) as c:
        mtime = c.sql(
            "SELECT mtime_ns FROM ingest_paths WHERE path = $p", {"p": str(files[0].resolve())}
        ).row(0)[0]
    assert mtime == st.st_mtime_ns + 5_000_000_000  # the new stat triple is stored
    assert _ingest(cat, src).bytes_read == 0  # ... so the next run does not read it again
    # same size and mtime, another inode (a file replaced by a copy): read again
    st1 = files[1].stat()
    tmp = src / "tmp.part"
    shutil.copyfile(files[1], tmp)
    os.utime(tmp, ns=(st1.st_atime_ns, st1.st_mtime_ns))
    os.replace(tmp, files[1])
    assert files[1].stat().st_ino != st1.st_ino
    replaced = _ingest(cat, src)
    assert replaced.bytes_read == st1.st_size and replaced.n_unchanged == 3
    assert _paths(cat)[files[1].name] == ("ingested", None)  # its outcome is kept


def test_redelivered_original_bytes_become_current_again(good: list[Path], tmp_path: Path) -> None:
    original = good[1]
    changed = tmp_path / "changed" / original.name
    changed.parent.mkdir()
    with fits.open(original) as h:
        h[0].header["HISTORY"] = "reprocessed"
        h.writeto(changed)
    again = tmp_path / "again" / original.name
    again.parent.mkdir()
    shutil.copy2(original, again)
    cat = tmp_path / "cat"
    _ingest(cat, original)
    r2 = _ingest(cat, changed)
    assert r2.n_new_versions == 1
    r3 = _ingest(cat, again)
    assert (r3.n_ingested, r3.n_restored_versions, r3.n_rows_written) == (1, 1, 0)
    with lamostdb.open(cat) as c:
        versions = c.sql(
            "SELECT version, current, superseded_by_run FROM spectrum_versions ORDER BY version"
        ).rows()
        current = c.sql("SELECT source_path FROM spectra").rows()
    assert versions == [(1, True, None), (2, False, r3.run_id)]
    assert current == [(str(original.resolve()),)]  # the stored row of version 1
    with lamostdb.open(cat) as c:
        rows = dict(
            c.sql("SELECT path, outcome || ': ' || coalesce(reason, '') FROM ingest_paths").rows()
        )
    assert rows == {
        str(original.resolve()): "ingested: ",
        str(changed.resolve()): "ingested: ",
        str(again.resolve()): "ingested: re-delivery: version 1 made current again",
    }
    # the changed bytes delivered again make version 2 current once more
    again2 = tmp_path / "again2" / original.name
    again2.parent.mkdir()
    shutil.copy2(changed, again2)
    assert _ingest(cat, again2).n_restored_versions == 1
    with lamostdb.open(cat) as c:
        assert c.sql("SELECT version FROM spectrum_versions WHERE current").rows() == [(2,)]


def test_files_quarantined_by_another_version_are_read_again_once(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "junk.fits").write_bytes(JUNK)
    cat = tmp_path / "cat"
    assert _ingest(cat, src).n_quarantined == 1
    assert _ingest(cat, src).bytes_read == 0  # same version: not read again
    con = duckdb.connect(str(cat / "catalog.duckdb"))
    con.execute("UPDATE runs SET lamostdb_version = '0.0.1'")  # as if an older one judged it
    con.close()
    again = _ingest(cat, src)
    assert again.bytes_read == len(JUNK) and again.n_accounted == 1
    assert _ingest(cat, src).bytes_read == 0
    assert _paths(cat)["junk.fits"][0] == "quarantined"


def test_the_night_summary_lists_every_quarantined_path(good: list[Path], tmp_path: Path) -> None:
    from lamostdb.pipeline.nightly import night_state

    night = tmp_path / "night"
    night.mkdir()
    shutil.copy2(good[0], night / good[0].name)
    for i in range(2):
        (night / f"empty{i}.fits").write_bytes(b"")
    cat = tmp_path / "cat"
    _ingest(cat, night)
    with Catalog(cat) as c:
        state = night_state(c, night.resolve(), 3)
    assert [Path(p).name for p, _ in state.quarantined] == ["empty0.fits", "empty1.fits"]
    assert all(reason for _, reason in state.quarantined)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_file_that_kills_its_reader_is_quarantined_and_the_night_goes_on(
    good: list[Path], tmp_path: Path
) -> None:
    """A worker killed by a signal while reading one file (here SIGKILL, injected at that
    file): ingest exits 0, that file is quarantined saying so, every other file of its chunk
    and of the night is ingested, and no worker is left behind."""
    import subprocess
    import sys

    src = tmp_path / "in"
    src.mkdir()
    for f in good:
        shutil.copy2(f, src / f.name)
    victim = good[1].name
    cat = tmp_path / "cat"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMOSTDB_FAULT")}
    env |= {"LAMOSTDB_FAULT": f"ingest:read:{victim}", "LAMOSTDB_FAULT_ACTION": "kill"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamostdb.cli",
            "ingest",
            str(cat),
            str(src),
            "--workers",
            "2",
            "--chunk-size",
            "2",
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    got = _paths(cat)
    assert got[victim][0] == "quarantined"
    assert "reading process died" in (got[victim][1] or "")
    assert sorted(n for n, (o, _) in got.items() if o == "ingested") == sorted(
        f.name for f in good if f.name != victim
    )
    assert _count(cat, "SELECT count(*) FROM spectra") == len(good) - 1
    assert not (cat / "_staging").exists() or not any((cat / "_staging").rglob("*"))
    # without the fault the same file reads fine, and replaces its quarantine row
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamostdb.cli",
            "ingest",
            str(cat),
            str(src),
            "--workers",
            "2",
            "--quiet",
        ],
        env={k: v for k, v in env.items() if not k.startswith("LAMOSTDB_FAULT")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert _count(cat, "SELECT count(*) FROM spectra") == len(good)
    assert _count(cat, "SELECT count(*) FROM quarantine") == 0
