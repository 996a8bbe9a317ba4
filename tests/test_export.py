"""``lamostdb export``: a data release checked by fitsverify, STILTS, astropy and our reader.

The catalogue: three simulated nights observing the same field (so some objects have two
epochs in ``mec``) and the shipped real LAMOST spectra (DR1-DR9+ headers, missing obsids),
classified, cross-matched and given identifiers.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from astropy.io import fits
from astropy.table import Table
from conftest import SHIPPED_SPECTRA

import lamostdb
from lamostdb.catalog.schema import load_schema
from lamostdb.catalog.store import Catalog
from lamostdb.export import ExportError, export_release
from lamostdb.export.columns import LIST_NULL_FILL, TNULL
from lamostdb.export.header import original_cards
from lamostdb.io import read_spectrum

#: Seeds of simulated nights whose first plate observes the same survey field (185).
SAME_FIELD_SEEDS = (3, 14, 126)
N_PER_NIGHT = 50
RELEASE = "DR-test-1"


def _build(work: Path) -> tuple[Path, Path]:
    """(classified-only copy, full catalogue) built from the same spectra."""
    from lamostdb.classify.stage import classify
    from lamostdb.ids import assign_ids
    from lamostdb.ingest.stage import ingest
    from lamostdb.refcat import ingest_refcat
    from lamostdb.sim import simulate_night
    from lamostdb.xmatch import xmatch

    nights = [work / f"night{s}" for s in SAME_FIELD_SEEDS]
    for seed, night in zip(SAME_FIELD_SEEDS, nights, strict=True):
        simulate_night(night, n=N_PER_NIGHT, seed=seed)
    full = work / "cat"
    with Catalog.create(full) as cat:
        ingest(cat, [n / "spectra" for n in nights] + [SHIPPED_SPECTRA], workers=2, progress=False)
        classify(cat, workers=2, progress=False)
    classified_only = work / "classified-only"
    shutil.copytree(full, classified_only)
    with Catalog(full, mode="w") as cat:
        ingest_refcat(cat, "gaia", [nights[0] / "gaia.parquet"], progress=False)
        ingest_refcat(cat, "ps1", [nights[0] / "ps1.parquet"], progress=False)
        xmatch(cat, progress=False)
        assign_ids(cat, progress=False)
    return classified_only, full


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _build(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def catalog(catalogs: tuple[Path, Path]) -> Path:
    return catalogs[1]


@pytest.fixture(scope="module")
def release(catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release") / "dr"
    with lamostdb.open(catalog) as cat:
        rep = export_release(cat, out, release=RELEASE, progress=False)
    assert rep.n_files == rep.n_spectra + 2
    return out


def _fits_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith((".fits", ".fits.gz")))


def _spectrum_files(root: Path) -> list[Path]:
    return [p for p in _fits_files(root) if p.parent != root]


def _sql(catalog: Path, query: str) -> pl.DataFrame:
    with lamostdb.open(catalog) as cat:
        return cat.sql(query)


# -- external checkers --------------------------------------------------------------------
def _fitsverify(files: list[Path], tmp_path: Path) -> None:
    listing = tmp_path / "files.txt"
    listing.write_text("".join(f"{p}\n" for p in files))
    r = subprocess.run(
        ["fitsverify", "-q", f"@{listing}"], capture_output=True, text=True, timeout=600
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("verification")]
    bad = [ln for ln in lines if not ln.startswith("verification OK")]
    assert not bad, bad[:5]
    assert len(lines) == len(files) and r.returncode == 0, r.stdout[-2000:] + r.stderr


def test_fitsverify_finds_no_error_and_no_warning_in_any_file(
    release: Path, tmp_path: Path
) -> None:
    files = _fits_files(release)
    assert len(files) > 150
    _fitsverify(files, tmp_path)


def _stilts_meta(path: Path) -> str:
    r = subprocess.run(
        ["stilts", "tpipe", f"in={path}", "omode=meta"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("view", ["lrs", "mec"])
def test_stilts_reads_the_tables_with_units_descriptions_and_row_counts(
    release: Path, catalog: Path, view: str
) -> None:
    meta = _stilts_meta(release / f"{view}.fits")
    n = _sql(catalog, f"SELECT count(*) AS n FROM {view}")["n"][0]  # view from the list above
    assert re.search(rf"^Rows:\s+{n}$", meta, re.M), meta[:500]
    schema = load_schema(view)
    assert re.search(rf"^Columns:\s+{len(schema.columns)}$", meta, re.M)
    for col in schema.columns:
        unit = f"/{col.unit}" if col.unit else ""
        line = re.search(rf"^\s*\d+: {col.name}\([^)]*\){re.escape(unit)} - (.*)$", meta, re.M)
        assert line, (view, col.name, unit)
        assert line.group(1).startswith(col.description[:20])


def test_astropy_opens_every_file_with_valid_checksums_and_no_warning(release: Path) -> None:
    for path in _fits_files(release):
        with fits.open(path, checksum=True) as hdul:  # warnings are errors in this suite
            hdul.verify("exception")
            assert all(h._checksum_valid and h._datasum_valid for h in hdul)
            for hdu in hdul[1:]:
                for name in hdu.columns.names:
                    hdu.data[name]  # noqa: B018 - converting every column must not warn
            assert hdul[0].header["RELEASE"] == RELEASE


# -- catalogue tables ---------------------------------------------------------------------
def _as_fits(col: Any, values: list[Any]) -> list[Any]:
    """The view's values as the FITS column holds them (see lamostdb.export.columns)."""
    if col.type == "string":
        return ["" if v is None else v for v in values]
    if col.type in TNULL:
        return [TNULL[col.type] if v is None else v for v in values]
    if col.type == "list<string>":
        return [",".join("" if e is None else e for e in v) for v in values]
    if col.type.startswith("list<int"):
        return [[LIST_NULL_FILL if e is None else e for e in v] for v in values]
    return values


