"""Tests of the template-to-LAMOST subclass table and the ordinal scale.

Values checked: the 123 SDSS names and the letter counts read off them by eye,
hand-picked rows, the real LAMOST header labels in the shared data, an
independent oracle for generated MK labels, and the scale's arithmetic.
"""

from __future__ import annotations

import csv
import re
from collections import Counter

import pytest
from conftest import SHARED_SPECTRA
from hypothesis import given, settings
from hypothesis import strategies as st

from lamostdb.templates import load_default_templates
from lamostdb.templates.subclass import (
    LETTER_BASE,
    _parse_mk,
    load_subclass_table,
    parse_subclass,
    spectral_letter,
    subclass_distance,
    subclass_of_template,
    subclass_ordinal,
)

MK = "OBAFGKM"
LAMOST_LABELS = sorted(SHARED_SPECTRA.glob("lamost/*/labels_summary.csv"))

# (class, subclass) pairs that occur in /work/shared/data/spectra/lamost/*/labels_summary.csv,
# with the ordinal each STAR label must get; copied so the test runs without that folder.
REAL_STAR_LABELS: dict[str, int] = {
    "A1IV": 21,
    "A2": 22,
    "A2IV": 22,
    "A3IV": 23,
    "A3V": 23,
    "A4III": 24,
    "A4V": 24,
    "A5V": 25,
    "A6IV": 26,
    "A7III": 27,
    "A7V": 27,
    "A9V": 29,
    "F0": 30,
    "F2": 32,
    "F5": 35,
    "F6": 36,
    "F7": 37,
    "F9": 39,
    "G0": 40,
    "G2": 42,
    "G5": 45,
    "G7": 47,
    "G8": 48,
    "K1": 51,
    "K3": 53,
    "K5": 55,
    "K7": 57,
    "M0": 60,
    "M1": 61,
    "M2": 62,
    "dM5": 65,
}
REAL_OTHER_LABELS = (("QSO", "Non"), ("Unknown", "Non"))

# Rows where the table deliberately differs from what the name's spelling says.
OVERRIDES = {"Am (78362)": ("F", 30)}


def _real_labels() -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for path in LAMOST_LABELS:
        with path.open(newline="") as f:
            out.update((row["cls"], row["subclass"]) for row in csv.DictReader(f))
    return out


def test_every_template_has_one_row() -> None:
    names = load_default_templates()["STAR"].names
    rows = load_subclass_table()
    assert len(names) == 123
    assert [r.template_name for r in rows] == list(names)
    assert all(subclass_of_template(n) for n in names)


def test_letter_counts() -> None:
    # Counted from the names: 19 A (Am included), 30 B, 17 F + 2 sdF, 15 G, 19 K, 12 M, 3 O,
    # 4 white dwarfs, Carbon, Ldwarf; the table moves Am from A to F.
    counts = Counter(r.letter for r in load_subclass_table())
    assert counts == {
        "O": 3,
        "B": 30,
        "A": 18,
        "F": 20,
        "G": 15,
        "K": 19,
        "M": 12,
        "L": 1,
        "WD": 4,
        "Carbon": 1,
    }


@pytest.mark.parametrize(
    ("name", "subclass"),
    [
        ("B0.5Iae (185859)", "B0"),
        ("M4.5:III (123657)", "M4"),
        ("F3/F5V (30743)", "F3"),
        ("G5/G6IVw (26297)", "G5"),
        ("O8/O9 (167771)", "O8"),
        ("O9.5Iae (30614)", "O9"),
        ("B9.5V+... (37269)", "B9"),
        ("G0.5IV (14214)", "G0"),
        ("sd:F0 (G_84-29)", "F0"),
        ("sdF3 (140283)", "F3"),
        ("Am (78362)", "F0"),
        ("A1m (78209)", "A1"),
        ("M7IIIevar (177940)", "M7"),
        ("K5Ve (118100)", "K5"),
        ("CalciumWD", "WD"),
        ("WDcooler", "WD"),
        ("WDhotter", "WD"),
        ("WDmagnetic", "WD"),
        ("Carbon", "Carbon"),
        ("Ldwarf", "L"),
    ],
)
def test_named_rows(name: str, subclass: str) -> None:
    assert subclass_of_template(name) == subclass


def test_luminosity_classes() -> None:
    lum = {r.template_name: r.luminosity_class for r in load_subclass_table()}
    assert lum["M4.5:III (123657)"] == "III" and lum["sdF3 (140283)"] == "sd"
    assert lum["B3Ib/II (51309)"] == "Ib/II" and lum["B2IV-V (176819)"] == "IV-V"
    assert lum["F6Iab: (187929)"] == "Iab" and lum["A0 (19510)"] == ""


def test_unknown_template_name_says_what_to_do() -> None:
    with pytest.raises(KeyError, match="parse_subclass"):
        subclass_of_template("G2V")


