"""What the contracts in schemas/ promise the FITS export: units, display formats, text."""

from __future__ import annotations

import json

import astropy.units as u
import pytest

from lamostdb.catalog.schema import all_schema_names, check_tdisp, load_schema, parse_schema
from lamostdb.export.columns import fits_comment
from lamostdb.resources import resource_dir

ALL = all_schema_names()


@pytest.mark.parametrize("name", ALL)
def test_every_unit_is_a_fits_unit(name: str) -> None:
    for col in load_schema(name).columns:
        if col.unit:
            u.Unit(col.unit, format="fits")  # raises (or warns, an error here) otherwise


@pytest.mark.parametrize("name", ALL)
def test_every_description_fits_a_tcomm_card_once_made_ascii(name: str) -> None:
    for col in load_schema(name).columns:
        comment = fits_comment(col.description)
        assert comment.isascii() and comment.isprintable() and len(comment) <= 68
        assert comment[:20] == col.description[:20] or not col.description.isascii()


@pytest.mark.parametrize(
    ("view", "columns", "tdisp"),
    [
        ("lrs", ("ra", "dec", "ra_obs", "dec_obs", "ura", "udec"), "F11.6"),
        ("lrs", ("z",), "F10.6"),
        ("mec", ("ura", "udec"), "F11.6"),
    ],
)
def test_exported_positions_and_redshifts_have_display_formats(
    view: str, columns: tuple[str, ...], tdisp: str
) -> None:
    schema = load_schema(view)
    assert [schema.column(c).tdisp for c in columns] == [tdisp] * len(columns)


@pytest.mark.parametrize(
    ("type_name", "tdisp", "ok"),
    [
        ("float64", "F11.6", True),
        ("float32", "E10.3", True),
        ("float64", "G12.5E3", True),
        ("float64", "ES12.4", True),
        ("int64", "I20", True),
        ("int32", "Z8", True),
        ("string", "A20", True),
        ("boolean", "L1", True),
        ("list<float64>", "F10.6", True),
        ("int64", "F11.6", False),
        ("float64", "F11", False),
        ("string", "I5", False),
        ("float64", "X11.6", False),
        ("float64", "f11.6", False),
        ("boolean", "A1", False),
    ],
)
def test_tdisp_must_suit_the_column_type(type_name: str, tdisp: str, ok: bool) -> None:
    if ok:
        check_tdisp(type_name, tdisp)
    else:
        with pytest.raises(ValueError, match="is not a FITS display format"):
            check_tdisp(type_name, tdisp)


def test_a_contract_with_a_bad_tdisp_is_refused_naming_the_column() -> None:
    raw = json.loads((resource_dir("schemas") / "lrs.json").read_text())
    next(c for c in raw["columns"] if c["name"] == "snrg")["tdisp"] = "I8"
    with pytest.raises(ValueError, match=r"lrs\.json: column snrg: TDISP 'I8'"):
        parse_schema(raw, "schemas/lrs.json")