def _fits_values(col: Any, data: Any) -> list[Any]:
    raw = data[col.name]
    if col.type == "list<string>":
        return ["".join(v) for v in raw]
    if col.type.startswith("list<"):
        return [list(v) for v in raw]
    return list(raw)


@pytest.mark.parametrize(("view", "key"), [("lrs", "specid"), ("mec", "uid")])
def test_tables_hold_the_views_values_and_contracts(
    release: Path, catalog: Path, view: str, key: str
) -> None:
    schema = load_schema(view)
    expected = _sql(catalog, f"SELECT * FROM {view} ORDER BY {key}")  # names from the list
    with fits.open(release / f"{view}.fits") as hdul:
        h, data = hdul[1].header, hdul[1].data
        assert h["EXTNAME"] == view.upper() and h["NAXIS2"] == expected.height
        assert hdul[0].header["NROWS"] == expected.height
        for i, col in enumerate(schema.columns, start=1):
            assert h[f"TTYPE{i}"] == col.name
            assert h.get(f"TUNIT{i}") == col.unit
            assert h.get(f"TDISP{i}") == col.tdisp
            assert h[f"TCOMM{i}"].startswith(col.description[:20])
            if col.type == "list<string>":
                assert h[f"TCOMM{i}"].endswith(" (comma-separated)")
            elif col.type.startswith("list<int"):
                assert h[f"TCOMM{i}"].endswith(f" ({LIST_NULL_FILL}: none)")
            want = _as_fits(col, expected[col.name].to_list())
            got = _fits_values(col, data)
            if col.type.startswith("float") or col.type == "list<float64>":
                flat_w = np.array(
                    [x for v in want for x in (v if isinstance(v, list) else [v])], dtype=float
                )
                flat_g = np.array(
                    [x for v in got for x in (v if isinstance(v, list) else [v])], dtype=float
                )
                np.testing.assert_array_equal(flat_g, flat_w, err_msg=col.name)
            else:
                assert got == want, col.name
    if view == "mec":  # the lists were tested on objects with several epochs
        assert (expected["n_epochs"] > 1).sum() >= 2


def test_astropy_table_reader_gets_units_masks_and_formats(release: Path) -> None:
    lrs = Table.read(release / "lrs.fits")
    assert lrs["ra"].unit == "deg" and lrs["rv_kms"].unit == "km / s"
    assert lrs["rv_err_kms"].unit == "km / s"
    assert lrs["ra"].format == "{:11.6f}"
    assert lrs["obsid"].mask.sum() > 0  # TNULL read as masked: real DR1/DR2 files lack obsid
    mec = Table.read(release / "mec.fits")
    assert mec["ura"].unit == "deg" and len(mec) > 0


