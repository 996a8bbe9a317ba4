"""Kesseli 2017 and STELIB importers on the real libraries in ../shared/data/templates."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from conftest import SHARED_DATA

from lamostdb.match.engine import prepare_engine
from lamostdb.match.fit import fit_spectra
from lamostdb.match.pipeline import template_subclasses
from lamostdb.templates import (
    air_to_vacuum_angstrom,
    load_default_templates,
    load_kesseli,
    load_kesseli_dir,
    load_stelib_dir,
    load_template_file,
)
from lamostdb.templates.empirical import vacuum_to_air_angstrom
from lamostdb.templates.stelib import _read_one
from lamostdb.templates.subclass import parse_subclass

KESSELI = SHARED_DATA / "templates" / "kesseli2017"
STELIB = SHARED_DATA / "templates" / "stelib"


@pytest.fixture(scope="module")
def kesseli():  # type: ignore[no-untyped-def]
    return load_kesseli_dir(KESSELI)


@pytest.fixture(scope="module")
def stelib():  # type: ignore[no-untyped-def]
    return load_stelib_dir(STELIB)


def _phase_ok(loglam0: float) -> bool:
    k = (loglam0 - 3.5682) / 1e-4
    return abs(loglam0 - (3.5682 + round(k) * 1e-4)) <= 4 * np.spacing(loglam0)


def test_air_to_vacuum_h_alpha_and_round_trip() -> None:
    assert float(air_to_vacuum_angstrom(6562.80)) == pytest.approx(6564.61, abs=0.005)
    wave = np.linspace(3000.0, 11000.0, 801)
    np.testing.assert_allclose(
        vacuum_to_air_angstrom(air_to_vacuum_angstrom(wave)), wave, atol=2e-4
    )


def test_kesseli_all_files_on_the_lamost_grid_without_nan(kesseli) -> None:  # type: ignore[no-untyped-def]
    ts = kesseli.templates
    files = sorted(KESSELI.glob("*.fits.gz"))
    assert len(ts.names) == len(files) == 228 and kesseli.left_out == ()
    assert (ts.objclass, ts.kind, ts.dloglam) == ("STAR", "single", 1e-4)
    assert _phase_ok(ts.loglam0)
    assert np.all(np.isfinite(ts.vectors))
    # the file's own pixels, unchanged, at the right place on the grid
    with fits.open(KESSELI / "G2_+0.0_Dwarf.fits.gz") as hdul:
        loglam = hdul[1].data["LogLam"]
        flux = hdul[1].data["Flux"]
    row = ts.vectors[ts.names.index("G2_+0.0_Dwarf")]
    np.testing.assert_allclose(ts.loglam0 + 1e-4 * np.arange(row.size), loglam, atol=1e-9)
    np.testing.assert_array_equal(row, flux.astype(np.float64))
    assert "MIT" in ts.notes[0] and "Kesseli" in ts.notes[0]


def test_kesseli_subclasses_parse_to_the_file_type(kesseli) -> None:  # type: ignore[no-untyped-def]
    ts = kesseli.templates
    assert len(ts.subclasses) == len(ts.names)
    for name, sub in zip(ts.names, ts.subclasses, strict=True):
        mk = name.split("_")[0]  # "M2", "A3", "L3"
        letter, ordinal = parse_subclass(sub)
        assert sub == mk and letter == mk[0], name
        assert ordinal == {"O": 0, "B": 10, "A": 20, "F": 30, "G": 40, "K": 50, "M": 60, "L": 70}[
            mk[0]
        ] + int(mk[1]), name
    ords = [parse_subclass(s)[1] for s in ts.subclasses]
    assert ords == sorted(ords)  # stable order: ordinal, then [Fe/H], then name
    assert ts.names == load_kesseli(sorted(KESSELI.glob("*.fits.gz"), reverse=True)).templates.names


def test_kesseli_nan_and_zero_pixels_are_trimmed_or_filled(tmp_path: Path) -> None:
    src = KESSELI / "K3_+0.0_Dwarf.fits.gz"
    with fits.open(src) as hdul:
        flux = np.array(hdul[1].data["Flux"])
        hdul[1].data["Flux"][:5] = np.nan  # leading: trimmed
        hdul[1].data["Flux"][1000:1004] = 0.0  # interior: interpolated
        hdul[1].data["Flux"][2000] = np.nan
        hdul.writeto(tmp_path / "K3_+0.0_Dwarf.fits")
    ts = load_kesseli(tmp_path / "K3_+0.0_Dwarf.fits").templates
    assert np.all(np.isfinite(ts.vectors)) and ts.vectors.shape[1] == flux.size - 5
    row = ts.vectors[0]
    np.testing.assert_array_equal(row[:995], flux[5:1000])
    np.testing.assert_allclose(
        row[995:999], np.interp(np.arange(1000, 1004), [999, 1004], flux[[999, 1004]])
    )
    assert row[1995] == pytest.approx(0.5 * (flux[1999] + flux[2001]))
    assert "5 pixels without data interpolated" in ts.notes[0]
    assert _phase_ok(ts.loglam0) and round((ts.loglam0 - 3.5682) / 1e-4) == -53


def test_stelib_grid_no_nan_and_what_is_left_out(stelib) -> None:  # type: ignore[no-untyped-def]
    ts = stelib.templates
    files = sorted(STELIB.glob("*.fits"))
    assert len(ts.names) + len(stelib.left_out) == len(files) == 255
    assert _phase_ok(ts.loglam0) and ts.dloglam == 1e-4
    assert np.all(np.isfinite(ts.vectors))
    assert ts.wave_angstrom[0] <= 3680 and ts.wave_angstrom[-1] >= 9140
    reasons = {x.name: x.reason for x in stelib.left_out}
    wolf_rayet = [n for n in reasons if n.startswith("W")]
    assert len(wolf_rayet) == 6 and all("Wolf-Rayet" in reasons[n] for n in wolf_rayet)
    assert all("covers" in r for n, r in reasons.items() if n not in wolf_rayet)
    # the two white dwarfs are kept only if they cover the range; either way, never silently
    names = set(ts.names) | set(reasons)
    assert {"DA: (Feige110)", "DC: (LTT4364)"} <= names
    assert "BSD-3-Clause" in ts.notes[0] and "vacuum" in ts.notes[0]


def test_stelib_subclass_of_every_file(stelib) -> None:  # type: ignore[no-untyped-def]
    ts = stelib.templates
    for name, sub in zip(ts.names, ts.subclasses, strict=True):
        mk = name.split(" (")[0]
        letter, _ = parse_subclass(sub)
        expected = "WD" if mk.startswith("D") else mk.removeprefix("sd")[0]
        assert letter == expected, name
        if letter != "WD":
            digit = mk.removeprefix("sd")[1]
            assert sub == f"{letter}{digit}", name


def test_stelib_rebin_conserves_flux_and_uses_vacuum(stelib) -> None:  # type: ignore[no-untyped-def]
    ts = stelib.templates
    # a star without gaps: where pixels were interpolated the source holds no flux to compare
    name = next(
        n
        for n, note in zip(ts.names, ts.notes, strict=True)
        if n[0] in "AF" and "interpolated" not in note
    )
    star = name.split("(")[1].rstrip(")")
    # file names pad HD numbers (HD077350), OBJECT does not (HD77350): match the header
    wave_air, flux = next(
        r[2:4] for r in map(_read_one, sorted(STELIB.glob("*.fits"))) if r[0] == star
    )
    wave_vac = air_to_vacuum_angstrom(wave_air)
    row = ts.vectors[ts.names.index(name)]
    edges = 10.0 ** (ts.loglam0 + 1e-4 * (np.arange(row.size + 1) - 0.5))
    for lo, hi in ((4000.0, 5000.0), (6000.0, 6200.0), (8000.0, 9000.0)):
        inside = (edges[:-1] >= lo) & (edges[1:] <= hi)
        out = np.sum(row[inside] * np.diff(edges)[inside])
        a, b = edges[:-1][inside][0], edges[1:][inside][-1]
        src = (wave_vac >= a) & (wave_vac < b)
        ref = np.sum(flux[src] * np.gradient(wave_vac)[src])
        assert out == pytest.approx(ref, rel=5e-3), (lo, hi)
    # H-alpha minimum of an A or F star at its vacuum wavelength (air would be 1.8 A bluer)
    wave = ts.wave_angstrom
    near = (wave > 6550) & (wave < 6580)
    assert wave[near][np.argmin(row[near])] == pytest.approx(6564.6, abs=1.6)


def test_load_template_file_detects_the_formats(caplog: pytest.LogCaptureFixture) -> None:
    one = load_template_file(KESSELI / "L3.fits.gz")
    assert one.names == ("L3",) and one.subclasses == ("L3",)
    with caplog.at_level(logging.WARNING, logger="lamostdb.templates"):
        lib = load_template_file(STELIB)
    assert len(lib.names) == len(load_stelib_dir(STELIB).templates.names)
    assert sum("left out" in r.message for r in caplog.records) == len(
        load_stelib_dir(STELIB).left_out
    )
    assert load_template_file(KESSELI).names[0] == "O5"
    with pytest.raises(ValueError, match="Wolf-Rayet"):
        load_template_file(STELIB / "STELIB_v3.2_HD092809.fits")
    assert (
        load_template_file(
            SHARED_DATA / "templates" / "sdss" / "spEigenStar-55734.fits"
        ).vectors.shape[0]
        == 123
    )


def test_engine_recovers_kesseli_subclass_and_redshift() -> None:
    files = sorted(KESSELI.glob("*_+0.0_Dwarf.fits.gz"))
    kes = load_kesseli(files).templates
    # the Kesseli set alone as the star library: the default library holds the same K3
    # template relabelled onto LAMOST's scale (G8), which would tie with it
    templates = load_default_templates()
    templates["STAR"] = kes
    engine = prepare_engine(templates)
    subs, _ = template_subclasses(engine)
    truth = kes.names.index("K3_+0.0_Dwarf")
    z_true = 1e-4
    grid = engine.grid
    obs_loglam = grid.loglam0 + grid.dloglam * np.arange(grid.npix)
    rest = kes.loglam0 + kes.dloglam * np.arange(kes.vectors.shape[1])
    model = np.interp(obs_loglam - np.log10(1 + z_true), rest, kes.vectors[truth])
    model *= 100.0 / np.median(model)
    sigma = 0.02 * np.median(model)
    rng = np.random.default_rng(20240617)
    flux = model + rng.normal(0.0, sigma, model.size)
    ivar = np.full(model.size, 1.0 / sigma**2)
    res = fit_spectra(flux[None, :], ivar[None, :], engine=engine)
    best = int(res.template[0, 0])
    assert subs[best] == "K3"
    assert res.z[0, 0] == pytest.approx(z_true, abs=2e-5)
