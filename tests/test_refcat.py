"""Reference-catalogue ingest (gaia, ps1): formats, column mapping, drops, idempotence, HATS."""

from __future__ import annotations

import argparse
import gzip
import io
from pathlib import Path

import hats
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import MaskedColumn, Table
from conftest import SHARED_DATA

from lamostdb.catalog.store import Catalog
from lamostdb.cli.refcat_cmd import add_refcat_parser, parse_columns, print_report
from lamostdb.healpix import healpix_29, pixel_at_order
from lamostdb.refcat import RefcatError, ingest_refcat, read_source, resolve_columns

EXTRACT = Path(__file__).parent / "data" / "catalogs" / "star_gaia_ps1.ecsv"
SHARED = SHARED_DATA / "catalogs"
GAIA_COLS = ["Source", "RAdeg", "DEdeg", "pmRA", "pmDE", "Plx", "Gmag", "BPmag", "RPmag"]


def _cat(tmp_path: Path) -> Catalog:
    return Catalog.create(tmp_path / "cat")


def _stored(cat: Catalog, kind: str, key: str) -> dict[str, np.ndarray]:
    df = cat.sql(f"SELECT * FROM {kind} ORDER BY {key}")  # kind from ("gaia", "ps1")
    return {c: df[c].to_numpy() for c in df.columns}


def _astropy_expected(path: Path, id_col: str, ra_col: str, dec_col: str) -> tuple[int, int]:
    """(usable rows, distinct usable ids) by astropy's own reading of the file."""
    if ".vot" in path.name:
        from astropy.io import votable

        t = votable.parse(str(path), _debug_python_based_parser=True).get_first_table().to_table()
    else:
        t = Table.read(path)
    ids = np.ma.getmaskarray(t[id_col]) if hasattr(t[id_col], "mask") else np.zeros(len(t), bool)
    ra, dec = (np.ma.filled(np.ma.asarray(t[c], dtype=float), np.nan) for c in (ra_col, dec_col))
    ok = ~ids & np.isfinite(ra) & np.isfinite(dec)
    return int(ok.sum()), len(np.unique(np.asarray(t[id_col])[ok]))


# -- the committed extract -----------------------------------------------------------------
def test_committed_extract_feeds_gaia_and_ps1(tmp_path: Path) -> None:
    ref = Table.read(EXTRACT)
    with _cat(tmp_path) as cat:
        g = ingest_refcat(cat, "gaia", [EXTRACT], progress=False)
        p = ingest_refcat(cat, "ps1", [EXTRACT], progress=False)
        assert (g.n_added, g.n_dropped, p.n_added, p.n_dropped) == (205, 0, 205, 0)
        gaia = _stored(cat, "gaia", "source_id")
        ps1 = _stored(cat, "ps1", "objID")
    order = np.argsort(np.asarray(ref["Source"]))
    np.testing.assert_array_equal(gaia["source_id"], np.asarray(ref["Source"])[order])
    np.testing.assert_array_equal(gaia["ra"], np.asarray(ref["RAdeg"])[order])
    np.testing.assert_array_equal(gaia["dec"], np.asarray(ref["DEdeg"])[order])
    assert np.all(gaia["ref_epoch"] == 2016.0)
    # 5 rows have no proper motion in the source: null, not 0 and not dropped
    assert np.isnan(gaia["pmra"].astype(float)).sum() == 5
    np.testing.assert_allclose(
        gaia["phot_g_mean_mag"], np.asarray(ref["Gmag"])[order], rtol=1e-7
    )  # stored as float32
    np.testing.assert_array_equal(gaia["_healpix_29"], healpix_29(gaia["ra"], gaia["dec"]))
    order = np.argsort(np.asarray(ref["objID"]))
    np.testing.assert_array_equal(ps1["objID"], np.asarray(ref["objID"])[order])
    np.testing.assert_array_equal(ps1["raMean"], np.asarray(ref["RAJ2000"])[order])
    assert np.isnan(ps1["gMeanPSFMag"].astype(float)).sum() == 26
    np.testing.assert_array_equal(ps1["_healpix_29"], healpix_29(ps1["raMean"], ps1["decMean"]))