# -- spectrum files ----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_spectra_read_back_bit_identical_with_our_classification(
    release: Path, catalog: Path
) -> None:
    files = _spectrum_files(release)
    results = {r["specid"]: r for r in _sql(catalog, "SELECT * FROM results").to_dicts()}
    uids = dict(_sql(catalog, "SELECT specid, uid FROM objects").rows())
    assert len(files) == len(results)
    written: Counter[str] = Counter()
    with lamostdb.open(catalog) as cat:
        for path in files:
            fast, ref = read_spectrum(path), read_spectrum(path, fast=False)
            stored = cat.spectrum(specid=fast.specid)
            for rec in (fast, ref):
                for name in ("flux", "ivar", "andmask", "ormask"):
                    a, b = getattr(rec, name), getattr(stored, name)
                    assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (path, name)
                assert (rec.wavelength is None) == (stored.wavelength is None)
                if stored.wavelength is not None:
                    assert rec.wavelength.tobytes() == stored.wavelength.tobytes()
                np.testing.assert_array_equal(rec.wave_angstrom(), stored.wave_angstrom())
                for name in (
                    "obsid",
                    "lmjd",
                    "mjd",
                    "planid",
                    "spid",
                    "fiberid",
                    "ra",
                    "dec",
                    "coeff0",
                    "coeff1",
                    "fibermask",
                    "fibertype",
                    "data_v",
                    "verspipe",
                    "designation",
                    "objname",
                    "helio_rv",
                ):
                    assert getattr(rec, name) == getattr(stored, name), (path, name)
                for name in ("snru", "snrg", "snrr", "snri", "snrz"):
                    a, b = getattr(rec, name), getattr(stored, name)
                    assert (a is None and b is None) or np.float32(a) == np.float32(b)
            res = results[fast.specid]
            header = fits.getheader(path)
            assert (header["CLASS"], header["SUBCLASS"], header["Z"]) == (
                res["class"],
                res["subclass"],
                res["z"],
            )
            assert header["Z_ERR"] == (-9999.0 if res["z_err"] is None else res["z_err"])
            assert header["UID"] == uids[fast.specid]
            assert fast.lasp_class == res["class"]  # CLASS now holds our class
            for key, name in (
                ("LASPCLS", "lasp_class"),
                ("LASPSUBC", "lasp_subclass"),
                ("LASP_Z", "lasp_z"),
            ):
                assert header.get(key) == getattr(stored, name), (path, key)
            for name in ("conf", "zwarning"):  # written when the result has them
                if res.get(name) is None:
                    assert name.upper() not in header
                else:
                    assert header[name.upper()] == res[name]
                    written[name] += 1
    assert written["conf"] == written["zwarning"] == len(files)  # engine >= 0.2.0


def test_spectrum_header_keeps_the_other_original_keys_and_drops_the_image_wcs(
    release: Path,
) -> None:
    name = "spec-55862-B6212_sp06-003.fits"
    path = next(p for p in _spectrum_files(release) if p.name == name)
    header = fits.getheader(path)
    original = fits.getheader(SHIPPED_SPECTRA / "learninglamost" / name)
    for key in ("TELESCOP", "SEEING", "EXPID01", "FSTAR", "MAGTYPE", "MAG2"):
        assert header[key] == original[key]
    for key in ("CRVAL1", "CD1_1", "CTYPE1", "WAT1_001", "NAXIS1", "N_EXTEN", "SN_G"):
        assert key not in header
    assert header["SNRG"] == original["SN_G"]  # DR9 spelling
    assert header["LASPCLS"] == original["CLASS"] and header["LASP_Z"] == original["Z"]
    assert header["FILENAME"] == name and header["NAXIS"] == 0
    assert fits.getheader(path, "COADD")["TFORM1"] == "3904E"


def test_original_cards_drop_damaged_ones_and_keep_long_strings() -> None:
    cards = [
        "SIMPLE  =                    T",
        "COMMENT --------EMPTY SECTION",
        "COMMENT --------SITE",
        "TELESCOP= 'LAMOST  '           / GuoShouJing Telescope",
        "SEEING  = 2.9.1 / damaged",
        "NOTE    = 'a long string that goes on&'",
        "CONTINUE  'and ends here'",
        "CLASS   = 'STAR    '",
        "CRVAL1  =               3.5682",
        "JUNK    = 'lost&'",
        "CONTINUE  'orphan'",
        "SEEING  = 'x' junk",
        "END",
    ]
    text = "".join(c.ljust(80) for c in cards)
    unclean: Counter[str] = Counter()
    kept = [c.decode().rstrip() for c in original_cards(text, frozenset({"JUNK"}), unclean)]
    assert kept == ["COMMENT --------SITE", cards[3], cards[5], cards[6]]
    assert unclean == Counter({"SEEING": 2})


