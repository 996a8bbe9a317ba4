"""`lamostdb templates build`: the stacking kernel, the library file and the command."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from astropy.io import fits
from conftest import SHARED_SPECTRA
from scipy.interpolate import CubicSpline

from lamostdb.templates import TemplateSet, load_default_templates, load_template_file
from lamostdb.templates.build import (
    BuildConfig,
    BuildResult,
    build_templates,
    rest_grid,
    shift_to_rest,
)
from lamostdb.templates.grid import WORKING_GRID
from lamostdb.templates.libfile import (
    TemplateStats,
    library_table,
    load_library,
    write_library,
)
from lamostdb.templates.subclass import spectral_letter

F64 = npt.NDArray[np.float64]
DR10_AFG = SHARED_SPECTRA / "lamost" / "dr10_afg"


def _sdss_star(prefix: str) -> tuple[TemplateSet, int]:
    ts = load_default_templates()["STAR"]
    return ts, next(i for i, n in enumerate(ts.names) if n.startswith(prefix))


def _simulate(rng: np.random.Generator, prefix: str, n: int) -> tuple[F64, F64, F64, F64]:
    """Spectra of one SDSS star on the working grid: shifted, distorted, arm step, noise."""
    ts, k = _sdss_star(prefix)
    spline = CubicSpline(ts.loglam0 + ts.dloglam * np.arange(ts.vectors.shape[1]), ts.vectors[k])
    obs = WORKING_GRID.loglam0 + WORKING_GRID.dloglam * np.arange(WORKING_GRID.npix)
    x = np.linspace(-1.0, 1.0, obs.size)
    red = 10.0**obs >= 5800.0
    z = rng.uniform(-0.001, 0.001, n)
    snr = rng.uniform(15.0, 60.0, n)
    flux = np.empty((n, obs.size))
    ivar = np.empty_like(flux)
    for i in range(n):
        tilt = np.polynomial.legendre.legval(x, [1.0, *rng.normal(0.0, 0.1, 3)])
        arm = np.where(red, 1.0 + rng.normal(0.0, 0.08), 1.0)
        clean = spline(obs - np.log10(1.0 + z[i])) * tilt * arm * rng.uniform(0.5, 3.0)
        sigma = float(np.median(clean)) / snr[i]
        flux[i] = clean + rng.normal(0.0, sigma, obs.size)
        ivar[i] = 1.0 / sigma**2
    return flux, ivar, z, snr


@cache
def _injected() -> tuple[BuildResult, F64]:
    """30 G0 spectra and 3 M2 outliers labelled G0, 4 labelled F5, 2 unlabelled."""
    rng = np.random.default_rng(20240611)
    good = _simulate(rng, "G0", 30)
    bad = _simulate(rng, "M2", 3)
    few = _simulate(rng, "F5", 4)
    extra = _simulate(rng, "G0", 2)
    parts = (good, bad, few, extra)
    flux, ivar, z, snr = (np.concatenate([p[j] for p in parts]) for j in range(4))
    labels: list[str | None] = ["G0"] * 33 + ["F5"] * 4 + ["Non", None]
    return build_templates(flux, ivar, labels, z, snr, config=BuildConfig()), snr[:30]


def _smooth_normalised_rms(a: F64, b: F64, keep: npt.NDArray[np.bool_]) -> float:
    """rms of a/b about a smooth (Legendre degree 5) curve fitted to it."""
    x = np.linspace(-1.0, 1.0, a.size)[keep]
    ratio = a[keep] / b[keep]
    curve = np.polynomial.legendre.legval(x, np.polynomial.legendre.legfit(x, ratio, 5))
    return float(np.sqrt(np.mean((ratio / curve - 1.0) ** 2)))


def test_injected_star_is_recovered_and_outliers_dropped() -> None:
    result, snr = _injected()
    assert [t.label for t in result.templates] == ["G0"]
    tpl = result.templates[0]
    assert (tpl.n_spectra, tpl.n_outliers, tpl.n_low_snr) == (30, 3, 0)
    assert tpl.median_snr == pytest.approx(float(np.median(snr)))
    assert 0.005 < tpl.scatter < 0.06  # the noise of S/N 15-60 spectra, per pixel
    loglam0, npix, pad = rest_grid(WORKING_GRID, 0.01)
    assert (result.loglam0, tpl.flux.size) == (loglam0, npix) and pad == 44
    assert np.all(np.isfinite(tpl.flux)) and np.all(tpl.flux > 0)
    ts, k = _sdss_star("G0")
    rest = loglam0 + WORKING_GRID.dloglam * np.arange(npix)
    truth = CubicSpline(ts.loglam0 + ts.dloglam * np.arange(ts.vectors.shape[1]), ts.vectors[k])(
        rest
    )
    inside = np.zeros(npix, dtype=bool)
    inside[pad + 5 : npix - pad - 5] = True  # rest pixels every spectrum covers
    rms = _smooth_normalised_rms(tpl.flux, truth, inside)
    assert rms < 0.02
    # the outliers' template (M2) would be far off: the check can fail
    ts_m, m = _sdss_star("M2")
    wrong = CubicSpline(
        ts_m.loglam0 + ts_m.dloglam * np.arange(ts_m.vectors.shape[1]), ts_m.vectors[m]
    )(rest)
    assert _smooth_normalised_rms(tpl.flux, wrong, inside) > 5 * rms


def test_template_shifted_by_max_z_covers_the_working_grid() -> None:
    result, _ = _injected()
    ts = result.template_set()
    obs = WORKING_GRID.loglam0 + WORKING_GRID.dloglam * np.arange(WORKING_GRID.npix)
    rest = ts.loglam0 + ts.dloglam * np.arange(ts.vectors.shape[1])
    for z in (-0.01, 0.01):
        assert rest[0] <= obs[0] - np.log10(1 + z) and rest[-1] >= obs[-1] - np.log10(1 + z)
    # edge pixels no spectrum covers repeat the nearest covered value
    assert ts.vectors[0, 0] == ts.vectors[0, 1] == ts.vectors[0, 2]


def test_too_few_and_unlabelled_are_reported() -> None:
    result, _ = _injected()
    rep = {(r.label, r.reason.split(" (")[0]): r.count for r in result.reported}
    assert rep[("F5", "too few spectra with S/N >= 10.0")] == 4
    assert rep[("Non", "not a stellar subclass")] == 1
    assert rep[(None, "not a stellar subclass")] == 1
    assert rep[("G0", "outlier spectra dropped")] == 3
    # a S/N cut that leaves too few is reported with how many fell below it
    rng = np.random.default_rng(7)
    flux, ivar, z, snr = _simulate(rng, "G0", 6)
    snr[:3] = 5.0
    low = build_templates(flux, ivar, ["G2"] * 6, z, snr, config=BuildConfig(min_spectra=4))
    assert low.templates == ()
    (r,) = low.reported
    assert (r.label, r.count) == ("G2", 3) and "3 below the S/N cut" in r.reason


def test_shift_by_whole_pixels_is_exact_and_constant_stays_constant() -> None:
    rng = np.random.default_rng(3)
    flux = rng.normal(5.0, 1.0, (2, WORKING_GRID.npix))
    ivar = np.full_like(flux, 4.0)
    loglam0, npix, pad = rest_grid(WORKING_GRID, 0.01)
    z = 10.0 ** (np.array([3, -2]) * WORKING_GRID.dloglam) - 1.0
    f, iv = shift_to_rest(flux, ivar, z, rest_loglam0=loglam0, rest_npix=npix)
    np.testing.assert_allclose(f[0, pad + 10 : pad + 20], flux[0, 13:23], rtol=1e-9)
    np.testing.assert_allclose(f[1, pad + 10 : pad + 20], flux[1, 8:18], rtol=1e-9)
    np.testing.assert_allclose(iv[0, pad + 10 : pad + 20], 4.0, rtol=1e-9)
    const, civ = shift_to_rest(
        np.full((1, WORKING_GRID.npix), 2.5),
        ivar[:1],
        np.array([0.00037]),
        rest_loglam0=loglam0,
        rest_npix=npix,
    )
    covered = civ[0] > 0
    assert covered.sum() > WORKING_GRID.npix - 10
    np.testing.assert_allclose(const[0, covered], 2.5, rtol=1e-12)


def _stats(result: BuildResult) -> list[TemplateStats]:
    return [TemplateStats(t.n_spectra, t.median_snr, t.scatter) for t in result.templates]


def test_library_round_trip_is_bit_identical(tmp_path: Path) -> None:
    result, _ = _injected()
    path = tmp_path / "lib.fits"
    write_library(
        path,
        [result.template_set()],
        name="test",
        provenance="line one\nline two",
        stats=[_stats(result)],
        licences=["CC0"],
    )
    lib = load_library(path)
    assert lib.kind == "single" and lib.objclass == "STAR"
    assert lib.subclasses == ("G0",) and lib.names == ("G0 (stack of 30)",)
    assert lib.loglam0 == result.loglam0 and lib.dloglam == result.dloglam
    np.testing.assert_array_equal(lib.vectors[0], result.templates[0].flux.astype(np.float32))
    tbl = library_table(path).row(0, named=True)
    tpl = result.templates[0]
    assert tbl == {
        "name": "G0 (stack of 30)",
        "subclass": "G0",
        "source": "lamostdb templates build",
        "licence": "CC0",
        "n_spectra": 30,
        "median_snr": tpl.median_snr,
        "scatter": tpl.scatter,
    }
    with fits.open(path) as hdul:
        assert hdul[0].header["LIBFMT"] == "lamostdb-library"
        assert list(hdul[0].header["HISTORY"]) == ["line one", "line two"]
        assert hdul["TEMPLATES"].data["FLUX"].dtype == np.dtype(">f4")
    again = tmp_path / "again.fits"
    write_library(again, [lib], name="test", provenance="copy", stats=[_stats(result)])
    np.testing.assert_array_equal(load_library(again).vectors, lib.vectors)
    assert load_template_file(path).subclasses == ("G0",)  # detected by LIBFMT
    assert not list(tmp_path.glob(".*tmp*"))  # written beside, then renamed


def test_merging_sets_on_different_grids(tmp_path: Path) -> None:
    result, _ = _injected()
    built = result.template_set()
    sdss = load_default_templates()["STAR"]
    sdss2 = TemplateSet(
        "STAR",
        "single",
        sdss.names[:2],
        sdss.loglam0,
        sdss.dloglam,
        sdss.vectors[:2],
        "spEigenStar-55734.fits",
    )
    # half a pixel out of phase, 2000 pixels: rebinned; a constant stays constant, and a
    # smooth function keeps its values at the new pixel centres
    n = 2000
    loglam_half = 3.6001 + 0.5e-4
    smooth = 1.0 + 0.5 * np.sin(np.arange(n) / 300.0)
    half = TemplateSet(
        "STAR",
        "single",
        ("flat", "wave"),
        loglam_half,
        1e-4,
        np.stack([np.full(n, 2.0), smooth]),
        "kesseli-like",
        subclasses=("K5", "M0"),
    )
    path = tmp_path / "merged.fits"
    write_library(
        path,
        [built, sdss2, half],
        name="merged",
        provenance="merge test",
        stats=[_stats(result), [None, None], [None, None]],
        licences=["ours", "SDSS", "other"],
    )
    lib = load_library(path)
    assert lib.loglam0 == pytest.approx(sdss.loglam0, abs=1e-12)  # the widest start
    assert lib.vectors.shape == (5, sdss.vectors.shape[1])
    k = round((built.loglam0 - lib.loglam0) / lib.dloglam)
    np.testing.assert_array_equal(
        lib.vectors[0, k : k + built.vectors.shape[1]], built.vectors[0].astype(np.float32)
    )
    np.testing.assert_array_equal(lib.vectors[1], sdss.vectors[0].astype(np.float32))
    assert np.all(np.isfinite(lib.vectors))
    j0 = int(np.ceil((loglam_half - lib.loglam0) / lib.dloglam))
    np.testing.assert_allclose(lib.vectors[3, j0 + 1 : j0 + n - 2], 2.0, rtol=1e-6)
    centres = lib.loglam0 + lib.dloglam * np.arange(j0 + 1, j0 + n - 2)
    expect = np.interp(centres, loglam_half + 1e-4 * np.arange(n), smooth)
    np.testing.assert_allclose(lib.vectors[4, j0 + 1 : j0 + n - 2], expect, atol=2e-4)
    assert lib.vectors[3, 0] == lib.vectors[3, j0 + 1]  # padded with the edge value
    assert lib.subclasses == ("G0", "A0", "A0", "K5", "M0")
    assert lib.notes is not None and "padded" in lib.notes[3]
    tbl = library_table(path)
    assert tbl["licence"].to_list() == ["ours", "SDSS", "SDSS", "other", "other"]
    assert tbl["n_spectra"].to_list() == [30, None, None, None, None]


def _afg_files(subclasses: dict[str, int]) -> list[Path]:
    assert DR10_AFG.is_dir(), f"{DR10_AFG} is missing: the shared LAMOST DR10 A/F/G set"
    with open(DR10_AFG / "labels.csv", newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["file"])
    out: list[Path] = []
    for sub, n in subclasses.items():
        out += [DR10_AFG / r["file"] for r in rows if r["subclass"] == sub][:n]
    return out


def test_cli_builds_a_library_that_classifies_real_spectra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lamostdb.catalog.store import open_catalog
    from lamostdb.cli.main import main
    from lamostdb.match.batch import ENGINE_COLUMNS, batch_to_matrices
    from lamostdb.match.engine import prepare_engine
    from lamostdb.match.fit import fit_spectra
    from lamostdb.match.pipeline import template_subclasses

    night = tmp_path / "night"
    night.mkdir()
    for f in _afg_files({"A1": 8, "F0": 8, "F5": 8, "G8": 8, "A2": 3}):
        (night / f.name).symlink_to(f)
    cat = tmp_path / "cat"
    assert main(["ingest", str(cat), str(night), "--workers", "1", "--quiet"]) == 0
    out = tmp_path / "lib.fits"
    assert (
        main(
            [
                "templates",
                "build",
                str(cat),
                "--label",
                "lasp_subclass",
                "--out",
                str(out),
                "--min-spectra",
                "5",
                "--quiet",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "4 templates from 35 spectra" in text and "A2" in text and "too few" in text
    lib = load_library(out)
    assert lib.subclasses == ("A1", "F0", "F5", "G8")
    assert main(["templates", "list", str(out)]) == 0
    assert "G8 (stack of" in capsys.readouterr().out
    engine = prepare_engine(extra=(lib,))
    with open_catalog(cat) as c:
        df = c.sql(
            "SELECT " + ", ".join(ENGINE_COLUMNS) + ", lasp_subclass FROM spectra "
            "WHERE lasp_subclass <> 'A2' ORDER BY specid"
        )
    flux, ivar = batch_to_matrices(df, engine.grid)
    fit = fit_spectra(flux, ivar * engine.pixel_weight, engine=engine)
    subs, _ = template_subclasses(engine)
    best = [subs[i] if i >= 0 else None for i in fit.template[:, 0]]
    right = [
        spectral_letter(a) == spectral_letter(b)
        for a, b in zip(best, df["lasp_subclass"].to_list(), strict=True)
    ]
    assert np.mean(right) >= 0.8
    n_own = len(subs) - len(lib.names)
    assert np.mean(fit.template[:, 0] >= n_own) >= 0.5  # the built templates are used