def test_hats_reader_sees_the_stored_rows(tmp_path: Path) -> None:
    with _cat(tmp_path) as cat:
        ingest_refcat(cat, "gaia", [EXTRACT], progress=False)
        order = cat.partition_order
        files = cat.table_files("gaia")
        root = cat.root
    h = hats.read_hats(root / "gaia")
    assert h.catalog_info.total_rows == 205
    assert sum(f.n_rows for f in files) == 205
    for f in files:
        t = pq.read_table(root / f.path)
        hp = t.column("_healpix_29").to_numpy()
        assert np.all(np.diff(hp) >= 0)  # sorted by the spatial index
        assert set(pixel_at_order(hp, order).tolist()) == {f.npix}
    assert {(p.order, p.pixel) for p in h.get_healpix_pixels()} == {(order, f.npix) for f in files}


def test_reingest_adds_nothing_and_first_delivery_wins(tmp_path: Path) -> None:
    moved = Table.read(EXTRACT)[:10]
    moved["RAdeg"] += 1e-4  # a later delivery of the same sources with other values
    later = tmp_path / "later.ecsv"
    moved.write(later)
    with _cat(tmp_path) as cat:
        ingest_refcat(cat, "gaia", [EXTRACT], progress=False)
        again = ingest_refcat(cat, "gaia", [EXTRACT], progress=False)
        assert (again.n_unchanged, again.n_added) == (1, 0)
        redo = ingest_refcat(cat, "gaia", [later], progress=False)
        assert (redo.n_added, redo.n_already_stored) == (0, 10)
        n = cat.sql("SELECT count(*) AS n, count(DISTINCT source_id) AS d FROM gaia")
        ra = cat.sql("SELECT ra FROM gaia WHERE source_id = $s", {"s": int(moved["Source"][0])})[
            "ra"
        ][0]
        ledger = cat.sql(
            "SELECT kind, n_rows, n_added, n_duplicates FROM refcat_ledger ORDER BY n_rows"
        )
    assert (n["n"][0], n["d"][0]) == (205, 205)
    assert ra == Table.read(EXTRACT)["RAdeg"][0]
    assert ledger.rows() == [("gaia", 10, 0, 10), ("gaia", 205, 205, 0)]


# -- formats -------------------------------------------------------------------------------
def _write(t: Table, path: Path) -> None:
    if path.suffix == ".parquet":
        cols = {c: pa.array(np.ma.getdata(t[c]), mask=np.ma.getmaskarray(t[c])) for c in t.colnames}
        pq.write_table(pa.table(cols), path)
    elif path.name.endswith(".vot.gz"):
        plain = path.with_name(path.name[:-3])
        _write_votable(t, plain)
        path.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    elif path.suffix == ".vot":
        _write_votable(t, path)
    else:
        fmt = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits"}[path.suffix]
        t.write(path, format=fmt)


def _write_votable(t: Table, path: Path) -> None:
    # pure-Python writer: astropy's C table writer and XML parser corrupted memory in the
    # full test session (see lamostdb/refcat/readers.py)
    from astropy.io import votable

    votable.from_table(t).to_xml(str(path), _debug_python_based_parser=True)


@pytest.mark.parametrize("name", ["x.parquet", "x.csv", "x.ecsv", "x.fits", "x.vot", "x.vot.gz"])
def test_each_format_gives_the_same_rows(tmp_path: Path, name: str) -> None:
    src = Table.read(EXTRACT)[GAIA_COLS]
    path = tmp_path / name
    _write(src, path)
    with Catalog.create(tmp_path / "ref") as cat:
        ingest_refcat(cat, "gaia", [EXTRACT], progress=False)
        want = _stored(cat, "gaia", "source_id")
    with _cat(tmp_path) as cat:
        rep = ingest_refcat(cat, "gaia", [path], progress=False)
        got = _stored(cat, "gaia", "source_id")
    assert rep.n_added == 205
    for c in want:
        if c != "ingest_run":
            np.testing.assert_array_equal(got[c], want[c], err_msg=c)


def test_gaia_archive_json_and_votable(tmp_path: Path) -> None:
    committed = Path(__file__).parent / "data" / "catalogs" / "astroquery"
    files = [committed / n for n in ("gaia__cone_search.json", "gaia__1710099405832VAL-result.vot")]
    with _cat(tmp_path) as cat:
        rep = ingest_refcat(cat, "gaia", files, progress=False)
        first = cat.sql(
            "SELECT source_id, ra, ref_epoch FROM gaia WHERE source_id = 6636090334814214528"
        )
    assert [f.n_rows for f in rep.files] == [50, 2] and rep.n_added == 52
    # first data row of the JSON file, checked by eye against the archive response
    assert first.rows() == [(6636090334814214528, 280.0002534562339, 2016.0)]