# -- manifest --------------------------------------------------------------------------
def test_manifest_lists_every_file_with_its_checksum_and_rows(release: Path, catalog: Path) -> None:
    manifest = json.loads((release / "manifest.json").read_text())
    on_disk = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == on_disk - {"manifest.json", "SHA256SUMS"}
    for rel, entry in listed.items():
        data = (release / rel).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    for view in ("lrs", "mec"):
        with fits.open(release / f"{view}.fits") as hdul:
            assert listed[f"{view}.fits"]["rows"] == hdul[1].header["NAXIS2"]
    assert manifest["release"] == RELEASE and manifest["lamostdb_version"] == lamostdb.__version__
    assert manifest["engine_versions"] == sorted(
        _sql(catalog, "SELECT DISTINCT engine_version FROM results")["engine_version"]
    )
    assert manifest["counts"]["spectra"] == len(_spectrum_files(release))
    assert "FROM lrs WHERE (TRUE)" in manifest["selection"]["statement"]
    r = subprocess.run(
        ["sha256sum", "--check", "--quiet", "SHA256SUMS"],
        cwd=release,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert len((release / "SHA256SUMS").read_text().splitlines()) == len(on_disk) - 1


# -- subsets, batches, options --------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_where_exports_exactly_the_matching_spectra(catalog: Path, tmp_path: Path) -> None:
    where = "class = 'QSO' OR (class = 'GALAXY' AND snrg > 5)"
    out = tmp_path / "subset"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamostdb.cli",
            "export",
            str(catalog),
            str(out),
            "--release",
            "subset",
            "--where",
            where,
            "--gzip",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    want = set(_sql(catalog, f"SELECT specid FROM lrs WHERE {where}")["specid"])
    assert 0 < len(want) < 40
    files = _spectrum_files(out)
    assert {read_spectrum(p).specid for p in files} == want
    assert all(p.name.endswith(".fits.gz") for p in files)
    lrs = Table.read(out / "lrs.fits")
    assert set(lrs["specid"]) == want
    uids = set(_sql(catalog, f"SELECT uid FROM lrs WHERE {where}")["uid"])
    assert set(Table.read(out / "mec.fits")["uid"]) == uids
    assert json.loads((out / "manifest.json").read_text())["selection"]["where"] == where
    _fitsverify(_fits_files(out), tmp_path)


def test_batch_size_is_honoured_and_does_not_change_the_data(
    catalog: Path, release: Path, tmp_path: Path
) -> None:
    with lamostdb.open(catalog) as cat:
        rep = export_release(cat, tmp_path / "b7", release=RELEASE, batch_size=7, progress=False)
        # the selection is dropped afterwards: the catalogue connection is as before
        left = cat.con.sql(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'export_selection'"
        ).fetchall()
    assert left == [(0,)]
    assert rep.max_batch_rows == 7
    for view in ("lrs.fits", "mec.fits"):
        a, b = (release / view).read_bytes(), (tmp_path / "b7" / view).read_bytes()
        # the same bytes but for the creation date and the checksums that cover it
        assert _without_dates(a) == _without_dates(b)
    spectra = {p.name: p for p in _spectrum_files(release)}
    for path in _spectrum_files(tmp_path / "b7"):
        assert _without_dates(path.read_bytes()) == _without_dates(spectra[path.name].read_bytes())


def _without_dates(data: bytes) -> bytes:
    return re.sub(rb"(DATE    = |CHECKSUM= |DATASUM = )'[^']*'", rb"\1''", data)


def test_catalog_only_writes_tables_and_manifest(catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    out.mkdir()  # an empty folder is accepted
    with lamostdb.open(catalog) as cat:
        rep = export_release(cat, out, release="tables only", spectra=False, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "SHA256SUMS",
        "lrs.fits",
        "manifest.json",
        "mec.fits",
    ]
    assert rep.n_files == 2
    assert json.loads((out / "manifest.json").read_text())["counts"]["spectra"] == 0


# -- errors ----------------------------------------------------------------------------
def _export_error(catalog: Path, out: Path, **kwargs: Any) -> str:
    with lamostdb.open(catalog) as cat, pytest.raises(ExportError) as info:
        export_release(cat, out, release=kwargs.pop("release", "r"), progress=False, **kwargs)
    assert not out.exists() or not any(out.iterdir())  # never half a release
    assert not list(out.parent.glob(f".{out.name}.partial-*"))
    return str(info.value)


def test_error_when_out_is_not_empty(catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("x")
    with lamostdb.open(catalog) as cat, pytest.raises(ExportError) as info:
        export_release(cat, out, release="r", progress=False)
    assert f"{out.absolute()} exists and is not an empty folder" in str(info.value)
    assert (out / "x").read_text() == "x"


def test_error_when_nothing_is_classified(tmp_path: Path) -> None:
    from lamostdb.ingest.stage import ingest

    with Catalog.create(tmp_path / "raw") as cat:
        ingest(cat, [SHIPPED_SPECTRA], workers=1, progress=False)
    msg = _export_error(tmp_path / "raw", tmp_path / "out")
    assert "has no results yet: run `lamostdb classify" in msg


def test_error_when_ids_are_missing(catalogs: tuple[Path, Path], tmp_path: Path) -> None:
    msg = _export_error(catalogs[0], tmp_path / "out")
    assert re.search(
        r"\d+ of the \d+ spectra to export have no object identifiers "
        r"\(e\.g\. \S+\): run `lamostdb xmatch .*` and `lamostdb ids",
        msg,
    ), msg


def test_error_when_new_spectra_are_not_classified(catalog: Path, tmp_path: Path) -> None:
    from lamostdb.ingest.stage import ingest
    from lamostdb.sim import simulate_night

    copy = tmp_path / "cat"
    shutil.copytree(catalog, copy)
    simulate_night(tmp_path / "late", n=3, seed=4)
    with Catalog(copy, mode="w") as cat:
        ingest(cat, [tmp_path / "late" / "spectra"], workers=1, progress=False)
    msg = _export_error(copy, tmp_path / "out")
    assert re.search(
        r"3 of the \d+ spectra to export have no classification "
        r"\(e\.g\. 57004-\S+\): run `lamostdb classify",
        msg,
    ), msg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"where": "class = 'NOPE'"}, "--where \"class = 'NOPE'\" matches no current LAMOST"),
        ({"where": "no_such_column > 1"}, "failed over the lrs view"),
        ({"where": "TRUE; DROP TABLE runs"}, "not a SQL condition|not several statements"),
        ({"where": "  "}, "--where is empty"),
        ({"release": ""}, "--release NAME is empty"),
        ({"release": "caf\u00e9"}, "must be printable ASCII"),
        ({"batch_size": 0}, "--batch-size must be >= 1"),
    ],
)
def test_errors_say_what_is_wrong(
    catalog: Path, tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    assert re.search(match, _export_error(catalog, tmp_path / "out", **kwargs))


def test_cli_reports_errors_with_exit_status_2(catalog: Path, tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamostdb.cli",
            "export",
            str(catalog),
            str(tmp_path / "out"),
            "--release",
            "r",
            "--where",
            "class = 'NOPE'",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("lamostdb export: error: --where")
    assert not (tmp_path / "out").exists()


# -- partitions on an executor ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_release_written_on_a_process_pool_equals_one_process(
    catalog: Path, release: Path, tmp_path: Path
) -> None:
    """Spectrum files written partition by partition by 2 worker processes: the same files,
    byte for byte (but the dates), and the same manifest entries as the one-process run."""
    out = tmp_path / "pool"
    with lamostdb.open(catalog) as cat:
        rep = export_release(cat, out, release=RELEASE, workers=2, batch_size=16, progress=False)
    ex = rep.executor
    assert ex["cluster"] == "local:2" and ex["n_workers"] == 2
    assert sum(ex["tasks_per_worker"].values()) > 2  # one task per spectra partition
    one = {p.relative_to(release): p for p in _spectrum_files(release)}
    two = {p.relative_to(out): p for p in _spectrum_files(out)}
    assert one.keys() == two.keys() and len(one) == rep.n_spectra - len(rep.not_written)
    for rel, path in two.items():
        assert _without_dates(path.read_bytes()) == _without_dates(one[rel].read_bytes())
    entries = [
        {
            f["path"]: (f["kind"], f["bytes"])
            for f in json.loads((root / "manifest.json").read_text())["files"]
        }
        for root in (release, out)
    ]
    assert entries[0] == entries[1]
    assert not (out / ".workers").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in release.iterdir())
