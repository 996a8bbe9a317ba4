"""The class decision (lamostdb.match.decide): stars with arm artefacts stay stars, galaxies
and QSOs keep their class, marginal answers are not confident."""

from __future__ import annotations

import numpy as np
import pytest

from lamostdb.match.decide import (
    DecisionParams,
    arm_basis,
    best_of_class,
    common_chi2,
    decide_class,
    line_snr,
)
from lamostdb.match.engine import Engine, get_engine
from lamostdb.match.fit import CLASS_CODES, _keep_order, fit_spectra, weighted_inputs
from lamostdb.match.models import shift_rows
from lamostdb.match.pipeline import PipelineOptions, classify_arrays
from lamostdb.match.zwarning import ZWarning
from lamostdb.sim.spectra_model import eigen_model
from lamostdb.templates import load_default_templates

C_KMS = 299792.458


@pytest.fixture(scope="module")
def engine() -> Engine:
    return get_engine()


def sdss_star(
    engine: Engine,
    name: str,
    snr: float,
    rng: np.random.Generator,
    step: float = 1.0,
    bump: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """An SDSS template star (not in the default library: template mismatch) with a join
    step of ``step`` at 5800 A and a red-arm bump of relative height ``bump``."""
    ts = load_default_templates()["STAR"]
    grid = engine.grid
    obs = grid.loglam0 + grid.dloglam * np.arange(grid.npix)
    model = shift_rows(
        ts.vectors,
        ts.loglam0,
        ts.dloglam,
        np.array([ts.names.index(name)]),
        obs,
        np.array([20.0 / C_KMS]),
    )[0]
    model = model / np.median(model[model > 0])
    wave = grid.wave_angstrom
    model = model * np.where(wave >= 5800.0, step, 1.0)
    model = model * (1 + bump * np.exp(-0.5 * ((wave - 7100.0) / 120.0) ** 2))
    sigma = np.median(model) / snr * np.sqrt(np.maximum(model / np.median(model), 0.05))
    return model + rng.normal(size=wave.size) * sigma, 1.0 / sigma**2


def eigen_object(
    engine: Engine, objclass: str, z: float, snr: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    ts = load_default_templates()[objclass]
    coeffs = np.zeros((1, ts.vectors.shape[0]))
    coeffs[0, 0] = 1.0
    model = eigen_model(ts, coeffs, np.array([z]), engine.grid.wave_angstrom)[0]
    model = model / np.median(np.abs(model))
    sigma = np.full(model.size, 1.0 / snr)
    return model + rng.normal(size=model.size) * sigma, 1.0 / sigma**2


@pytest.mark.parametrize(
    ("step", "bump"), [(1.0, 0.0), (3.0, 0.0), (0.3, 0.0), (1.0, 0.35), (4.0, -0.3)]
)
@pytest.mark.parametrize("name", ["F5Ib... (17463)", "A0 (19510)", "G0Va (143761)"])
def test_stars_with_join_steps_and_red_bumps_stay_stars(
    engine: Engine, name: str, step: float, bump: float
) -> None:
    rng = np.random.default_rng(7)
    flux, ivar = sdss_star(engine, name, 30.0, rng, step, bump)
    out = classify_arrays(flux[None], ivar[None], engine=engine)
    assert CLASS_CODES[out.fit.objclass[0, 0]] == "STAR"


def test_galaxies_and_qsos_keep_their_class(engine: Engine) -> None:
    rng = np.random.default_rng(3)
    rows = [eigen_object(engine, "GALAXY", z, 20.0, rng) for z in (0.05, 0.2, 0.4)]
    rows += [eigen_object(engine, "QSO", z, 20.0, rng) for z in (0.8, 1.6, 2.4, 3.1)]
    flux = np.array([r[0] for r in rows])
    ivar = np.array([r[1] for r in rows])
    out = classify_arrays(flux, ivar, engine=engine)
    got = [CLASS_CODES[c] for c in out.fit.objclass[:, 0]]
    assert got == ["GALAXY"] * 3 + ["QSO"] * 4
    z = out.fit.z[:, 0]
    truth = np.array([0.05, 0.2, 0.4, 0.8, 1.6, 2.4, 3.1])
    assert np.all(np.abs(z - truth) / (1 + truth) < 1e-3)


def test_every_class_best_is_kept_among_the_candidates() -> None:
    rchi2 = np.array([[1.0, 1.1, 1.2, 1.3, 5.0, 9.0]])
    cls = np.array([[0, 0, 0, 0, 1, 2]])
    order = _keep_order(rchi2, cls, 4)
    assert order.tolist() == [[0, 1, 4, 5]]  # sorted by rchi2, both non-star bests kept


def test_the_decision_demotes_a_galaxy_that_leaves_the_stars_lines(engine: Engine) -> None:
    rng = np.random.default_rng(11)
    flux, ivar = sdss_star(engine, "F5Ib... (17463)", 40.0, rng, step=3.0, bump=0.3)
    f, w = weighted_inputs(engine, flux[None], ivar[None])
    fit = fit_spectra(f, w, engine=engine)
    # force the ranking's answer to the best galaxy, as a fooled ranking would give
    best = best_of_class(fit)
    j = int(best[0, CLASS_CODES.index("GALAXY")])
    order = np.array([[j] + [k for k in range(fit.z.shape[1]) if k != j]])
    from lamostdb.match.pipeline import _reordered

    fooled = _reordered(fit, order)
    dec = decide_class(engine, fooled, f, w)
    assert dec.changed[0]
    assert CLASS_CODES[fooled.objclass[0, dec.choice[0]]] == "STAR"
    assert dec.rest_lines[0] > DecisionParams().rest_line_snr


def test_common_chi2_is_invariant_to_arm_scales(engine: Engine) -> None:
    rng = np.random.default_rng(5)
    basis = arm_basis(engine, 5, 5800.0)
    model = 1.0 + 0.3 * np.sin(np.linspace(0, 40, engine.grid.npix))[None, :]
    flux = model + rng.normal(scale=0.01, size=model.shape)
    w = np.full(model.shape, 1e4)
    red = engine.grid.wave_angstrom >= 5800.0
    stepped = np.where(red, 3.0 * flux, flux)
    w_stepped = np.where(red, w / 9.0, w)
    a = common_chi2(model, flux, w, basis)
    b = common_chi2(model, stepped, w_stepped, basis)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_line_snr_sees_absorption_at_rest() -> None:
    wave = np.linspace(3700.0, 9000.0, 4000)
    flux = np.ones((2, wave.size))
    flux[1] -= 0.3 * np.exp(-0.5 * ((wave - 6564.6) / 2.0) ** 2)
    w = np.full(flux.shape, 1e4)
    snr = line_snr(flux, w, np.ones_like(flux), wave, np.zeros(2), (6564.6,), 250.0, sign=-1.0)
    assert abs(snr[0]) < 1e-9 and snr[1] > 20


def test_a_marginal_answer_is_not_confident(engine: Engine) -> None:
    rng = np.random.default_rng(2)
    flux, ivar = sdss_star(engine, "G0Va (143761)", 30.0, rng)
    loose = PipelineOptions(decision=DecisionParams(marginal=1e12))  # everything marginal
    out = classify_arrays(flux[None], ivar[None], engine=engine, options=loose)
    assert out.conf[0] < 0.8
    assert out.zwarning[0] & int(ZWarning.CLASS_MARGINAL)
    strict = classify_arrays(flux[None], ivar[None], engine=engine)
    assert not strict.zwarning[0] & int(ZWarning.CLASS_MARGINAL)


def test_a_qso_break_on_the_arm_join_loses_to_the_star(engine: Engine) -> None:
    """A 3.5x join step looks like a Lyman-alpha break at z ~ 3.7: on the common footing,
    where the step is free for every class, the star wins."""
    from dataclasses import replace

    from lamostdb.match.pipeline import _reordered

    rng = np.random.default_rng(13)
    flux, ivar = sdss_star(engine, "G0Va (143761)", 25.0, rng, step=3.5)
    f, w = weighted_inputs(engine, flux[None], ivar[None])
    fit = fit_spectra(f, w, engine=engine)
    j = int(best_of_class(fit)[0, CLASS_CODES.index("QSO")])
    z = fit.z.copy()
    z[0, j] = 5800.0 / 1230.0 - 1.0  # the QSO candidate's break on the join
    order = np.array([[j] + [k for k in range(fit.z.shape[1]) if k != j]])
    fooled = _reordered(replace(fit, z=z), order)
    # the rest-line rule would rescue this star too: switch it off to see this rule alone
    no_lines = replace(DecisionParams(), rest_line_snr=np.inf)
    dec = decide_class(engine, fooled, f, w, params=no_lines)
    assert CLASS_CODES[fooled.objclass[0, dec.choice[0]]] == "STAR"
    assert dec.scaled_chi2[0, 0] < dec.scaled_chi2[0, 2]
    off = replace(no_lines, lya_join_angstrom=0.0)  # neither rule: the fooled answer stays
    kept = decide_class(engine, fooled, f, w, params=off)
    assert CLASS_CODES[fooled.objclass[0, kept.choice[0]]] == "QSO"


def test_broad_line_snr_tells_broad_from_narrow_lines() -> None:
    """Narrow H beta + [O III] (a Seyfert 2 or starburst) show no broad component; a broad
    H beta (FWHM ~4,000 km/s) under the same narrow lines shows it clearly."""
    from lamostdb.match.decide import broad_line_snr

    p = DecisionParams()
    wave = np.exp(np.linspace(np.log(3700.0), np.log(9100.0), 3900))
    z = 0.065
    rng = np.random.default_rng(4)

    def line(rest: float, sigma_kms: float, amp: float) -> np.ndarray:
        c = rest * (1 + z)
        return amp * np.exp(-0.5 * ((wave - c) / (c * sigma_kms / C_KMS)) ** 2)

    narrow = 1.0 + line(4862.7, 200.0, 3.0) + line(5008.2, 200.0, 9.0) + line(4960.3, 200.0, 3.0)
    narrow += line(6564.6, 200.0, 8.0) + line(6585.3, 200.0, 3.0)
    broad = narrow + line(4862.7, 1700.0, 0.6) + line(6564.6, 1700.0, 1.5)
    w = np.full(wave.size, 1.0 / 0.1**2)
    s_narrow = broad_line_snr(narrow + rng.normal(0, 0.1, wave.size), w, wave, z, p)
    s_broad = broad_line_snr(broad + rng.normal(0, 0.1, wave.size), w, wave, z, p)
    assert s_narrow < p.broad_line_snr < 10 < s_broad
    # no broad line observable (H alpha, H beta, Mg II all off the grid): no evidence either way
    assert np.isnan(broad_line_snr(narrow, w, wave, 3.0, p))


REAL_NARROW_LINE_GALAXY = "astrospectro_dr5/B6202/spec-55862-B6202_sp07-005.fits.gz"


def test_a_real_narrow_line_galaxy_is_not_a_confident_qso(engine: Engine) -> None:
    """LAMOST's GALAXY B6202 sp07-005 (z 0.065, [O III] 5008 at 9x the continuum): the QSO
    basis fits its line ratios better than the galaxy basis, but it has no broad lines, so
    the answer is a galaxy, and a marginal one."""
    from conftest import SHARED_SPECTRA

    from lamostdb.io import read_spectrum
    from lamostdb.templates.grid import batch_to_working_grid

    rec = read_spectrum(SHARED_SPECTRA / "lamost" / REAL_NARROW_LINE_GALAXY)
    flux, ivar = batch_to_working_grid([rec], grid=engine.grid)
    out = classify_arrays(flux, ivar, engine=engine)
    assert CLASS_CODES[out.fit.objclass[0, 0]] == "GALAXY"
    assert abs(out.fit.z[0, 0] - 0.0649) < 1e-3
    assert out.conf[0] < 0.8 and out.zwarning[0] & int(ZWarning.CLASS_MARGINAL)
    # without the rule the QSO wins by the chi-square ranking
    from dataclasses import replace

    off = PipelineOptions(decision=replace(DecisionParams(), broad_line_snr=-np.inf))
    qso = classify_arrays(flux, ivar, engine=engine, options=off)
    assert CLASS_CODES[qso.fit.objclass[0, 0]] == "QSO"
