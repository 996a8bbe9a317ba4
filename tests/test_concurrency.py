"""Readers never wait for writers, writers never wait for idle readers (issue 11, defect 5).

A reader opens the snapshot that the last commit published (``_snapshots/CURRENT``) and
never ``catalog.duckdb``: it holds no lock, and sees the catalogue as it was after one
commit, never between two.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SHIPPED_SPECTRA

import lamostdb
from lamostdb.catalog import snapshot
from lamostdb.catalog.store import DB_NAME, Catalog
from lamostdb.ingest.stage import ingest
from lamostdb.io.sqlfiles import statement
from lamostdb.sim import simulate_night

N_NIGHT = 1000  # the acceptance figure
#: One statement whose columns must agree with each other in every committed state.
CONSISTENCY = """
SELECT
    (SELECT count(*) FROM spectra) AS n_spectra,
    (SELECT count(*) FROM spectrum_versions WHERE current) AS n_current,
    (SELECT count(*) FROM spectra_history) AS n_history,
    (SELECT coalesce(sum(n_rows), 0) FROM files WHERE table_name = 'spectra') AS n_listed,
    (SELECT count(*) FROM ingest_ledger) AS n_ledger,
    (SELECT count(*) FROM lrs) AS n_lrs,
    (SELECT count(*) FROM results) AS n_results,
    (SELECT count(*) FROM results_history) AS n_results_history,
    (SELECT coalesce(sum(n_rows), 0) FROM files WHERE table_name = 'results') AS n_results_listed,
    (SELECT count(*) FROM results ANTI JOIN spectra USING (specid)) AS n_orphan_results,
    (SELECT count(*) FROM runs WHERE state = 'committing') AS n_committing
