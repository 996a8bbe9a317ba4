"""Issue 11 acceptance: a night of good and damaged files never stops, stores nothing invalid.

One simulated night plus the shipped real spectra, and a seeded corpus of >= 300
damaged copies (``fuzzcorpus``) in the same folder, go through ``lamostdb nightly``
(refcat, ingest, classify, xmatch, ids) and then ``lamostdb export``. Every good file
must be ingested, every damaged one quarantined with a reason (naming the card or
column where the kind has one) or stored and passing the validation rules, and the
stored Parquet rows must all pass those rules.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import NOT_LAMOST, SHIPPED_FILES, SHIPPED_SPECTRA
from fuzzcorpus import Case, build_corpus, fits_bytes, pixels_edited

import lamostdb
from lamostdb.cli.main import main
from lamostdb.io.bounded import storable_path
from lamostdb.io.spectrum import read_spectrum
from lamostdb.io.validate import BADPIX_BIT, DEFAULT_LIMITS, NIGHT_RANGE
from lamostdb.sim import simulate_night

REPO = SHIPPED_SPECTRA.parents[2]
TEST_SPECTRA = sorted((REPO / "tests" / "data" / "spectra").rglob("*.fits*"))
N_SIM = 24
SAFE_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.-]*$")


@pytest.fixture(scope="module")
def fuzz_night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    """The night folder (simulated + real + damaged files) and every case in it."""
    night = tmp_path_factory.mktemp("fuzz") / "night-00023"
    simulate_night(night, n=N_SIM, seed=23)
    sim = sorted((night / "spectra").glob("spec-*.fits"))
    real_dir = night / "spectra" / "real"
    real_dir.mkdir()
    real = []
    for src in SHIPPED_FILES + TEST_SPECTRA:
        dst = real_dir / f"{src.parent.name}-{src.name}"
        shutil.copyfile(src, dst)
        real.append(dst)
    cases = [Case(p, "good", "good") for p in sim]
    cases += [
        Case(p, "not_lamost", "quarantine", "LAMOST")
        if p.name.endswith(tuple(NOT_LAMOST))
        else Case(p, "good", "good")
        for p in real
    ]
    # damage both layouts of both origins: simulated DR9 (COADD) and DR5 (image) files,
    # real DR9+ COADD (cmost) and real DR2-8 image files (spectraml, learninglamost)
    bases = [sim[0], sim[1], sim[2], sim[3]] + [
        p
        for p in real
        if any(
            s in p.name
            for s in (
                "sp01-001__blobafc78e0",
                "sp01-002__blob1202620",
                "spectraml-spec-55919-B5591903_sp01-005",
                "learninglamost-spec-55862-B6212_sp06-003",
            )
        )
    ]
    assert len(bases) == 8
    cases += build_corpus(bases, night / "spectra" / "damaged", seed=11)
    return night, cases


@pytest.fixture(scope="module")
def fuzz_catalog(
    fuzz_night: tuple[Path, list[Case]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int, Path]:
    """The catalogue after ``nightly`` and ``export``: (path, nightly exit, release folder)."""
    night, _ = fuzz_night
    cat = tmp_path_factory.mktemp("fuzzcat") / "cat"
    code = main(
        ["nightly", str(cat), str(night), "--refcat-from-night", "--workers", "1", "--quiet"]
    )
    out = cat.parent / "release"
    exported = main(["export", str(cat), str(out), "--release", "fuzz", "--quiet"])
    assert exported == 0
    return cat, code, out


def test_corpus_is_big_and_covers_every_kind(fuzz_night: tuple[Path, list[Case]]) -> None:
    _, cases = fuzz_night
    damaged = [c for c in cases if c.kind not in ("good", "not_lamost")]
    assert len(damaged) >= 300
    kinds = {c.kind for c in damaged}
    for kind in (
        "naxis_3",
        "naxis_999",
        "naxis_negative",
        "naxis_4",
        "bitpix_7",
        "bitpix_text",
        "fiberid_int64",
        "spid_big",
        "obsid_int128",
        "name_not_utf8",
        "ivar_short",
        "andmask_short",
        "nan_flux_some",
        "neg_ivar_all",
        "zero_ivar_all",
        "zero_flux_all",
        "pixels_1",
        "pixels_10",
        "decreasing_wave",
        "nan_wave_some",
        "duplicated_coadd",
        "planid_dotdot",
        "planid_semicolon",
        "planid_subshell",
        "lmjd_negative",
        "obsid_negative",
        "obsid_bitflip",
        "snrg_bitflip",
        "empty",
        "truncated",
        "random_bytes",
        "gzip_bomb",
        "sparse_100MiB",
        "header_bitflip",
        "data_bitflip",
        "gzip_corrupt",
    ):
        assert kind in kinds, kind


def _outcomes(cat: Path) -> tuple[dict[str, str], set[str]]:
    with lamostdb.open(cat) as c:
        quarantine = dict(c.sql("SELECT path, reason FROM quarantine").iter_rows())
        ingested = set(c.sql("SELECT path FROM ingest_ledger")["path"].to_list())
    return quarantine, ingested


def test_nightly_finishes_every_good_file_is_in_every_damaged_one_accounted_for(
    fuzz_night: tuple[Path, list[Case]], fuzz_catalog: tuple[Path, int, Path]
) -> None:
    _, cases = fuzz_night
    cat, code, _ = fuzz_catalog
    assert code == 0
    quarantine, ingested = _outcomes(cat)
    problems = []
    for c in cases:
        name = storable_path(str(c.path.resolve()))
        if c.expect == "good":
            if name not in ingested:
                problems.append(f"good file not ingested: {name} {quarantine.get(name)}")
        elif c.expect == "quarantine":
            reason = quarantine.get(name)
            if not reason:
                problems.append(f"{c.kind}: not quarantined: {name}")
            elif c.mention and c.mention.lower() not in reason.lower():
                problems.append(f"{c.kind}: reason does not name {c.mention!r}: {reason}")
        else:  # either: quarantined with a reason, or stored (validated below)
            if not (quarantine.get(name) or name in ingested):
                problems.append(f"{c.kind}: neither quarantined nor ingested: {name}")
    assert problems == []
    # the non-UTF-8 name is stored escaped, and the reason of a quarantined one says so
    assert any("\\xff\\xfe" in p for p in ingested)
    bad_name = [r for p, r in quarantine.items() if "\\xc3(" in p]
    assert len(bad_name) == 1 and "not valid UTF-8" in bad_name[0]
    # quarantine reasons are actionable text, not tracebacks
    assert all(len(r) > 20 and "Traceback" not in r for r in quarantine.values())


def test_no_stored_row_breaks_the_validation_rules(fuzz_catalog: tuple[Path, int, Path]) -> None:
    cat, _, _ = fuzz_catalog
    with lamostdb.open(cat) as c:
        rows = c.sql(
            "SELECT specid, survey, npix, lmjd, mjd, spid, fiberid, obsid, planid, "
            "ra, dec, coeff0, coeff1, wavelength, flux, ivar, andmask, ormask "
            "FROM spectra_history"
        ).to_dicts()
    assert len(rows) > 100
    masked = 0
    for r in rows:
        n = r["npix"]
        flux, ivar = np.array(r["flux"], dtype=np.float64), np.array(r["ivar"], dtype=np.float64)
        andmask, ormask = np.array(r["andmask"]), np.array(r["ormask"])
        if r["wavelength"] is None:
            wave = 10.0 ** (r["coeff0"] + r["coeff1"] * np.arange(n))
        else:
            wave = np.array(r["wavelength"], dtype=np.float64)
        assert {len(flux), len(ivar), len(andmask), len(ormask), len(wave)} == {n}, r["specid"]
        assert n >= DEFAULT_LIMITS.min_pixels
        assert np.all(np.isfinite(wave)) and np.all(np.diff(wave) > 0), r["specid"]
        assert np.all(np.isfinite(ivar)) and np.all(ivar >= 0), r["specid"]
        assert np.all(np.isfinite(flux[ivar > 0])), r["specid"]
        usable = int(np.sum(ivar > 0))
        assert usable >= max(
            DEFAULT_LIMITS.min_usable_pixels, math.ceil(DEFAULT_LIMITS.min_usable_fraction * n)
        ), r["specid"]
        assert np.any(flux[ivar > 0] != 0), r["specid"]
        bad = (andmask & BADPIX_BIT) != 0
        assert np.all(ivar[bad] == 0) and np.array_equal(bad, (ormask & BADPIX_BIT) != 0)
        masked += bool(bad.any())
        assert NIGHT_RANGE[0] <= r["lmjd"] <= NIGHT_RANGE[1]
        assert r["obsid"] is None or r["obsid"] > 0
        assert 1 <= r["fiberid"] <= (250 if r["survey"] == "LAMOST" else 1000)
        assert SAFE_TOKEN.match(r["planid"]) and ".." not in r["planid"], r["planid"]
        assert -90 <= r["dec"] <= 90 and 0 <= r["ra"] <= 360
    assert masked >= 10  # the NaN/Inf/negative-pixel kinds were stored masked, not refused


def test_every_stage_finished_and_export_wrote_every_current_spectrum(
    fuzz_catalog: tuple[Path, int, Path],
) -> None:
    cat, code, out = fuzz_catalog
    assert code == 0
    with lamostdb.open(cat) as c:
        stages = set(
            c.sql("SELECT DISTINCT stage FROM runs WHERE state = 'committed'")["stage"].to_list()
        )
        n_current, n_results, n_objects = (
            c.sql(f"SELECT count(*) AS n FROM {t}")["n"][0]  # names from this fixed list
            for t in ("spectra", "results", "objects")
        )
    assert {"ingest", "classify", "xmatch", "ids"} <= stages
    assert n_results == n_current and n_objects == n_current
    exported = [p for p in out.rglob("*.fits*") if p.is_file()]
    assert len(exported) >= n_current
    assert not any(os.path.islink(p) for p in exported)


def test_bad_pixels_are_masked_by_the_documented_rule(tmp_path: Path) -> None:
    """NaN flux, negative and infinite ivar: ivar 0, NaN flux 0, bit 2**30 in both masks."""
    base = next(p for p in SHIPPED_FILES if "sp01-001__blobafc78e0" in p.name)
    nan_flux, neg_ivar, inf_ivar = 10, 500, 2000

    def edit(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        a["flux"][nan_flux] = np.nan
        a["ivar"][neg_ivar] = -1.0
        a["ivar"][inf_ivar] = np.inf
        return a

    damaged = tmp_path / "spec-masked.fits"
    damaged.write_bytes(pixels_edited(fits_bytes(base), edit) or b"")
    good, got = read_spectrum(base), read_spectrum(damaged)
    bad = np.zeros(good.npix, dtype=bool)
    bad[[nan_flux, neg_ivar, inf_ivar]] = True
    assert good.ivar[bad].min() > 0 and not np.any(good.andmask & BADPIX_BIT)
    assert np.all(got.ivar[bad] == 0) and got.flux[nan_flux] == 0
    assert got.flux[neg_ivar] == good.flux[neg_ivar]  # finite flux is kept, only masked
    assert np.array_equal((got.andmask & BADPIX_BIT) != 0, bad)
    assert np.array_equal((got.ormask & BADPIX_BIT) != 0, bad)
    assert np.array_equal(got.andmask & ~BADPIX_BIT, good.andmask)
    for name in ("flux", "ivar", "andmask", "ormask"):
        assert np.array_equal(getattr(got, name)[~bad], getattr(good, name)[~bad]), name


def test_an_unexpected_error_in_one_file_quarantines_that_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader bug (any exception type) and a row the table cannot hold stay per file."""
    import lamostdb.ingest.partition as part
    import lamostdb.ingest.stage as ing
    from lamostdb.catalog.store import Catalog

    files = [p for p in SHIPPED_FILES if "spectraml" in str(p) and p.name not in NOT_LAMOST]
    assert len(files) >= 4
    buggy, unstorable = files[0].name, files[1].name
    parse, to_table = ing.parse_spectrum_bytes, part.records_to_table

    def parse_with_a_bug(raw: bytes, data: bytes, path: str, **kw: object) -> object:
        if path.endswith(buggy):
            raise TypeError("'NoneType' object is not subscriptable")
        return parse(raw, data, path, **kw)  # type: ignore[arg-type]

    def table_refusing_one(records: list, **kw: object) -> object:
        if any(r.source_path.endswith(unstorable) for r in records):
            raise OverflowError("value too large for int16")
        return to_table(records, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ing, "parse_spectrum_bytes", parse_with_a_bug)
    monkeypatch.setattr(part, "records_to_table", table_refusing_one)
    with Catalog.create(tmp_path / "cat") as cat:
        rep = ing.ingest(cat, files, workers=1, progress=False)
    reasons = {Path(p).name: r for p, r in rep.quarantined}
    assert set(reasons) == {buggy, unstorable}
    assert reasons[buggy].startswith("unexpected TypeError while reading: 'NoneType'")
    assert "does not fit the spectra table (OverflowError" in reasons[unstorable]
    assert rep.n_ingested == len(files) - 2
    with lamostdb.open(tmp_path / "cat") as c:
        stored = set(c.sql("SELECT source_path FROM spectra_history")["source_path"].to_list())
    assert {Path(p).name for p in stored} == {p.name for p in files} - {buggy, unstorable}