# -- real files from the shared data -------------------------------------------------------
REAL = [  # file, kind, overrides, (id, ra, dec) source columns for the astropy oracle
    (
        "astroquery_testdata/gaia__1712337806100O-result.ecsv",
        "gaia",
        {},
        ("source_id", "ra", "dec"),
    ),
    (
        "astroquery_testdata/gaia__1710099405832VAL-result.vot",
        "gaia",
        {},
        ("SOURCE_ID", "ra", "dec"),
    ),
    (
        "pne_lamost_gaia_ps1/DR7lamost-True-PN-duplicate-GAIA-PS1-final.ecsv",
        "gaia",
        {"ref_epoch": None},
        ("Source", "RAdeg", "DEdeg"),
    ),
    (
        "pne_lamost_gaia_ps1/DR7lamost-True-PN-duplicate-GAIA-PS1-final.ecsv",
        "ps1",
        {"raMean": "RAJ2000_x", "decMean": "DEJ2000_x"},
        ("objID", "RAJ2000_x", "DEJ2000_x"),
    ),
    (
        "pne_lamost_gaia_ps1/CV-PS-Gaia.ecsv",
        "gaia",
        {"pmra": "pmRA_x", "pmdec": "pmDE_x", "ref_epoch": None},
        ("Source", "RAdeg", "DEdeg"),
    ),
    (
        "pne_lamost_gaia_ps1/CV-PS-Gaia.ecsv",
        "ps1",
        {"raMean": "RAJ2000_x_1", "decMean": "DEJ2000_x_1"},
        ("objID", "RAJ2000_x_1", "DEJ2000_x_1"),
    ),
    (
        "pne_lamost_gaia_ps1/PN-PS-Gaia.ecsv",
        "gaia",
        {"ra": "RAdeg", "dec": "DEdeg", "phot_g_mean_mag": "Gmag_x", "ref_epoch": None},
        ("Source", "RAdeg", "DEdeg"),
    ),
    (
        "pne_lamost_gaia_ps1/PN-PS-Gaia.ecsv",
        "ps1",
        {"raMean": "RAJ2000_1", "decMean": "DEJ2000_1"},
        ("objID", "RAJ2000_1", "DEJ2000_1"),
    ),
    (
        "pne_lamost_gaia_ps1/Star-PS-Gaia.ecsv",
        "gaia",
        {"ref_epoch": None},
        ("Source", "RAdeg", "DEdeg"),
    ),
    (
        "pne_lamost_gaia_ps1/Star-PS-Gaia.ecsv",
        "ps1",
        {"raMean": "RAJ2000_1", "decMean": "DEJ2000_1"},
        ("objID", "RAJ2000_1", "DEJ2000_1"),
    ),
    (
        "pne_lamost_gaia_ps1/YSO-PS-GaiaEDR3.ecsv",
        "gaia",
        {"ref_epoch": None},
        ("source_id", "ra", "dec"),
    ),
    (
        "pne_lamost_gaia_ps1/YSO-PS-GaiaEDR3.ecsv",
        "ps1",
        {"raMean": "RAJ2000_x", "decMean": "DEJ2000_x"},
        ("objID", "RAJ2000_x", "DEJ2000_x"),
    ),
]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not SHARED.is_dir(), reason="shared real catalogues not present")
@pytest.mark.parametrize(
    ("rel", "kind", "overrides", "oracle"),
    REAL,
    ids=[f"{r[0].split('/')[-1]}-{r[1]}" for r in REAL],
)
def test_real_catalogue_files_load(
    tmp_path: Path,
    rel: str,
    kind: str,
    overrides: dict[str, str | None],
    oracle: tuple[str, str, str],
) -> None:
    path = SHARED / rel
    usable, distinct = _astropy_expected(path, *oracle)
    with _cat(tmp_path) as cat:
        rep = ingest_refcat(cat, kind, [path], columns=overrides, progress=False)
        n = cat.sql(f"SELECT count(*) AS n FROM {kind}")["n"][0]
    assert rep.n_rows_read == len(Table.read(path))
    assert rep.n_rows_read - rep.n_dropped == usable
    assert n == rep.n_added == distinct
    assert rep.n_duplicates_in_input == usable - distinct


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared real catalogues not present")
def test_real_joined_tables_need_an_explicit_choice(tmp_path: Path) -> None:
    star = read_source(SHARED / "pne_lamost_gaia_ps1" / "Star-PS-Gaia.ecsv")
    with pytest.raises(RefcatError, match=r"RAJ2000_1.*RAJ2000_2.*--column raMean=NAME"):
        resolve_columns(star, "ps1")
    with _cat(tmp_path) as cat, pytest.raises(RefcatError, match=r"'Epoch'.*5\d{4}.*MJD"):
        ingest_refcat(cat, "gaia", [star.path], progress=False)
    mast = SHARED / "astroquery_testdata" / "mast__panstarrs.json"
    with pytest.raises(RefcatError, match=r"mast__panstarrs.json.*'raMean'.*RAJ2000"):
        resolve_columns(read_source(mast), "ps1")
    # a unique joined name is taken, and said so
    pn = resolve_columns(
        read_source(SHARED / "pne_lamost_gaia_ps1" / "PN-PS-Gaia.ecsv"),
        "ps1",
        {"raMean": "RAJ2000_1", "decMean": "DEJ2000_1"},
    )
    assert pn.sources["gMeanPSFMag"] == "gmag_x"
    assert any("gmag_x" in note for note in pn.notes)