"""


def _reads_db(pid: int, db: Path) -> bool:
    """Whether process ``pid`` has ``db`` open."""
    fd_dir = Path(f"/proc/{pid}/fd")
    return any(os.path.realpath(fd_dir / fd) == str(db.resolve()) for fd in os.listdir(fd_dir))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lamostdb.cli", *args]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_nightly_writes_while_readers_read_and_an_idle_reader_waits(tmp_path: Path) -> None:
    night = tmp_path / "night"
    simulate_night(night, n=N_NIGHT, seed=11)
    cat_path = tmp_path / "cat"
    Catalog.create(cat_path).close()
    idle = lamostdb.open(cat_path)  # a notebook's reader, idle for the whole run
    assert idle.sql("SELECT count(*) AS n FROM spectra")["n"][0] == 0
    assert not _reads_db(os.getpid(), cat_path / DB_NAME)

    writer = subprocess.Popen(
        _cli(
            "nightly", str(cat_path), str(night), "--refcat-from-night", "--quiet", "--workers", "2"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    answers: list[dict[str, int]] = []
    failures: list[str] = []
    t0 = time.perf_counter()
    while True:
        running = writer.poll() is None
        r = subprocess.run(
            _cli("sql", str(cat_path), CONSISTENCY, "--format", "csv"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if r.returncode != 0:
            failures.append(r.stderr)
        else:
            head, row = r.stdout.splitlines()
            answers.append(dict(zip(head.split(","), map(int, row.split(",")), strict=True)))
        if not running:
            break
    wall = time.perf_counter() - t0
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, f"nightly failed beside an idle reader: {err}"
    assert failures == [], f"{len(failures)} of {len(failures) + len(answers)} reads failed"
    print(f"{len(answers)} reads in {wall:.1f} s while nightly wrote {N_NIGHT} spectra")
    assert len(answers) >= 3
    for a in answers:  # every answer is one committed state
        assert (
            a["n_spectra"]
            == a["n_current"]
            == a["n_history"]
            == a["n_listed"]
            == a["n_ledger"]
            == a["n_lrs"]
        ), a
        assert (
            a["n_results"]
            == a["n_results_history"]
            == a["n_results_listed"]
            <= a["n_spectra"]
            <= N_NIGHT
        ), a
        assert a["n_orphan_results"] == 0 and a["n_committing"] == 0, a
    for before, after in zip(answers, answers[1:], strict=False):  # never back in time
        assert after["n_spectra"] >= before["n_spectra"], (before, after)
        assert after["n_results"] >= before["n_results"], (before, after)
    assert answers[-1]["n_spectra"] == answers[-1]["n_results"] == N_NIGHT
    assert len({(a["n_spectra"], a["n_results"]) for a in answers}) >= 2  # saw it change

    # the idle reader still answers from the state it opened, and moves on when asked
    assert idle.sql("SELECT count(*) AS n FROM spectra")["n"][0] == 0
    idle.refresh_views()
    assert idle.sql("SELECT count(*) AS n FROM spectra")["n"][0] == N_NIGHT
    idle.close()


def test_a_reader_works_while_a_writer_holds_the_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "cat"
    with Catalog.create(path) as writer:  # holds catalog.duckdb open for writing
        reader = lamostdb.open(path)
        assert reader.sql("SELECT count(*) AS n FROM spectra")["n"][0] == 0
        ingest(writer, [SHIPPED_SPECTRA], workers=1, progress=False)
        n = writer.sql("SELECT count(*) AS n FROM spectra")["n"][0]
        assert n > 0
        # the open reader keeps its state; a new one sees the commit
        assert reader.sql("SELECT count(*) AS n FROM spectra")["n"][0] == 0
        with lamostdb.open(path) as fresh:
            assert fresh.sql("SELECT count(*) AS n FROM spectra")["n"][0] == n
            assert (
                fresh.sql("SELECT count(*) AS n FROM quarantine")["n"][0]
                == writer.sql("SELECT count(*) AS n FROM quarantine")["n"][0]
            )
            one = fresh.sql("SELECT obsid FROM spectra WHERE obsid IS NOT NULL LIMIT 1")
            assert fresh.spectrum(int(one["obsid"][0])).obsid == one["obsid"][0]
            assert fresh.partition_order == writer.partition_order
        reader.refresh_views()
        assert reader.sql("SELECT count(*) AS n FROM spectra")["n"][0] == n
        reader.close()


def test_old_snapshots_are_removed_but_never_the_current_or_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "cat"
    with Catalog.create(path) as cat:
        ids = []
        for i in range(5):  # five commits, each changing a table
            cat.con.execute(statement("ledger.sql", "set_meta"), {"key": "k", "value": str(i)})
            ids.append(cat.publish())
        assert len(set(ids)) == 5
        assert cat.publish() == ids[-1]  # nothing changed: no new snapshot
        base = path / snapshot.SNAPSHOTS
        # within the grace period nothing goes
        assert {p.name for p in base.iterdir() if p.is_dir()} >= set(ids)
        snapshot.cleanup(path, keep=3, grace_s=0.0)
        left = sorted(p.name for p in base.iterdir() if p.is_dir())
        assert left == ids[-3:]
        assert snapshot.current_id(path) == ids[-1]
        (base / ".tmp-crashed").mkdir()  # an interrupted publish
        snapshot.cleanup(path, keep=1, grace_s=0.0)
        assert sorted(p.name for p in base.iterdir()) == sorted([ids[-1], snapshot.CURRENT])
        # a table that did not change is linked from the last snapshot, not written again
        before = snapshot.load_current(path)
        ingest(cat, [SHIPPED_SPECTRA], workers=1, progress=False)
        after = snapshot.load_current(path)
        assert before is not None and after is not None
        for name, changed in (
            ("withdrawn", False),
            ("uid_aliases", False),
            ("refcat_ledger", False),
            ("spectrum_versions", True),
            ("runs", True),
        ):
            same = before.tables[name].stat().st_ino == after.tables[name].stat().st_ino
            assert same is not changed, name
    manifest = snapshot.load_current(path)
    assert manifest is not None and set(manifest.tables) >= {
        "files",
        "runs",
        "quarantine",
        "spectrum_versions",
        "ingest_ledger",
        "catalog_meta",
        "uid_aliases",
        "refcat_ledger",
    }


@pytest.mark.parametrize("published", [True, False])
def test_a_catalogue_without_a_snapshot_is_still_readable(tmp_path: Path, published: bool) -> None:
    """A catalogue written before snapshots existed reads from catalog.duckdb, briefly."""
    path = tmp_path / "cat"
    with Catalog.create(path) as cat:
        ingest(cat, [SHIPPED_SPECTRA], workers=1, progress=False)
        n = cat.sql("SELECT count(*) AS n FROM spectra")["n"][0]
    if not published:
        shutil.rmtree(path / snapshot.SNAPSHOTS)
    with lamostdb.open(path) as reader:
        assert reader.sql("SELECT count(*) AS n FROM spectra")["n"][0] == n
        assert not _reads_db(os.getpid(), path / DB_NAME)


def test_a_snapshot_older_than_a_bookkeeping_table_reads_it_as_empty(tmp_path: Path) -> None:
    """A table a newer version adds reads as empty until a writer publishes it."""
    path = tmp_path / "cat"
    Catalog.create(path).close()
    snap = snapshot.load_current(path)
    assert snap is not None
    manifest = json.loads((snap.folder / snapshot.MANIFEST).read_text())
    for name in ("uid_aliases", "quarantine"):
        del manifest["tables"][name]
    (snap.folder / snapshot.MANIFEST).write_text(json.dumps(manifest))
    with lamostdb.open(path) as cat:
        assert cat.sql("SELECT count(*) AS n FROM uid_aliases")["n"][0] == 0
        assert cat.sql("SELECT * FROM quarantine").columns[:3] == ["path", "sha256", "size_bytes"]


def test_a_writer_leaving_its_with_block_publishes_what_it_committed(tmp_path: Path) -> None:
    path = tmp_path / "cat"
    with Catalog.create(path) as cat:  # a write outside commit_run (a future command's)
        cat.con.execute(statement("ledger.sql", "set_meta"), {"key": "note", "value": "x"})
        with lamostdb.open(path) as reader:
            assert reader.meta("note") is None
    with lamostdb.open(path) as reader:
        assert reader.meta("note") == "x"
