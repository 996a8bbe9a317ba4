"""The catalogue: lossless round trip, idempotence, versions, HATS, SQL contracts."""

from __future__ import annotations

import shutil
from pathlib import Path

import hats
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from conftest import NOT_LAMOST, SHIPPED_FILES, SHIPPED_SPECTRA

import lamostdb
from lamostdb.catalog.schema import load_schema
from lamostdb.catalog.store import PUBLIC_NAMES, Catalog, row_to_record
from lamostdb.ingest.stage import ingest
from lamostdb.io import read_spectrum

CMOST = SHIPPED_SPECTRA / "cmost"
N_SHIPPED_OK = len([p for p in SHIPPED_FILES if p.name not in NOT_LAMOST])


def test_round_trip_is_bit_identical_for_every_shipped_file(shipped_catalog: Path) -> None:
    with lamostdb.open(shipped_catalog) as cat:
        hist = cat.con.sql("SELECT * FROM spectra_history").to_arrow_table()
    by_sha = {sha: i for i, sha in enumerate(hist.column("source_sha256").to_pylist())}
    assert len(by_sha) == N_SHIPPED_OK
    for path in SHIPPED_FILES:
        if path.name in NOT_LAMOST:
            continue
        want = read_spectrum(path)
        got = row_to_record(hist, by_sha[want.source_sha256])
        for name in ("flux", "ivar", "andmask", "ormask"):
            a, b = getattr(want, name), getattr(got, name)
            assert a.dtype == b.dtype
            assert a.tobytes() == b.tobytes(), (path.name, name)
        assert want.wave_angstrom().tobytes() == got.wave_angstrom().tobytes()
        assert got.header == want.header and got.specid == want.specid


def test_counts_quarantine_and_versions(shipped_catalog: Path) -> None:
    with lamostdb.open(shipped_catalog) as cat:
        n_hist = cat.sql("SELECT count(*) AS n FROM spectra_history")["n"][0]
        n_cur = cat.sql("SELECT count(*) AS n FROM spectra")["n"][0]
        quarantine = cat.sql("SELECT path, reason FROM quarantine")
        versions = cat.sql(
            "SELECT specid, data_v, current FROM spectrum_versions "
            "WHERE specid IN ('55859-F5902_sp01-001', '55859-F5902_sp01-005') "
            "ORDER BY specid, data_v"
        )
    assert n_hist == N_SHIPPED_OK
    assert n_cur == N_SHIPPED_OK - 2  # two obsids delivered in two releases each
    assert quarantine.height == 1 and quarantine["path"][0].endswith("oe270005.fits")
    assert "5 rows" in quarantine["reason"][0]
    # the newer data release is the current version, whatever the order of delivery
    assert versions.rows() == [
        ("55859-F5902_sp01-001", "LAMOST DR7", False),
        ("55859-F5902_sp01-001", "LAMOST DR9", True),
        ("55859-F5902_sp01-005", "LAMOST DR5", False),
        ("55859-F5902_sp01-005", "LAMOST DR9", True),
    ]


def test_reingest_adds_nothing_even_from_a_copy(shipped_catalog: Path, tmp_path: Path) -> None:
    work = tmp_path / "cat"
    shutil.copytree(shipped_catalog, work)
    copy = tmp_path / "copy"
    shutil.copytree(SHIPPED_SPECTRA, copy)  # same bytes, other paths
    with Catalog(work, mode="w") as cat:
        before = cat.sql("SELECT count(*) AS n FROM spectra_history")["n"][0]
        rep1 = ingest(cat, [SHIPPED_SPECTRA], workers=1, progress=False)
        rep2 = ingest(cat, [copy], workers=1, progress=False)
        after = cat.sql("SELECT count(*) AS n FROM spectra_history")["n"][0]
        n_files = cat.sql("SELECT count(*) AS n FROM files")["n"][0]
    assert after == before
    assert rep1.n_ingested == rep2.n_ingested == 0
    assert rep1.n_unchanged == len(SHIPPED_FILES)  # the quarantined file too: not re-read
    # the copy of the damaged file is quarantined like the original, the rest are duplicates
    assert rep2.n_duplicate_content == len(SHIPPED_FILES) - 1 and rep2.n_quarantined == 1
    assert rep1.n_accounted == rep2.n_accounted == len(SHIPPED_FILES)
    assert n_files == len(list((work / "spectra" / "dataset").rglob("*.parquet")))


def test_older_release_delivered_later_does_not_become_current(catalog_path: Path) -> None:
    dr9 = CMOST / "spec-55859-F5902_sp01-001__blobaec1394.fits.gz"
    dr7 = CMOST / "spec-55859-F5902_sp01-001_dr7__blob253a785.fits.gz"
    with Catalog.create(catalog_path) as cat:
        ingest(cat, [dr9], workers=1, progress=False)
        rep = ingest(cat, [dr7], workers=1, progress=False)
        cur = cat.sql("SELECT data_v FROM spectra WHERE obsid = 101001")
        hist = cat.sql("SELECT data_v FROM spectra_history ORDER BY data_v")
    assert rep.n_new_versions == 1
    assert cur["data_v"].to_list() == ["LAMOST DR9"]
    assert hist["data_v"].to_list() == ["LAMOST DR7", "LAMOST DR9"]


