"""Tests of the night simulator (lamostdb.sim) and the FITS writer it uses.

Every check compares values: bytes between runs, what astropy reads back
against what was meant to be written, and the physics of the simulated spectra
against the truth table.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.time import Time
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lamostdb.constants import C_KMS
from lamostdb.io.fits_write import (
    build_header,
    format_card,
    write_coadd_file,
    write_image_file,
)
from lamostdb.sim import Artefacts, night_fields, plan_night, render, simulate_night
from lamostdb.sim import artefacts as art
from lamostdb.sim import spectra_model as sm
from lamostdb.sim.refcat import designation, mjd_to_date
from lamostdb.templates import load_default_templates

WAVE32 = (10.0 ** (3.5682 + 1e-4 * np.arange(3909))).astype(np.float32)
G_BAND = (WAVE32 >= 4000) & (WAVE32 < 5500)
# Any printable ASCII, plus strings dense in the characters the FITS string
# syntax treats specially (quote, the long-string '&' marker, trailing blanks).
PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200) | st.text(
    st.sampled_from("x'& "), min_size=50, max_size=200
)
FAST = settings(derandomize=True, max_examples=300, deadline=None)


def _standard_string(cards: str) -> str:
    """Oracle: a string value read by the rules of FITS Standard 4.0 (4.2.1, 4.2.1.2)."""
    out = []
    for i in range(0, len(cards), 80):
        text, pos, piece = cards[i + 10 : i + 80], 1, ""
        assert text[0] == "'"
        while True:  # '' is an escaped quote, a lone ' closes the string
            if text[pos] == "'" and text[pos + 1 : pos + 2] == "'":
                piece, pos = piece + "'", pos + 2
            elif text[pos] == "'":
                break
            else:
                piece, pos = piece + text[pos], pos + 1
        more = i + 80 < len(cards) and cards[i + 80 : i + 88] == "CONTINUE"
        out.append(piece.rstrip()[:-1] if more else piece)
    return "".join(out).rstrip()


# --------------------------------------------------------------------------- FITS cards


@FAST
@given(value=PRINTABLE)
def test_string_cards_read_back_by_astropy(value: str) -> None:
    card = format_card("OBJNAME", value, "name")
    assert len(card) % 80 == 0
    # FITS string values keep leading but not trailing spaces (Standard 4.0, 4.2.1).
    assert _standard_string(card.decode("ascii")) == value.rstrip()
    # astropy ends a string early at a doubled quote followed by "/" (astropy
    # issue #18831); such values are checked against the standard's rule above only.
    assume(not re.search(r"' */", value))
    assert fits.Card.fromstring(card.decode("ascii")).value == value.rstrip()
    raw = build_header([("OBJNAME", value, ""), ("NEXT", 2, "")])
    header = fits.Header.fromstring(raw.decode("ascii"))
    assert header["OBJNAME"] == value.rstrip() and header["NEXT"] == 2


@FAST
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_float_cards_round_trip_exactly(value: float) -> None:
    card = format_card("Z", value)
    read = fits.Card.fromstring(card.decode("ascii")).value
    assert isinstance(read, float) and read == value
    text = card.decode("ascii")[10:30]
    if len(repr(value)) <= 18:  # fits the fixed format: right-justified in columns 11-30
        assert text.strip() and text == text.strip().rjust(20)


@FAST
@given(value=st.integers(-(2**63), 2**63 - 1) | st.booleans())
def test_int_and_bool_cards_round_trip(value: int | bool) -> None:
    card = format_card("OBSID", value).decode("ascii")
    read = fits.Card.fromstring(card).value
    assert read == value and type(read) is type(value)
    assert card[29] != " "  # right-justified: the value ends in column 30


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("", "'        '"),
        ("O'Brien", "'O''Brien'"),
        ("LAMOST", "'LAMOST  '"),
        ("'", "'''      '"),
        (" lead", "' lead   '"),
    ],
)
def test_string_card_layout(value: str, field: str) -> None:
    # Quoted from column 11, quotes doubled, padded to at least 8 characters.
    card = format_card("KEY", value).decode("ascii")
    assert card == f"KEY     = {field}".ljust(80)
    assert fits.Card.fromstring(card).value == value


@pytest.mark.parametrize("value", ["x" * 100 + "&", "x" * 68 + "&", "x" * 66 + "'&", "&" * 150])
def test_long_strings_ending_in_ampersand(value: str) -> None:
    # Regression: a trailing '&' in the last CONTINUE piece was read as "continued".
    raw = build_header([("KEY", value, "c"), ("NEXT", 1, "")])
    header = fits.Header.fromstring(raw.decode("ascii"))
    assert header["KEY"] == value and header["NEXT"] == 1


def test_long_comment_is_cut_not_the_value() -> None:
    card = format_card("PLANID", "x" * 60, "c" * 100)
    assert len(card) == 80
    parsed = fits.Card.fromstring(card.decode())
    assert parsed.value == "x" * 60 and parsed.comment == "c" * 5


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("TOOLONGKEY", 1, ValueError),
        ("BAD KEY", 1, ValueError),
        ("K", float("nan"), ValueError),
        ("K", "caf\u00e9", ValueError),
        ("K", "tab\t", ValueError),
        ("K", [1], TypeError),
    ],
)
def test_bad_cards_are_refused(key: str, value: object, error: type) -> None:
    with pytest.raises(error):
        format_card(key, value)


def test_header_blocks_and_astropy_agree() -> None:
    cards = [
        ("OBSID", 10000000001, "id"),
        ("RA", 332.202274, ""),
        ("HELIO", True, ""),
        ("DESIG", "LAMOST J220848.54-020324.3", ""),
        ("COMMENT", "--- section", ""),
        ("LONGSTR", "a'b" * 40, "tail"),
    ]
    raw = build_header(cards)
    assert len(raw) % 2880 == 0
    header = fits.Header.fromstring(raw.decode("ascii"))
    assert [header[k] for k in ("OBSID", "RA", "HELIO", "DESIG", "LONGSTR")] == [
        10000000001,
        332.202274,
        True,
        "LAMOST J220848.54-020324.3",
        "a'b" * 40,
    ]
    assert list(header["COMMENT"]) == ["--- section"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.int32, np.uint8])
def test_writers_round_trip_through_astropy(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(4)
    image = (rng.normal(size=(5, 37)) * 50).astype(dtype)
    write_image_file(tmp_path / "a.fits", [("OBSID", 7, "")], image)
    cols = {"FLUX": image[0], "IVAR": image[1].astype(np.float32)}
    write_coadd_file(tmp_path / "b.fits.gz", [("OBSID", 8, "")], cols)
    with fits.open(tmp_path / "a.fits") as hdul:
        hdul.verify("exception")
        assert hdul[0].header["OBSID"] == 7
        np.testing.assert_array_equal(hdul[0].data, image)
    with fits.open(tmp_path / "b.fits.gz") as hdul:
        hdul.verify("exception")
        assert hdul["COADD"].header["TFORM1"].startswith("37")
        for name, values in cols.items():
            np.testing.assert_array_equal(hdul["COADD"].data[name][0], values)


def test_structural_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NAXIS"):
        write_image_file(tmp_path / "x.fits", [("NAXIS", 3, "")], np.zeros((2, 2), np.float32))


# ------------------------------------------------------------------- small pure helpers


def test_designation_matches_a_real_lamost_header() -> None:
    # RA, DEC and DESIG of LAMOST obsid 101001 (DR9 file in shared/data).
    assert designation(332.202274, -2.056767) == "LAMOST J220848.54-020324.3"
    assert designation(0.0, 0.0) == "LAMOST J000000.00+000000.0"
    assert designation(359.9999999, -0.00001) == "LAMOST J235959.99-000000.0"


def test_mjd_to_date() -> None:
    assert mjd_to_date(0) == "1858-11-17"
    assert mjd_to_date(51544) == "2000-01-01"
    assert mjd_to_date(55858) == "2011-10-24"  # MJD/DATE-OBS of a real LAMOST file


def test_shift_templates_equals_np_interp() -> None:
    templates = load_default_templates()
    rng = np.random.default_rng(8)
    wave = sm.wave_angstrom()
    for key, z_max in (("STAR", 0.004), ("GALAXY", 0.6), ("QSO", 4.0)):
        tset = templates[key]
        rows = rng.integers(0, tset.vectors.shape[0], size=20)
        z = rng.uniform(-0.004, z_max, size=20)
        got = sm.shift_templates(tset, rows, z, wave)
        want = np.array(
            [
                np.interp(wave / (1 + zz), tset.wave_angstrom, tset.vectors[r])
                for r, zz in zip(rows, z, strict=True)
            ]
        )
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


@settings(derandomize=True, max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(1, 30))
def test_masked_median_equals_np_median(seed: int, m: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(4, m))
    valid = rng.uniform(size=(4, m)) < 0.6
    got = sm.masked_median(values, valid)
    want = [np.median(v[k]) if k.any() else 0.0 for v, k in zip(values, valid, strict=True)]
    np.testing.assert_allclose(got, want)


def test_subclass_names() -> None:
    names = load_default_templates()["STAR"].names
    subs = {n: sm.subclass_of(n) for n in names if n not in sm.EXCLUDED_STARS}
    assert subs["M4.5:III (123657)"] == "M4" and subs["CalciumWD"] == "WD"
    assert subs["O9.5Iae (30614)"] == "O9" and subs["sd:F0 (G_84-29)"] == "F0"
    assert subs["Am (78362)"] == "F0"
    assert all(
        s in ("WD", "Carbon") or (s[0] in "OBAFGKM" and s[1:].isdigit()) for s in subs.values()
    )


def test_arguments_are_checked(tmp_path: Path) -> None:
    for kwargs in (
        {"n": 1_000_000, "seed": 1},
        {"n": 10, "seed": -1},
        {"n": 10, "seed": 90_000},
        {"n": 0, "seed": 1},
        {"n": 10, "seed": 1, "layout": "dr7"},
        {"n": 10, "seed": 1, "tilt_max": 2.0},
    ):
        with pytest.raises(ValueError):
            simulate_night(tmp_path / "x", **kwargs)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.txt").write_text("x")
    with pytest.raises(FileExistsError):
        simulate_night(tmp_path / "full", n=5, seed=1)


# ------------------------------------------------------------------------ one small night


def _table(path: Path) -> pd.DataFrame:
    # Nullable int64 ids (Gaia source_id ~ 2**60) must not pass through float64.
    return pq.read_table(path).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("night") / "n"
    return out, simulate_night(out, n=200, seed=11)


def _read(path: Path) -> tuple[fits.Header, dict[str, np.ndarray]]:
    with fits.open(path) as hdul:
        hdul.verify("exception")
        header = hdul[0].header.copy()
        if header["DATA_V"] == "LAMOST DR9":
            assert hdul[0].data is None and hdul[1].name == "COADD"
            data = {c: np.array(hdul[1].data[c][0]) for c in hdul[1].columns.names}
        else:
            assert hdul[0].data.shape == (5, 3909) and hdul[0].data.dtype == ">f4"
            data = dict(
                zip(
                    ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK"),
                    np.array(hdul[0].data),
                    strict=True,
                )
            )
    return header, data


def test_same_seed_same_bytes_other_seed_other_bytes(night, tmp_path: Path) -> None:
    out, _ = night
    again = simulate_night(tmp_path / "again", n=200, seed=11)
    assert _digest(out) == _digest(tmp_path / "again")
    other = simulate_night(tmp_path / "other", n=200, seed=12)
    assert set(_digest(out).values()).isdisjoint(_digest(tmp_path / "other").values())
    assert again["counts"] == night[1]["counts"] and other["files"] != again["files"]


def test_gzip_files_hold_the_same_bytes(night, tmp_path: Path) -> None:
    out, _ = night
    summary = simulate_night(tmp_path / "gz", n=200, seed=11, gzip=True)
    for gz_path in map(Path, summary["files"][:40]):
        plain = out / "spectra" / gz_path.name.removesuffix(".gz")
        raw = gz_path.read_bytes()
        assert raw[4:8] == b"\0\0\0\0"  # gzip MTIME field is zero: reproducible output
        assert gzip.decompress(raw) == plain.read_bytes()
        with fits.open(gz_path) as hdul:
            assert hdul[0].header["OBSID"] > 0


def test_every_file_reads_back_as_intended(night) -> None:
    out, summary = night
    truth = pq.read_table(out / "truth.parquet").to_pylist()
    assert [r["obsid"] for r in truth] == [10_011_000_000 + i for i in range(200)]
    assert len(list((out / "spectra").iterdir())) == 200
    for row in truth:
        header, data = _read(out / "spectra" / row["filename"])
        assert header["OBSID"] == row["obsid"] and header["FIBERID"] == row["fiberid"]
        assert header["SPID"] == row["spid"] and row["filename"] == (
            f"spec-{header['LMJD']}-{header['PLANID']}_sp{header['SPID']:02d}"
            f"-{header['FIBERID']:03d}.fits"
        )
        assert (header["RA"], header["DEC"]) == (row["ra"], row["dec"])
        assert header["MJD"] == header["LMJD"] - 1 == row["mjd"]
        assert header["DATE-OBS"].startswith(mjd_to_date(header["MJD"]))
        assert header["DATA_V"] == {"dr9": "LAMOST DR9", "dr5": "LAMOST DR5"}[row["layout"]]
        assert row["layout"] == ("dr9" if row["spid"] % 2 else "dr5")
        np.testing.assert_array_equal(data["WAVELENGTH"], WAVE32)
        ivar, andmask = data["IVAR"], data["ANDMASK"].astype(np.int64)
        ormask = data["ORMASK"].astype(np.int64)
        assert np.all(ivar[andmask != 0] == 0) and np.all(ivar[andmask == 0] > 0)
        assert np.all(ormask & andmask == andmask)
        assert (row["n_masked_runs"] > 0) == bool(np.any(andmask))
        ok = G_BAND & (ivar > 0)
        measured = np.median(data["FLUX"][ok] * np.sqrt(ivar[ok]))
        assert header["SNRG"] == pytest.approx(measured, abs=0.0051)
        if row["class"] == "UNKNOWN":
            assert (header["CLASS"], header["SUBCLASS"], header["Z"]) == ("Unknown", "Non", -9999.0)
            assert header["FIBERTYP"] == ("Sky" if row["unknown_kind"] == "sky" else "Obj")
            continue
        assert header["CLASS"] == row["class"] and header["SUBCLASS"] == row["subclass"]
        assert abs(header["Z"] - row["z"]) < 6 * header["Z_ERR"]
        # Truth S/N is the noise-free median; the noisy median agrees except at very
        # low S/N where spectral features inside the band skew it.
        assert measured == pytest.approx(row["snr_g"], rel=0.15 if row["snr_g"] >= 5 else 0.25)


def test_distortion_parameters_obey_their_limits(night) -> None:
    out, _ = night
    truth = _table(out / "truth.parquet")
    tilt = np.stack(truth["tilt_coeffs"].to_numpy()) @ sm.legendre_basis()
    assert np.abs(tilt).max() <= 0.30 and np.abs(tilt).max() > 0.2
    assert np.all(np.abs(truth["arm_scale"] - 1) <= 0.15)
    assert truth["arm_join_angstrom"].between(5700, 5900).all()
    stars = truth[truth["class"] == "STAR"]
    np.testing.assert_allclose(stars["z"], stars["v_kms"] / C_KMS)


def test_arm_mismatch_is_in_the_model(night) -> None:
    """NORMALIZATION (noise-free model) / same model without the step == arm_scale."""
    out, _ = night
    templates = load_default_templates()
    plan = plan_night(11, 200, templates)
    flat = dict(plan, arm_scale=np.ones_like(plan["arm_scale"]))
    sl = slice(0, 60)
    without = render(flat, sl, templates, np.random.default_rng(0))["model"]
    wave = sm.wave_angstrom()
    steps, scales = [], []
    for j in range(60):
        if plan["layout"][j] != "dr9" or plan["class"][j] == "UNKNOWN":
            continue
        _, data = _read(out / "spectra" / plan["filename"][j])
        ratio = data["NORMALIZATION"].astype(np.float64) / without[j]
        red = wave > plan["arm_join"][j]
        np.testing.assert_allclose(ratio[red], plan["arm_scale"][j], rtol=1e-6)
        np.testing.assert_allclose(ratio[~red], 1.0, rtol=1e-6)
        # Seen in the file alone too: the jump between the two pixels at the join.
        k = int(np.argmax(red))
        steps.append(data["NORMALIZATION"][k] / data["NORMALIZATION"][k - 1] / plan["arm_scale"][j])
        scales.append(plan["arm_scale"][j])
    assert len(steps) >= 20 and np.std(scales) > 0.05
    # Spectral slope and lines move single pixels by a few per cent at most.
    assert np.median(np.abs(np.array(steps) - 1)) < 0.01


# ------------------------------------------------------------------------ a larger night


@pytest.fixture(scope="module")
def big_night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("big") / "n"
    return out, simulate_night(out, n=2000, seed=2500, layout="dr9")


def test_class_mix(big_night) -> None:
    out, summary = big_night
    counts = summary["counts"]
    assert sum(counts.values()) == 2000 and summary["layouts"] == {"dr9": 2000}
    for cls, frac in (("STAR", 0.88), ("GALAXY", 0.05), ("QSO", 0.03), ("UNKNOWN", 0.04)):
        sigma = np.sqrt(2000 * frac * (1 - frac))
        assert abs(counts[cls] - 2000 * frac) < 4 * sigma + 0.01 * 2000, cls
    truth = _table(out / "truth.parquet")
    stars = truth[truth["class"] == "STAR"]
    assert "Ldwarf" not in set(stars["template_name"])
    assert 0.6 < stars["snr_g"].between(5, 50).mean() < 0.95
    gal = truth[truth["class"] == "GALAXY"]
    assert gal["z"].between(0, 0.6).all() and gal["z"].median() < 0.3
    assert truth[truth["class"] == "QSO"]["z"].between(0.1, 4.0).all()


def test_high_proper_motion_positions(big_night) -> None:
    out, _ = big_night
    truth = _table(out / "truth.parquet")
    gaia = _table(out / "gaia.parquet").set_index("source_id")
    fast = truth[truth["high_pm"] & truth["gaia_source_id"].notna()]
    assert len(fast) >= 10
    for row in fast.itertuples():
        header, _ = _read(out / "spectra" / row.filename)
        ref = gaia.loc[row.gaia_source_id]
        dt = Time(header["DATE-OBS"], format="isot", scale="utc").jyear - ref["ref_epoch"]
        pm = np.hypot(ref["pmra"], ref["pmdec"])
        d_ra = (header["RA"] - ref["ra"]) * np.cos(np.radians(ref["dec"])) * 3.6e6
        d_dec = (header["DEC"] - ref["dec"]) * 3.6e6
        assert pm >= 100
        assert np.hypot(d_ra, d_dec) == pytest.approx(pm * abs(dt), rel=1e-4, abs=1.0)
        # ... and in the direction of the motion.
        assert np.sign(d_dec) == np.sign(ref["pmdec"] * dt)


def test_reference_catalogues(big_night) -> None:
    out, _ = big_night
    truth = _table(out / "truth.parquet")
    gaia = _table(out / "gaia.parquet")
    ps1 = _table(out / "ps1.parquet")
    assert gaia["source_id"].is_unique and ps1["objID"].is_unique
    assert (gaia["ref_epoch"] == 2016.0).all()
    g = gaia.set_index("source_id")
    with_gaia = truth[truth["gaia_source_id"].notna()]
    ref = g.loc[with_gaia["gaia_source_id"]]
    np.testing.assert_array_equal(ref["ra"].to_numpy(), with_gaia["ra_2016"].to_numpy())
    np.testing.assert_array_equal(ref["pmdec"].to_numpy(), with_gaia["pmdec"].to_numpy())
    assert set(truth["ps1_objid"].dropna()) <= set(ps1["objID"])
    objects = truth[truth["class"] != "UNKNOWN"].drop_duplicates("object_id")
    stars = objects[objects["class"] == "STAR"]
    assert 0.93 < stars["gaia_source_id"].notna().mean() < 0.995
    assert objects[objects["class"] == "GALAXY"]["gaia_source_id"].notna().mean() < 0.3
    assert 0.005 < objects["ps1_objid"].isna().mean() < 0.06
    assert truth[truth["class"] == "UNKNOWN"]["gaia_source_id"].isna().all()
    # Close pairs: a second source 1-2.5" from the target in Gaia or PS1.
    pairs = truth[truth["close_pair"]].drop_duplicates("object_id")
    assert len(pairs) >= 5
    ra_all = np.concatenate([gaia["ra"], ps1["raMean"]])
    dec_all = np.concatenate([gaia["dec"], ps1["decMean"]])
    found = 0
    for row in pairs.itertuples():
        sep = 3600 * np.hypot(
            (ra_all - row.ra_2016) * np.cos(np.radians(row.dec_2016)), dec_all - row.dec_2016
        )
        found += bool(np.any((sep > 0.9) & (sep < 2.6)))
    assert found >= 0.8 * len(pairs)
    # Background density near targets: ~0.4 extra sources within 30".
    near = 0
    for row in objects.head(100).itertuples():
        sep = 3600 * np.hypot(
            (gaia["ra"] - row.ra_2016) * np.cos(np.radians(row.dec_2016)),
            gaia["dec"] - row.dec_2016,
        )
        near += int(np.sum((sep > 0.1) & (sep < 30)))
    assert 10 < near < 100


def test_revisits_share_objects(tmp_path: Path) -> None:
    first = {}
    for seed in range(1, 500):
        field = night_fields(seed, 300)[0]
        if field in first:
            a, b = first[field], seed
            break
        first[field] = seed
    else:
        pytest.fail("no two nights share a field")
    sa = simulate_night(tmp_path / "a", n=300, seed=a)
    sb = simulate_night(tmp_path / "b", n=300, seed=b)
    assert sa["fields"] == sb["fields"]
    ta = _table(tmp_path / "a" / "truth.parquet").set_index("object_id")
    tb = _table(tmp_path / "b" / "truth.parquet").set_index("object_id")
    shared = ta.index.intersection(tb.index)
    assert len(shared) >= 5
    for col in (
        "class",
        "subclass",
        "template_name",
        "ra_2016",
        "dec_2016",
        "pmra",
        "gaia_source_id",
        "ps1_objid",
        "mag_g",
        "v_sys_kms",
    ):
        pd_a, pd_b = ta.loc[shared, col], tb.loc[shared, col]
        assert pd_a.equals(pd_b), col
    fixed = ta.loc[shared, "class"].isin(["GALAXY", "QSO"]) | ~ta.loc[shared, "is_binary"]
    np.testing.assert_array_equal(ta.loc[shared][fixed]["z"], tb.loc[shared][fixed]["z"])
    # Per-observation quantities are the night's own.
    assert not np.array_equal(ta.loc[shared, "snr_g"], tb.loc[shared, "snr_g"])
    # The same field gives the same reference catalogues.
    for name in ("gaia.parquet", "ps1.parquet"):
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))


def test_output_does_not_depend_on_string_hashing(night, tmp_path: Path) -> None:
    """Set and dict order of strings changes with PYTHONHASHSEED; the files must not."""
    out, _ = night
    root = Path(__file__).resolve().parents[1]
    code = (
        "from lamostdb.sim import simulate_night; import sys; "
        "simulate_night(sys.argv[1], n=200, seed=11)"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(root))
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "h")],
        check=True,
        env=env,
        cwd=root,
        timeout=120,
    )
    assert _digest(tmp_path / "h") == _digest(out)


def test_progress_bar_is_shown_on_request(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    simulate_night(tmp_path / "quiet", n=3, seed=2)
    assert capsys.readouterr().err == ""
    simulate_night(tmp_path / "loud", n=3, seed=2, progress=True)
    assert "3/3" in capsys.readouterr().err


# ------------------------------------------------------------- arm-join and red-arm artefacts

SEVERE = Artefacts.at_rate(0.3)


@pytest.fixture(scope="module")
def severe_plan() -> tuple[dict, dict, dict]:
    """A 400-spectrum plan with artefacts, its noise-free models with and without them."""
    templates = load_default_templates()
    plan = plan_night(23, 400, templates, artefacts=SEVERE)
    clean = dict(plan, **art.neutral(400))
    sl = slice(0, 400)
    with_art = render(plan, sl, templates, np.random.default_rng(1))
    without = render(clean, sl, templates, np.random.default_rng(1))
    return plan, with_art, without


def test_artefact_rates_and_ranges(severe_plan) -> None:
    plan, _, _ = severe_plan
    obj = plan["class"] != "UNKNOWN"
    hit = art.flags(plan)
    for name, flag in hit.items():
        assert not flag[~obj].any(), f"{name} on a sky or junk fibre"
        # Binomial(n_obj, 0.3): within 4 sigma of the rate.
        n_obj = obj.sum()
        assert abs(flag[obj].sum() - 0.3 * n_obj) < 4 * np.sqrt(0.21 * n_obj), name
    step = plan["art_join_step"][hit["join_step"]]
    assert np.all(
        (np.abs(np.log(step)) >= np.log(1.2) - 1e-12)
        & (np.abs(np.log(step)) <= np.log(5.0) + 1e-12)
    )
    assert (step > 1).any() and (step < 1).any() and np.abs(np.log(step)).max() > np.log(3.0)
    spike = plan["art_join_spike"][hit["join_spike"]]
    assert (spike > 1).any() and (spike < 1).any()
    assert np.all(
        (spike >= 1.5 - 1e-12) & (spike <= 4.0 + 1e-12)
        | (spike <= 1 / 1.5 + 1e-12) & (spike >= 0.25 - 1e-12)
    )
    join = plan["art_join_angstrom"][hit["join_step"] | hit["join_spike"]]
    assert np.all((join >= 5700) & (join <= 5950))
    bump = plan["art_red_bump"][hit["red_bump"]]
    assert np.all((np.abs(bump) >= 0.1) & (np.abs(bump) <= 0.4))
    centre = plan["art_bump_angstrom"][hit["red_bump"]]
    assert np.all(((centre >= 6800) & (centre <= 7400)) | ((centre >= 8200) & (centre <= 8800)))
    assert (centre < 7500).any() and (centre > 8000).any()
    none = ~(hit["join_step"] | hit["join_spike"] | hit["red_bump"])
    assert np.isnan(plan["art_join_angstrom"][~(hit["join_step"] | hit["join_spike"])]).all()
    assert none[obj].any()


def test_join_step_is_measured_on_a_noiseless_star(severe_plan) -> None:
    """Median model red of the join / blue of it, against the same star without artefacts."""
    plan, with_art, without = severe_plan
    wave = sm.wave_angstrom()
    hit = art.flags(plan)
    only_step = np.flatnonzero(
        hit["join_step"] & ~hit["join_spike"] & ~hit["red_bump"] & (plan["class"] == "STAR")
    )
    assert only_step.size >= 10
    for j in only_step:
        k = int(np.searchsorted(wave, plan["art_join_angstrom"][j]))
        ratio = with_art["model"][j].astype(np.float64) / without["model"][j]
        measured = np.median(ratio[k + 1 : k + 40]) / np.median(ratio[k - 40 : k - 1])
        assert measured == pytest.approx(plan["art_join_step"][j], rel=1e-5)
        # The observed jump between the two pixels at the join, in the model alone.
        m = with_art["model"][j].astype(np.float64)
        jump = (m[k] / m[k - 1]) / (without["model"][j][k] / without["model"][j][k - 1])
        assert jump == pytest.approx(plan["art_join_step"][j], rel=1e-5)
    # A calibration error scales the noise too: the red arm keeps its S/N.
    j = only_step[0]
    red = wave > plan["art_join_angstrom"][j] + 5
    iv = with_art["ivar"][j][red] > 0
    np.testing.assert_allclose(
        without["ivar"][j][red][iv] / with_art["ivar"][j][red][iv],
        plan["art_join_step"][j] ** 2,
        rtol=1e-5,
    )


def test_join_spike_and_red_bump_have_their_recorded_size(severe_plan) -> None:
    plan, with_art, without = severe_plan
    wave = sm.wave_angstrom()
    hit = art.flags(plan)
    obj = plan["class"] != "UNKNOWN"
    spikes = np.flatnonzero(hit["join_spike"] & ~hit["join_step"] & ~hit["red_bump"] & obj)
    assert spikes.size >= 5
    for j in spikes:
        ratio = with_art["model"][j].astype(np.float64) / without["model"][j]
        peak = plan["art_join_spike"][j]
        extreme = ratio.max() if peak > 1 else ratio.min()
        assert extreme == pytest.approx(peak, rel=1e-5)
        # Width: pixels beyond half the (logarithmic) amplitude.
        wide = np.abs(np.log(ratio)) > 0.5 * abs(np.log(peak))
        assert abs(wide.sum() - plan["art_spike_pixels"][j]) <= 1
        centre = np.mean(wave[wide])
        assert abs(centre - plan["art_join_angstrom"][j]) < 0.0002 * centre * 2
        assert np.all(ratio[wave < 5600] == 1.0) and np.all(ratio[wave > 6100] == 1.0)
    bumps = np.flatnonzero(hit["red_bump"] & ~hit["join_step"] & ~hit["join_spike"] & obj)
    assert bumps.size >= 5
    for j in bumps:
        ratio = with_art["model"][j].astype(np.float64) / without["model"][j]
        b = plan["art_red_bump"][j]
        extreme = ratio.max() if b > 0 else ratio.min()
        assert extreme - 1 == pytest.approx(b, abs=2e-4)
        assert abs(wave[np.argmax(np.abs(ratio - 1))] - plan["art_bump_angstrom"][j]) < 3.0
        np.testing.assert_allclose(ratio[wave < 6000], 1.0, atol=1e-6)
    untouched = np.flatnonzero(~(hit["join_spike"] | hit["join_step"] | hit["red_bump"]))
    np.testing.assert_array_equal(with_art["model"][untouched], without["model"][untouched])


def test_artefact_nights_are_seeded_and_leave_clean_spectra_alone(tmp_path: Path) -> None:
    a = simulate_night(tmp_path / "a", n=60, seed=31, artefacts=SEVERE)
    simulate_night(tmp_path / "b", n=60, seed=31, artefacts=SEVERE)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    simulate_night(tmp_path / "plain", n=60, seed=31)
    truth = _table(tmp_path / "a" / "truth.parquet")
    plain = _table(tmp_path / "plain" / "truth.parquet")
    hit = (
        (truth["art_join_step"] != 1)
        | (truth["art_join_spike"] != 1)
        | (truth["art_red_bump"] != 0)
    ).to_numpy()
    assert 5 <= hit.sum() <= 55
    assert (plain["art_join_step"] == 1).all() and plain["art_join_angstrom"].isna().all()
    digest_a, digest_p = _digest(tmp_path / "a"), _digest(tmp_path / "plain")
    for name, touched in zip(truth["filename"], hit, strict=True):
        same = digest_a[f"spectra/{name}"] == digest_p[f"spectra/{name}"]
        assert same != touched, name
    assert a["counts"] == simulate_night(tmp_path / "c", n=60, seed=31)["counts"]


def test_artefact_options_are_checked_and_reach_the_cli(tmp_path: Path) -> None:
    from lamostdb.cli.main import main

    for kwargs in (
        {"join_step_rate": 1.5},
        {"join_step_min": 0.5},
        {"spike_amplitude": (0.0, 1.0)},
        {"bump_amplitude": (0.1, 0.95)},
    ):
        with pytest.raises(ValueError):
            Artefacts(**kwargs)
    assert not Artefacts.none().active and Artefacts().active
    assert (
        main(
            [
                "simulate",
                str(tmp_path / "cli"),
                "--n",
                "40",
                "--seed",
                "31",
                "--artefacts",
                "0.3",
                "--quiet",
            ]
        )
        == 0
    )
    simulate_night(tmp_path / "api", n=40, seed=31, artefacts=SEVERE)
    assert _digest(tmp_path / "cli") == _digest(tmp_path / "api")