# -- column mapping ------------------------------------------------------------------------
def _gaia_rows() -> Table:
    return Table.read(EXTRACT)[GAIA_COLS][:20]


@pytest.mark.parametrize(
    ("renames", "expect_epoch"),
    [
        (
            {
                "Source": "source_id",
                "RAdeg": "ra",
                "DEdeg": "dec",
                "pmRA": "pmra",
                "pmDE": "pmdec",
                "Plx": "parallax",
                "Gmag": "phot_g_mean_mag",
                "BPmag": "phot_bp_mean_mag",
                "RPmag": "phot_rp_mean_mag",
            },
            2016.0,
        ),
        ({"Source": "SOURCE_ID", "RAdeg": "RA_ICRS", "DEdeg": "DE_ICRS"}, 2016.0),
        ({"RAdeg": "RAJ2000", "DEdeg": "DEJ2000"}, 2000.0),  # VizieR's CDS-propagated J2000
    ],
)
def test_column_variants_map(tmp_path: Path, renames: dict[str, str], expect_epoch: float) -> None:
    t = _gaia_rows()
    t.rename_columns(list(renames), list(renames.values()))
    path = tmp_path / "v.ecsv"
    t.write(path)
    with _cat(tmp_path) as cat:
        rep = ingest_refcat(cat, "gaia", [path], progress=False)
        got = _stored(cat, "gaia", "source_id")
    ref = _gaia_rows()
    order = np.argsort(np.asarray(ref["Source"]))
    assert rep.n_added == 20
    # an absent ref_epoch is reported; the J2000 position implies its own epoch
    assert rep.files[0].notes == (
        [] if expect_epoch == 2000.0 else ["ref_epoch: absent, stored as 2016.0"]
    )
    np.testing.assert_array_equal(got["dec"], np.asarray(ref["DEdeg"])[order])
    np.testing.assert_array_equal(got["parallax"], np.ma.filled(ref["Plx"], np.nan)[order])
    assert np.all(got["ref_epoch"] == expect_epoch)


def test_ref_epoch_column_and_units_are_used(tmp_path: Path) -> None:
    t = _gaia_rows()
    t["Epoch"] = 2015.5  # Gaia DR2
    t["RAdeg"].unit = "rad"
    ra_deg = np.asarray(t["RAdeg"]).copy()
    t["RAdeg"] = np.radians(ra_deg)
    t["RAdeg"].unit = "rad"
    path = tmp_path / "dr2.ecsv"
    t.write(path)
    with _cat(tmp_path) as cat:
        ingest_refcat(cat, "gaia", [path], progress=False)
        got = _stored(cat, "gaia", "source_id")
    order = np.argsort(np.asarray(t["Source"]))
    np.testing.assert_allclose(got["ra"], ra_deg[order], rtol=0, atol=1e-12)
    assert np.all(got["ref_epoch"] == 2015.5)