def test_table_agrees_with_the_names() -> None:
    # Two routes to one answer: the hand-checked table and the spelling of each name.
    for row in load_subclass_table():
        assert (row.letter, row.ordinal) == OVERRIDES.get(
            row.template_name, _parse_mk(row.template_name)
        )
        assert parse_subclass(row.subclass) == (row.letter, row.ordinal)
        assert parse_subclass(row.template_name) == (row.letter, row.ordinal)


def test_ordinals_follow_the_spectral_sequence() -> None:
    rows = [r for r in load_subclass_table() if r.letter in MK]
    key = {r.template_name: (MK.index(r.letter), int(r.subclass[1])) for r in rows}
    by_ordinal = sorted(rows, key=lambda r: r.ordinal or 0)
    assert [key[r.template_name] for r in by_ordinal] == sorted(key.values())
    # One step across every letter boundary, O9 -> B0 ... M9 -> L0.
    for early, late in zip("OBAFGKM", "BAFGKML", strict=True):
        assert subclass_distance(f"{early}9", f"{late}0") == 1


def test_real_lamost_labels() -> None:
    present = _real_labels()
    if LAMOST_LABELS:
        # The copy above is faithful: every hard-coded label occurs in the data.
        assert {("STAR", s) for s in REAL_STAR_LABELS} | set(REAL_OTHER_LABELS) <= present
    labels = present | {("STAR", s) for s in REAL_STAR_LABELS} | set(REAL_OTHER_LABELS)
    for cls, label in labels:
        letter, ordinal = parse_subclass(label)
        if cls != "STAR":
            assert (letter, ordinal) == (None, None)
            continue
        # Oracle: drop a d/g/sd prefix, then letter and first digit.
        m = re.match(r"(?:sd|d|g)?([OBAFGKM])(\d)", label)
        assert m is not None, label
        assert (letter, ordinal) == (m[1], LETTER_BASE[m[1]] + int(m[2])), label
        if label in REAL_STAR_LABELS:
            assert ordinal == REAL_STAR_LABELS[label]


@pytest.mark.parametrize(
    ("label", "want"),
    [
        ("G7", ("G", 47)),
        ("dM5", ("M", 65)),
        ("gM3", ("M", 63)),
        ("sdM2", ("M", 62)),
        ("esdM1", ("M", 61)),
        ("K7", ("K", 57)),
        ("A2V", ("A", 22)),
        ("A1IV", ("A", 21)),
        ("B9", ("B", 19)),
        ("F5", ("F", 35)),
        ("B2.5Ve", ("B", 12)),
        ("L3", ("L", 73)),
        ("O", ("O", None)),
        ("OB", ("O", None)),
        ("M", ("M", None)),
        ("Ldwarf", ("L", None)),
        ("WD", ("WD", 200)),
        ("DA", ("WD", 200)),
        ("DZ", ("WD", 200)),
        ("CarbonWD", ("WD", 200)),
        ("Carbon", ("Carbon", 300)),
        ("Non", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
        ("  ", (None, None)),
        ("CV", (None, None)),
        ("GALAXY", (None, None)),
        ("Galaxy", (None, None)),
        ("QSO", (None, None)),
        ("STAR", (None, None)),
        ("Unknown", (None, None)),
        ("G2V (unlisted)", ("G", 42)),
        ("M10", (None, None)),
    ],
)
def test_parse_subclass(label: str | None, want: tuple[str | None, int | None]) -> None:
    assert parse_subclass(label) == want
    assert spectral_letter(label) == want[0] and subclass_ordinal(label) == want[1]


LUMINOSITY = ("", "V", "IV", "III", "II", "Ib", "Iab:", "Ia", "IV-V", "Ib/II", "IIIa", "Va")
PECULIAR = ("", "e", "n", "p", "var", "w", "+...", "...")


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    letter=st.sampled_from(MK),
    digit=st.integers(0, 9),
    half=st.booleans(),
    lum=st.sampled_from(LUMINOSITY),
    pec=st.sampled_from(PECULIAR),
    prefix=st.sampled_from(("", "d", "g", "sd", "sd:")),
    hd=st.integers(1, 399_999),
)
def test_generated_mk_types(
    letter: str, digit: int, half: bool, lum: str, pec: str, prefix: str, hd: int
) -> None:
    label = f"{prefix}{letter}{digit}{'.5' if half else ''}{lum}{pec} ({hd})"
    assert parse_subclass(label) == (letter, 10 * MK.index(letter) + digit)


def _distance(a: str, b: str) -> int:
    d = subclass_distance(a, b)
    assert d is not None, (a, b)
    return d


def test_distances() -> None:
    assert subclass_distance("G2", "K0") == 8
    assert subclass_distance("K0", "G2") == 8
    assert subclass_distance("gM3", "dM3") == 0
    assert _distance("WD", "A0") > 100
    normal = [f"{x}{d}" for x in MK + "L" for d in range(10)]
    assert min(_distance("WD", s) for s in normal) > 100
    assert min(_distance("Carbon", s) for s in normal) > 100
    assert subclass_distance("Carbon", "WD") == 100
    assert subclass_distance("Non", "G2") is None and subclass_distance("M", "M5") is None
