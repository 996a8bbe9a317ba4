"""The read-only query path: nothing a query says can write into the catalogue or read
files outside it (issue 11, defect 1).

Every attack of the corpus goes through ``Catalog.sql`` and through ``lamostdb sql``; each
must be refused with a message that names what was refused, and afterwards every file under
the catalogue folder must have the bytes it had before (no file added, none removed).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import SHIPPED_SPECTRA

import lamostdb
from lamostdb.catalog.readonly import QueryRefused, check_query
from lamostdb.catalog.store import Catalog
from lamostdb.cli.main import main
from lamostdb.ingest.stage import ingest

OUTSIDE_TEXT = "secret,value\nsshkey,42\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A catalogue of the shipped spectra, plus a folder of files outside it."""
    base = tmp_path_factory.mktemp("readonly")
    cat = base / "cat"
    with Catalog.create(cat) as c:
        ingest(c, [SHIPPED_SPECTRA], workers=1, progress=False)
    outside = base / "outside"
    outside.mkdir()
    (outside / "notes.csv").write_text(OUTSIDE_TEXT)
    spectra_file = sorted((cat / "spectra").rglob("part-*.parquet"))[0]
    return {
        "cat": cat,
        "outside": outside,
        "csv": outside / "notes.csv",
        "spectra_file": spectra_file,
        "metadata": cat / "spectra" / "dataset" / "_metadata",
    }


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def attacks(site: dict[str, Path]) -> dict[str, tuple[str, str]]:
    """name -> (query, a word the refusal must name)."""
    cat, part, meta = site["cat"], site["spectra_file"], site["metadata"]
    csv, outside = site["csv"], site["outside"]
    forged = "SELECT * REPLACE ('GALAXY' AS objtype) FROM spectra_history"
    return {
        "copy_over_a_table_file": (f"COPY ({forged}) TO '{part}' (FORMAT parquet)", "COPY"),
        "copy_over_metadata": (f"COPY (SELECT 1 AS x) TO '{meta}' (FORMAT parquet)", "COPY"),
        "copy_new_file_in_catalogue": (f"COPY spectra TO '{cat}/spectra/x.csv'", "COPY"),
        "copy_from": (f"COPY spectrum_versions FROM '{csv}'", "COPY"),
        "export_database": (f"EXPORT DATABASE '{cat}/dump'", "EXPORT"),
        "import_database": (f"IMPORT DATABASE '{outside}'", "IMPORT"),
        "select_then_copy": (f"SELECT 1; COPY (SELECT 1) TO '{part}'", "COPY"),
        "select_then_copy_no_space": (f"SELECT 1;COPY (SELECT 1) TO '{meta}'", "COPY"),
        "block_comment_prefix": (f"/* harmless */ COPY (SELECT 1) TO '{part}'", "COPY"),
        "line_comment_prefix": (f"-- just a select\nCOPY (SELECT 1) TO '{part}'", "COPY"),
        "comment_hides_separator": (f"SELECT 1 -- x\n; COPY (SELECT 1) TO '{part}'", "COPY"),
        "comment_inside_keyword_gap": (f"SELECT 1;/**/COPY (SELECT 1) TO '{part}'", "COPY"),
        "trailing_statement_after_string": (f"SELECT ';'; COPY (SELECT 1) TO '{part}'", "COPY"),
        "read_text_passwd": ("SELECT * FROM read_text('/etc/passwd')", "outside"),
        "read_csv_passwd": ("SELECT * FROM read_csv('/etc/passwd')", "outside"),
        "read_blob_passwd": ("SELECT * FROM read_blob('/etc/passwd')", "outside"),
        "glob_etc": ("SELECT * FROM glob('/etc/*')", "outside"),
        "read_csv_outside": (f"SELECT * FROM read_csv('{csv}')", "outside"),
        "read_csv_outside_by_dotdot": (
            f"SELECT * FROM read_csv('{cat}/../outside/notes.csv')",
            "outside",
        ),
        "read_parquet_glob_outside": (
            f"SELECT * FROM read_parquet('{outside}/*.parquet')",
            "outside",
        ),
        "read_text_over_http": ("SELECT * FROM read_text('http://127.0.0.1:9/x')", "outside"),
        "install_httpfs": ("INSTALL httpfs", "INSTALL"),
        "load_httpfs": ("LOAD httpfs", "LOAD"),
        "force_install": ("FORCE INSTALL httpfs", "FORCE"),
        "update_extensions": ("UPDATE EXTENSIONS", "UPDATE"),
        "set_external_access": ("SET enable_external_access = true", "SET"),
        "set_allowed_dirs": ("SET allowed_directories = ['/']", "SET"),
        "set_variable": ("SET VARIABLE x = 1", "SET"),
        "reset": ("RESET lock_configuration", "RESET"),
        "pragma": ("PRAGMA enable_profiling", "PRAGMA"),
        "pragma_disable_lock": ("PRAGMA lock_configuration = false", "PRAGMA"),
        "attach_catalog_db": (f"ATTACH '{cat}/catalog.duckdb' AS c", "ATTACH"),
        "attach_new_db": (f"ATTACH '{cat}/evil.duckdb'", "ATTACH"),
        "detach": ("DETACH memory", "DETACH"),
        "use": ("USE memory", "USE"),
        "create_table": ("CREATE TABLE t AS SELECT 1", "CREATE"),
        "create_view_shadowing_spectra": (
            "CREATE OR REPLACE TEMP VIEW spectra AS SELECT 1",
            "CREATE",
        ),
        "create_macro": ("CREATE MACRO m(x) AS x", "CREATE"),
        "create_secret": ("CREATE SECRET s (TYPE s3)", "CREATE"),
        "insert": ("INSERT INTO quarantine VALUES ('x', 'y', 1, 'z', 'r', now())", "INSERT"),
        "update": ("UPDATE spectrum_versions SET current = false", "UPDATE"),
        "delete": ("DELETE FROM spectrum_versions", "DELETE"),
        "drop": ("DROP VIEW spectra", "DROP"),
        "alter": ("ALTER VIEW spectra RENAME TO s", "ALTER"),
        "call": ("CALL pragma_version()", "CALL"),
        "checkpoint": ("CHECKPOINT", "CHECKPOINT"),
        "vacuum": ("VACUUM", "VACUUM"),
        "begin": ("BEGIN TRANSACTION", "BEGIN"),
        "prepare": ("PREPARE p AS SELECT 1", "PREPARE"),
        "explain_analyze_copy": (f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{part}'", "EXPLAIN"),
        "pivot_statement": ("PIVOT spectrum_versions ON current", "PIVOT"),
        "logging_to_a_file": (
            f"SELECT * FROM enable_logging(storage = 'file', storage_path = '{cat}/log')",
            "setting",
        ),
        "profiling_to_a_file": (
            f"SELECT * FROM enable_profiling(save_location = '{cat}/profile.json')",
            "setting",
        ),
        "copy_hidden_in_query_function": (
            f"SELECT * FROM query('SELECT 1; COPY (SELECT 1) TO ''{part}''')",
            "refused",
        ),
        "empty": ("  ; -- nothing", "empty"),
    }


def test_every_attack_is_refused_through_the_api_and_the_cli(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree_hashes(site["cat"])
    corpus = attacks(site)
    assert len(corpus) >= 50
    with lamostdb.open(site["cat"]) as cat:
        n_before = cat.sql("SELECT count(*) AS n FROM spectra")["n"][0]
        for name, (query, word) in corpus.items():
            with pytest.raises(QueryRefused) as err:
                cat.sql(query)
            msg = str(err.value).lower()
            assert word.lower() in msg, f"{name}: {msg!r} does not name {word}"
            assert "refused" in msg or word == "empty", f"{name}: unclear message {msg!r}"
        # the connection still answers, with the same content
        assert cat.sql("SELECT count(*) AS n FROM spectra")["n"][0] == n_before > 0
    capsys.readouterr()
    for name, (query, word) in corpus.items():
        assert main(["sql", str(site["cat"]), query]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("lamostdb sql: error: "), f"{name}: {err!r}"
        assert word.lower() in err.lower(), f"{name}: {err!r} does not name {word}"
    # nor can the results file land in the catalogue
    for target in (site["metadata"], site["spectra_file"], site["cat"] / "new.csv"):
        assert (
            main(
                [
                    "sql",
                    str(site["cat"]),
                    "SELECT 1 AS x",
                    "--output",
                    str(target),
                    "--format",
                    "parquet",
                ]
            )
            == 2
        )
        assert "inside the catalogue" in capsys.readouterr().err
    assert tree_hashes(site["cat"]) == before
    assert not (site["cat"] / "dump").exists() and not (site["cat"] / "evil.duckdb").exists()


def test_a_writer_refuses_the_same_statements(site: dict[str, Path], tmp_path: Path) -> None:
    cat_path = tmp_path / "cat"
    shutil.copytree(site["cat"], cat_path)
    part = sorted((cat_path / "spectra").rglob("part-*.parquet"))[0]
    with Catalog(cat_path, mode="w") as cat:
        before = tree_hashes(cat_path)  # opening for writing publishes a snapshot
        for query in (
            f"COPY (SELECT 1) TO '{part}'",
            "SELECT 1; DROP TABLE files",
            "DELETE FROM spectrum_versions",
            "INSTALL httpfs",
        ):
            with pytest.raises(QueryRefused):
                cat.sql(query)
    assert {k: v for k, v in tree_hashes(cat_path).items() if "_snapshots" not in k} == {
        k: v for k, v in before.items() if "_snapshots" not in k
    }


def test_a_legitimate_select_works_and_binds_its_parameters(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree_hashes(site["cat"])
    with lamostdb.open(site["cat"]) as cat:
        obsid = cat.sql("SELECT min(obsid) AS o FROM spectra")["o"][0]
        n = cat.sql("SELECT count(*) AS n FROM spectra WHERE obsid >= $o", {"o": obsid})["n"][0]
        assert n > 1
        one = cat.sql(
            "/* a comment */ WITH s AS (SELECT * FROM spectra) "
            "SELECT specid FROM s WHERE obsid = $obsid -- trailing comment",
            {"obsid": obsid},
        )
        assert one.height == 1
        # a bound value is a value, never SQL
        assert (
            cat.sql(
                "SELECT count(*) AS n FROM spectra WHERE specid = $s",
                {"s": "x'; COPY spectra TO '/tmp/x"},
            )["n"][0]
            == 0
        )
        assert cat.sql("DESCRIBE spectra").height > 10
        assert cat.sql("SELECT count(*) AS n FROM quarantine")["n"][0] >= 0
        assert cat.cone(0.0, 0.0, 1.0).height == 0
    capsys.readouterr()
    assert (
        main(
            [
                "sql",
                str(site["cat"]),
                "SELECT count(*) AS n FROM spectra WHERE obsid >= $o",
                "--param",
                f"o={obsid}",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == ["n", str(n)]
    assert tree_hashes(site["cat"]) == before


def test_allow_files_opens_one_folder_and_nothing_else(
    site: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = tree_hashes(site["cat"])
    query = f"SELECT value FROM read_csv('{site['csv']}')"
    with lamostdb.open(site["cat"], allow_files=[site["outside"]]) as cat:
        assert cat.sql(query)["value"].to_list() == [42]
        with pytest.raises(QueryRefused, match="outside the catalogue"):
            cat.sql("SELECT * FROM read_text('/etc/passwd')")
        with pytest.raises(QueryRefused, match="COPY"):  # reading allowed, writing never
            cat.sql(f"COPY (SELECT 1) TO '{site['outside']}/out.csv'")
    assert not (site["outside"] / "out.csv").exists()
    capsys.readouterr()
    assert main(["sql", str(site["cat"]), query, "--format", "csv"]) == 2
    assert "--allow-files" in capsys.readouterr().err
    assert (
        main(
            [
                "sql",
                str(site["cat"]),
                query,
                "--format",
                "csv",
                "--allow-files",
                str(site["outside"]),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == ["value", "42"]
    assert (
        main(
            ["sql", str(site["cat"]), "SELECT 1", "--allow-files", str(site["outside"] / "missing")]
        )
        == 2
    )
    assert "no such folder" in capsys.readouterr().err
    assert tree_hashes(site["cat"]) == before


def test_a_select_inside_a_string_or_comment_is_not_a_second_statement() -> None:
    check_query("SELECT 'a; COPY x TO y' AS s /* ; DROP TABLE files */ -- ; VACUUM")
    with pytest.raises(duckdb.ParserException):
        check_query("SELEC 1")