def test_newer_release_delivered_later_supersedes(catalog_path: Path) -> None:
    dr5 = CMOST / "spec-55859-F5902_sp01-005__blob48d7b36.fits.gz"
    dr9 = CMOST / "spec-55859-F5902_sp01-005__blob4661f26.fits.gz"
    with Catalog.create(catalog_path) as cat:
        r1 = ingest(cat, [dr5], workers=1, progress=False)
        r2 = ingest(cat, [dr9], workers=1, progress=False)
        rows = cat.sql(
            "SELECT version, data_v, current, ingest_run, superseded_by_run "
            "FROM spectrum_versions ORDER BY version"
        ).rows()
        spec = cat.spectrum(101005)
    assert rows == [
        (1, "LAMOST DR5", False, r1.run_id, r2.run_id),
        (2, "LAMOST DR9", True, r2.run_id, None),
    ]
    assert spec.data_v == "LAMOST DR9"


def test_hats_reads_our_table(shipped_catalog: Path) -> None:
    with lamostdb.open(shipped_catalog) as cat:
        files = cat.table_files("spectra")
        n = cat.sql("SELECT count(*) AS n FROM spectra_history")["n"][0]
    ours = sorted({(f.norder, f.npix) for f in files})
    hc = hats.read_hats(shipped_catalog / "spectra")
    theirs = sorted((p.order, p.pixel) for p in hc.get_healpix_pixels())
    assert theirs == ours
    assert hc.catalog_info.total_rows == n
    assert hc.catalog_info.healpix_column == "_healpix_29"
    meta = pq.read_metadata(shipped_catalog / "spectra" / "dataset" / "_metadata")
    assert meta.num_rows == n
    # every row lies in the partition whose leaf holds it
    for f in files:
        hp = pq.read_table(shipped_catalog / f.path, columns=["_healpix_29"]).column(0)
        shift = 2 * (29 - f.norder)
        assert set((hp.to_numpy() >> shift).tolist()) == {f.npix}


def test_cone_search_matches_astropy_brute_force(shipped_catalog: Path) -> None:
    with lamostdb.open(shipped_catalog) as cat:
        allpos = cat.sql("SELECT specid, ra, dec FROM spectra")
        centre = SkyCoord(332.3 * u.deg, -2.1 * u.deg)
        for radius in (60.0, 600.0, 3600.0 * 20, 3600.0 * 180):
            got = cat.cone(332.3, -2.1, radius)
            sep = centre.separation(
                SkyCoord(allpos["ra"].to_numpy() * u.deg, allpos["dec"].to_numpy() * u.deg)
            ).arcsec
            want = set(allpos["specid"].filter(sep <= radius).to_list())
            assert set(got["specid"].to_list()) == want
            assert np.all(np.diff(got["sep_arcsec"].to_numpy()) >= 0)
    assert len(want) == allpos.height  # the 180-degree cone holds everything


def test_sql_binds_parameters(shipped_catalog: Path) -> None:
    with lamostdb.open(shipped_catalog) as cat:
        df = cat.sql(
            "SELECT specid FROM spectra WHERE lasp_class = $cls AND snrg > $snr",
            {"cls": "STAR", "snr": 20.0},
        )
        injected = cat.sql(
            "SELECT count(*) AS n FROM spectra WHERE specid = $s", {"s": "x' OR '1'='1"}
        )
    assert df.height > 0 and injected["n"][0] == 0


def _duck_columns(cat: Catalog, name: str) -> list[tuple[str, str]]:
    rows = cat.con.sql(f"DESCRIBE {name}").fetchall()  # name from the fixed allow-list
    return [(r[0], r[1]) for r in rows]


@pytest.mark.parametrize(
    "name",
    [
        "spectra",
        "spectra_history",
        "quarantine",
        "ingest_ledger",
        "spectrum_versions",
        "runs",
        "files",
        "catalog_meta",
        "ingest_paths",
        "withdrawn",
    ],
)
def test_tables_and_views_match_their_schema_files(shipped_catalog: Path, name: str) -> None:
    schema = load_schema("spectra" if name == "spectra_history" else name)
    with lamostdb.open(shipped_catalog) as cat:
        assert _duck_columns(cat, name) == [(c.name, c.duckdb_type) for c in schema.columns]
        for c in schema.columns:
            if not c.nullable:
                n_null = cat.con.sql(
                    f"SELECT count(*) FROM {name} WHERE {c.name} IS NULL"
                ).fetchall()[0][0]
                assert n_null == 0, (name, c.name)
        if schema.primary_key and name != "spectra_history":
            key = ", ".join(schema.primary_key)
            dup = cat.con.sql(
                f"SELECT count(*) FROM (SELECT {key} FROM {name} GROUP BY {key} "
                "HAVING count(*) > 1)"
            ).fetchall()[0][0]
            assert dup == 0


def test_public_names_are_registered(shipped_catalog: Path) -> None:
    with lamostdb.open(shipped_catalog) as cat:
        names = {
            r[0]
            for r in cat.con.sql(
                "SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views()"
            ).fetchall()
        }
    assert set(PUBLIC_NAMES) <= names


def test_parquet_fields_carry_units_and_descriptions(shipped_catalog: Path) -> None:
    f = next((shipped_catalog / "spectra" / "dataset").rglob("*.parquet"))
    schema = pq.read_schema(f)
    assert schema.field("ra").metadata[b"unit"] == b"deg"
    assert b"Flux" in schema.field("flux").metadata[b"description"]