def test_missing_column_error_names_file_column_and_variants(tmp_path: Path) -> None:
    t = _gaia_rows()
    t.remove_column("Source")
    path = tmp_path / "no_id.ecsv"
    t.write(path)
    with _cat(tmp_path) as cat, pytest.raises(RefcatError) as err:
        ingest_refcat(cat, "gaia", [path], progress=False)
    msg = str(err.value)
    for part in (str(path), "'source_id'", "Source", "SOURCE_ID", "--column source_id=NAME"):
        assert part in msg
    assert isinstance(err.value, ValueError)


def test_unsupported_format_error_lists_formats(tmp_path: Path) -> None:
    path = tmp_path / "cat.txt"
    path.write_text("ra dec\n1 2\n")
    with pytest.raises(RefcatError, match=r"cat.txt.*Parquet.*CSV.*ECSV.*FITS.*VOTable"):
        read_source(path)


def test_bad_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    t = _gaia_rows()
    t["Source"] = MaskedColumn(t["Source"], mask=np.arange(20) == 0)  # null id
    t["RAdeg"][1] = np.nan  # no position
    t["DEdeg"][2] = 95.0  # impossible position
    t["Source"][4] = t["Source"][3]  # repeated id: the earlier row wins
    t["RAdeg"][5] = t["RAdeg"][5] + 360.0  # same direction, wrapped
    path = tmp_path / "bad.ecsv"
    t.write(path)
    with _cat(tmp_path) as cat:
        rep = ingest_refcat(cat, "gaia", [path], progress=False)
        row3 = cat.sql("SELECT ra FROM gaia WHERE source_id = $s", {"s": int(t["Source"][3])})
        row5 = cat.sql("SELECT ra FROM gaia WHERE source_id = $s", {"s": int(t["Source"][5])})
    assert rep.dropped == {"null_id": 1, "null_position": 1, "position_out_of_range": 1}
    assert (rep.n_duplicates_in_input, rep.n_added) == (1, 16)
    assert row3["ra"].to_list() == [t["RAdeg"][3]]
    assert row5["ra"][0] == pytest.approx(float(t["RAdeg"][5]) - 360.0, abs=1e-12)


# -- the simulator's mock catalogues ---------------------------------------------------------
def test_simulated_reference_catalogues_ingest(tmp_path: Path) -> None:
    from lamostdb.sim import simulate_night

    simulate_night(tmp_path / "night", n=200, seed=3)
    gaia = pq.read_table(tmp_path / "night" / "gaia.parquet")
    ps1 = pq.read_table(tmp_path / "night" / "ps1.parquet")
    with _cat(tmp_path) as cat:
        g = ingest_refcat(cat, "gaia", [tmp_path / "night" / "gaia.parquet"], progress=False)
        p = ingest_refcat(cat, "ps1", [tmp_path / "night" / "ps1.parquet"], progress=False)
        got = _stored(cat, "gaia", "source_id")
        n_ps1 = cat.sql("SELECT count(*) AS n FROM ps1")["n"][0]
    assert (g.n_added, p.n_added, n_ps1) == (gaia.num_rows, ps1.num_rows, ps1.num_rows)
    assert g.files[0].notes == [] and p.files[0].notes == []
    np.testing.assert_array_equal(got["source_id"], gaia.column("source_id").to_numpy())
    np.testing.assert_array_equal(got["pmra"], gaia.column("pmra").to_numpy())
    np.testing.assert_array_equal(got["_healpix_29"], healpix_29(got["ra"], got["dec"]))


# -- command line --------------------------------------------------------------------------
def test_cli_refcat_ingest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="lamostdb")
    add_refcat_parser(parser.add_subparsers(dest="command", required=True))
    cat_dir = tmp_path / "cat"
    args = parser.parse_args(["refcat", "ingest", str(cat_dir), "ps1", str(EXTRACT), "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "ps1: 205 rows added from 1 file(s)" in out and "dropped: 0" in out
    args = parser.parse_args(
        [
            "refcat",
            "ingest",
            str(cat_dir),
            "gaia",
            str(EXTRACT),
            "--quiet",
            "--column",
            "source_id=nope",
        ]
    )
    assert args.func(args) == 2
    assert "no column 'nope'" in capsys.readouterr().err
    assert parse_columns(["ra=RAJ2000_x", "ref_epoch="]) == {"ra": "RAJ2000_x", "ref_epoch": None}
    buf = io.StringIO()
    with Catalog(cat_dir, mode="w") as cat:
        print_report(ingest_refcat(cat, "ps1", [EXTRACT], progress=False), file=buf)
    assert "already ingested, skipped" in buf.getvalue()
