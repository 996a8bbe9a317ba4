"""LAMOST-style stellar subclasses and an ordinal scale of spectral types.

The SDSS ``spEigenStar`` templates carry full MK names (``'B0.5Iae (185859)'``);
LAMOST headers carry short subclasses (``'B0'``, ``'dM5'``, ``'WD'``). The mapping
from one to the other is data, in ``data/star_subclasses.csv`` (decisions in
``data/star_subclasses.md``); this module reads it and parses any label onto one
integer scale, so that "within N subtypes" is a subtraction.

The scale runs O0..O9 = 0..9, B0..B9 = 10..19, and so on through A, F, G, K, M to
L0..L9 = 70..79. White dwarfs (200) and carbon stars (300) sit far from every
normal type so that no "within N subtypes" rule pairs them with one.

>>> subclass_of_template("B0.5Iae (185859)")
'B0'
>>> parse_subclass("dM5")
('M', 65)
>>> subclass_distance("G2", "K0")
8
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = [
    "LETTER_BASE",
    "SubclassRow",
    "load_subclass_table",
    "parse_subclass",
    "spectral_letter",
    "spell_subclass",
    "subclass_distance",
    "subclass_of_template",
    "subclass_ordinal",
]

SUBCLASS_TABLE = "star_subclasses.csv"

#: Ordinal of subtype 0 of each MK letter, and the ordinal of the two special classes.
LETTER_BASE: dict[str, int] = {
    "O": 0,
    "B": 10,
    "A": 20,
    "F": 30,
    "G": 40,
    "K": 50,
    "M": 60,
    "L": 70,
    "WD": 200,
    "Carbon": 300,
}

# An MK type with an optional LAMOST dwarf/giant/subdwarf prefix ("dM5", "gM3",
# "sdM2", "esdM1", "sd:F0"), a subtype rounded down later ("B2.5"), an optional
# second type of a range ("F3/F5"), then luminosity class and peculiarity codes.
# The tail is restricted to the characters MK suffixes use so that words starting
# with a type letter ("GALAXY", "Galaxy", "Mira") are not read as types.
_MK_RE = re.compile(
    r"^(?:usd|esd|sd:?|d|g)?"
    r"(?P<letter>[OBAFGKML])"
    r"(?P<digit>\d)?(?:\.\d+)?"
    r"(?:/[OBAFGKM]?\d(?:\.\d+)?)?"
    r"[IVabemnpwkrvs:+\-/., ]*$"
)
_OBJECT_ID_RE = re.compile(r"\s*\([^()]*\)\s*$")  # " (185859)", " (G_84-29)"
_WD_RE = re.compile(r"^(?:D[ABCOQZ][A-Z0-9.]*|.*WD.*)$")  # DA, DZ, WDhotter, CarbonWD
_UNKNOWN = frozenset({"", "Non", "NON", "None", "Unknown", "UNKNOWN"})


@dataclass(frozen=True)
class SubclassRow:
    """One row of ``star_subclasses.csv``: an SDSS template and its LAMOST subclass."""

    template_name: str
    subclass: str
    letter: str
    ordinal: int | None
    luminosity_class: str
    notes: str


@cache
def load_subclass_table() -> tuple[SubclassRow, ...]:
    """Rows of the packaged template-to-subclass table, in file order.

    >>> len(load_subclass_table())
    123
    """
    text = (resources.files("lamostdb.templates") / "data" / SUBCLASS_TABLE).read_text(
        encoding="utf-8"
    )
    rows = []
    for rec in csv.DictReader(text.splitlines()):
        ordinal = rec["ordinal"].strip()
        rows.append(
            SubclassRow(
                template_name=rec["template_name"],
                subclass=rec["subclass"],
                letter=rec["letter"],
                ordinal=int(ordinal) if ordinal else None,
                luminosity_class=rec["luminosity_class"],
                notes=rec["notes"],
            )
        )
    return tuple(rows)


@cache
def _table_by_name() -> dict[str, SubclassRow]:
    return {row.template_name: row for row in load_subclass_table()}


def subclass_of_template(name: str) -> str:
    """LAMOST-style subclass of one SDSS ``spEigenStar`` template name.

    Raises
    ------
    KeyError
        ``name`` is not a row of the packaged table.

    >>> [subclass_of_template(n) for n in ("M4.5:III (123657)", "WDhotter", "Am (78362)")]
    ['M4', 'WD', 'F0']
    """
    try:
        return _table_by_name()[name].subclass
    except KeyError:
        raise KeyError(
            f"{name!r} is not an SDSS spEigenStar template name known to "
            f"lamostdb/templates/data/{SUBCLASS_TABLE}; for a free-form label use "
            "parse_subclass()"
        ) from None


def _parse_mk(label: str) -> tuple[str | None, int | None]:
    """Letter and ordinal of a label by its spelling alone (no table lookup)."""
    text = _OBJECT_ID_RE.sub("", label).strip()
    if text in _UNKNOWN:
        return None, None
    # White dwarfs first: "CarbonWD" (a DQ white dwarf) is a white dwarf, not a carbon star.
    if _WD_RE.match(text):
        return "WD", LETTER_BASE["WD"]
    if text.startswith("Carbon"):
        return "Carbon", LETTER_BASE["Carbon"]
    if text in ("Ldwarf", "L dwarf"):
        return "L", None
    if text == "OB":
        # LAMOST's template between the O and B types: the letter is clear, the subtype is not.
        return "O", None
    match = _MK_RE.match(text)
    if match is None:
        return None, None
    letter, digit = match["letter"], match["digit"]
    # A bare letter ("M", "O", "Am") names the class but not the subtype.
    return letter, (LETTER_BASE[letter] + int(digit)) if digit is not None else None


def parse_subclass(label: str | None) -> tuple[str | None, int | None]:
    """Spectral letter and ordinal of any stellar label.

    Accepts LAMOST header ``SUBCLASS`` values (``'G7'``, ``'dM5'``, ``'A1IV'``,
    ``'WD'``, ``'Carbon'``, ``'Non'``), spectral types (``'B2.5Ve'``, ``'DA'``) and
    SDSS template names (looked up in the table first).

    Returns
    -------
    (letter, ordinal)
        ``letter`` is one of ``O B A F G K M L WD Carbon`` or None when the label
        is not a stellar type; ``ordinal`` is None when the subtype is unknown
        (``'M'``, ``'OB'``, ``'Ldwarf'``).

    >>> [parse_subclass(s) for s in ("K7", "gM3", "sdM2", "A2V", "CarbonWD", "Non", None)]
    [('K', 57), ('M', 63), ('M', 62), ('A', 22), ('WD', 200), (None, None), (None, None)]
    """
    if label is None:
        return None, None
    row = _table_by_name().get(label)
    if row is not None:
        return row.letter, row.ordinal
    return _parse_mk(str(label))


def subclass_ordinal(label: str | None) -> int | None:
    """Ordinal of ``label`` on the O0 = 0 .. L9 = 79, WD = 200, Carbon = 300 scale."""
    return parse_subclass(label)[1]


def spectral_letter(label: str | None) -> str | None:
    """``O B A F G K M L WD Carbon`` for a stellar label, None otherwise."""
    return parse_subclass(label)[0]


def spell_subclass(ordinal: float) -> str:
    """LAMOST's spelling of an ordinal on the O0..L9 scale (rounded half up).

    >>> spell_subclass(45), spell_subclass(29.5), spell_subclass(60)
    ('G5', 'F0', 'M0')
    """
    o = int(ordinal + 0.5) if ordinal >= 0 else -1
    if not 0 <= o < LETTER_BASE["L"] + 10:
        raise ValueError(f"ordinal {ordinal} is off the O0..L9 scale (0..79)")
    letter = {v: k for k, v in LETTER_BASE.items() if v < 100}[(o // 10) * 10]
    return f"{letter}{o % 10}"


def subclass_distance(a: str | None, b: str | None) -> int | None:
    """Number of subtypes between two labels, None when either has no ordinal.

    >>> subclass_distance("WD", "A0")
    180
    """
    oa, ob = subclass_ordinal(a), subclass_ordinal(b)
    if oa is None or ob is None:
        return None
    return abs(oa - ob)
