"""Star subclasses from line indices: the index kernel, the nearest-neighbour typer, the
typing table file and its use by the pipeline."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lamostdb.match.engine import get_engine, prepare_engine
from lamostdb.match.fit import CLASS_CODES
from lamostdb.match.indices import INDEX_BANDS, INDEX_NAMES, line_indices
from lamostdb.match.pipeline import PipelineOptions, classify_arrays, typed_subclass
from lamostdb.match.spectype import prepare_typer, type_ordinals, type_subclasses
from lamostdb.templates.subclass import spell_subclass
from lamostdb.templates.typeset import (
    TypingSet,
    load_default_typing_set,
    load_typing_set,
    write_typing_set,
)

WAVE = np.exp(np.linspace(np.log(3690.0), np.log(9100.0), 4000))


def absorption(centre: float, depth: float, sigma: float = 3.0) -> np.ndarray:
    return 1.0 - depth * np.exp(-0.5 * ((WAVE - centre) / sigma) ** 2)


def test_flat_spectrum_has_unit_indices() -> None:
    flux = np.full((2, WAVE.size), 7.0)
    out = line_indices(WAVE, flux, np.ones_like(flux), np.array([0.0, 0.002]))
    assert out.shape == (2, len(INDEX_NAMES))
    assert np.allclose(out, 1.0)


def test_a_line_lowers_its_own_index_only() -> None:
    flux = absorption(4862.7, 0.5)[None]
    out = line_indices(WAVE, flux, np.ones_like(flux), np.zeros(1))[0]
    k = INDEX_NAMES.index("Hbeta")
    lo, hi = INDEX_BANDS["Hbeta"][0]
    ew = 0.5 * 3.0 * np.sqrt(2 * np.pi)  # equivalent width of the line, A
    assert out[k] == pytest.approx(1.0 - ew / (hi - lo), abs=0.01)
    others = np.delete(out, k)
    assert np.allclose(others, 1.0, atol=1e-3)


def test_indices_are_read_in_the_rest_frame() -> None:
    z = 0.003  # 900 km/s: the line moves by 15 A, to the edge of its band
    rest = absorption(4862.7, 0.5)[None]
    moved = absorption(4862.7 * (1 + z), 0.5)[None]
    w = np.ones_like(rest)
    at_rest = line_indices(WAVE, rest, w, np.zeros(1))
    shifted = line_indices(WAVE, moved, w, np.array([z]))
    assert np.allclose(at_rest, shifted, atol=5e-3)
    unshifted = line_indices(WAVE, moved, w, np.zeros(1))
    assert not np.allclose(at_rest, unshifted, atol=5e-3)


def test_an_index_without_good_pixels_is_nan() -> None:
    flux = np.ones((1, WAVE.size))
    ivar = np.ones_like(flux)
    lo, hi = INDEX_BANDS["Halpha"][0]
    ivar[0, (WAVE >= lo) & (WAVE < hi)] = 0.0
    out = line_indices(WAVE, flux, ivar, np.zeros(1))[0]
    assert np.isnan(out[INDEX_NAMES.index("Halpha")])
    assert np.isfinite(np.delete(out, INDEX_NAMES.index("Halpha"))).all()


def test_the_typer_takes_the_median_of_the_nearest_stars() -> None:
    rng = np.random.default_rng(0)
    names = ("a", "b")
    hot = rng.normal([0.5, 1.0], 0.01, size=(40, 2))  # A stars: ordinals 21-23
    cool = rng.normal([1.0, 0.5], 0.01, size=(40, 2))  # G stars: ordinals 44-46
    x = np.vstack([hot, cool])
    o = np.concatenate([rng.integers(21, 24, 40), rng.integers(44, 47, 40)])
    typer = prepare_typer(names, x, o, k=7, min_per_letter=30)
    assert typer.letters == ("A", "G")
    got = type_ordinals(typer, np.array([[0.5, 1.0], [1.0, 0.5]]))
    assert 21 <= got[0] <= 23 and 44 <= got[1] <= 46
    assert list(type_subclasses(typer, np.array([[1.0, 0.5]]))) == [spell_subclass(got[1])]
    # a NaN index (band not observed) counts as the table's mean
    assert np.isfinite(type_ordinals(typer, np.array([[np.nan, 1.0]]))).all()
    with pytest.raises(ValueError, match="do not match"):
        prepare_typer(names, x[:, :1], o)


def test_spell_subclass_rejects_off_scale_ordinals() -> None:
    assert spell_subclass(59.6) == "M0"
    with pytest.raises(ValueError, match="off the O0..L9 scale"):
        spell_subclass(200)


def test_typing_table_round_trip(tmp_path: Path) -> None:
    ts = TypingSet(
        ("x", "y"),
        np.array([[1.0, np.nan], [0.5, 0.25]]),
        ("G5", "A7III"),
        np.array([45, 27]),
        np.array([11, 12]),
        np.array([30.0, np.nan]),
        provenance="made in a test",
    )
    write_typing_set(tmp_path / "t.fits", ts)
    back = load_typing_set(tmp_path / "t.fits")
    assert back.index_names == ("x", "y") and back.labels == ("G5", "A7III")
    assert np.array_equal(back.indices, ts.indices, equal_nan=True)
    assert back.ordinals.tolist() == [45, 27] and back.obsids.tolist() == [11, 12]
    assert "made in a test" in back.provenance
    with pytest.raises(ValueError, match="not a lamostdb typing table"):
        load_typing_set(
            Path(__file__).parents[1] / "lamostdb" / "templates" / "data" / "lamost_stars.fits"
        )


def test_the_shipped_typing_table() -> None:
    ts = load_default_typing_set()
    assert ts.index_names == INDEX_NAMES
    assert len(ts.labels) >= 1000
    assert "LAMOST" in ts.provenance
    typer = get_engine().typer
    assert typer is not None
    assert set("AFGK") <= set(typer.letters)


def test_the_pipeline_types_stars_it_covers(shipped_dir: Path) -> None:
    from lamostdb.io import read_spectrum
    from lamostdb.match.fit import weighted_inputs
    from lamostdb.match.pipeline import template_subclasses
    from lamostdb.templates.grid import batch_to_working_grid

    eng = get_engine()
    assert eng.typer is not None
    from conftest import NOT_LAMOST

    recs = [
        read_spectrum(p) for p in sorted(shipped_dir.rglob("*.fits*")) if p.name not in NOT_LAMOST
    ]
    recs = [r for r in recs if (r.lasp_class or "").upper() == "STAR"][:24]
    flux, ivar = batch_to_working_grid(recs, grid=eng.grid)
    typed = classify_arrays(flux, ivar, engine=eng)
    plain = classify_arrays(flux, ivar, engine=eng, options=PipelineOptions(index_typing=False))
    star = typed.fit.objclass[:, 0] == CLASS_CODES.index("STAR")
    assert star.sum() >= 3
    # everything but the first candidate's subclass is the same
    assert np.array_equal(typed.fit.z, plain.fit.z)
    assert np.array_equal(typed.subclass[:, 1:], plain.subclass[:, 1:])
    f, w = weighted_inputs(eng, flux, ivar)
    idx = line_indices(eng.grid.wave_angstrom, f, w, typed.fit.z[:, 0])
    want = type_subclasses(eng.typer, idx)
    from lamostdb.templates.subclass import spectral_letter

    covered = star & np.array(
        [spectral_letter(s) in eng.typer.letters for s in plain.subclass[:, 0]]
    )
    assert covered.any()
    assert list(typed.subclass[covered, 0]) == list(want[covered])
    assert list(typed.subclass[~covered, 0]) == list(plain.subclass[~covered, 0])
    # a letter the table does not cover keeps the template's subclass
    subs = plain.subclass.copy()
    subs[:, 0] = "M3"
    kept = typed_subclass(eng, replace(eng.typer, letters=("A",)), plain.fit, f, w, subs)
    assert list(kept[:, 0]) == ["M3"] * len(recs)
    assert template_subclasses(eng)[0]  # the templates keep their own labels


def test_an_engine_with_given_templates_types_only_with_a_table() -> None:
    from lamostdb.templates import load_default_templates

    templates = load_default_templates()
    assert prepare_engine(templates).typer is None
    table = load_default_typing_set()
    assert prepare_engine(templates, typing=table).typer is not None
    bad = replace(table, index_names=tuple(reversed(table.index_names)))
    with pytest.raises(ValueError, match="remake it"):
        prepare_engine(templates, typing=bad)
