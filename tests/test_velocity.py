"""Full-resolution star velocities: injection and recovery, error calibration, invariance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from lamostdb.match.engine import get_engine
from lamostdb.match.fit import CLASS_CODES, weighted_inputs
from lamostdb.match.pipeline import PipelineOptions, classify_arrays
from lamostdb.match.velocity import C_KMS, VelocityOptions, fit_star_velocity

TEMPLATE = 83  # K0V (HD 10780) in the shipped star library
V_TRUE_KMS = 37.3


@pytest.fixture(scope="module")
def engine():
    return get_engine()


def _inject(
    engine, v_kms: float, snr: float, n: int, seed: int, template: int = TEMPLATE
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy copies of a star template at ``v_kms``, shifted by a cubic spline (not the
    cubic convolution of the fit) and multiplied by a tilt the continuum vectors can take."""
    ts = engine.star.rest[0]
    rest = ts.loglam0 + ts.dloglam * np.arange(ts.vectors.shape[1])
    obs = engine.grid.loglam0 + engine.grid.dloglam * np.arange(engine.grid.npix)
    z = v_kms / C_KMS
    shifted = CubicSpline(rest, ts.vectors[template])(obs - np.log10(1.0 + z))
    cont = engine.basis.per_pixel()
    model = shifted * (cont[0] + 0.15 * cont[1])
    sigma = np.median(np.abs(model)) / snr
    rng = np.random.default_rng(seed)
    flux = model[None, :] + sigma * rng.standard_normal((n, model.size))
    return flux, np.full(flux.shape, 1.0 / sigma**2)


def _fit(engine, flux, ivar, z0: float, **kw):
    f, w = weighted_inputs(engine, flux, ivar)
    n = f.shape[0]
    return fit_star_velocity(engine, f, w, np.full(n, TEMPLATE), np.full(n, z0), **kw)


@pytest.mark.parametrize(("snr", "seed"), [(10.0, 1), (30.0, 2), (100.0, 3)])
def test_injected_velocity_is_recovered_with_calibrated_errors(
    engine, snr: float, seed: int
) -> None:
    flux, ivar = _inject(engine, V_TRUE_KMS, snr, 64, seed)
    # start 25 km/s off, as a coarse-grid kernel can be
    v = _fit(engine, flux, ivar, (V_TRUE_KMS + 25.0) / C_KMS)
    assert not v.on_edge.any()
    dv = v.z * C_KMS - V_TRUE_KMS
    err = v.z_err * C_KMS
    assert np.all(np.abs(dv) < 5 * err)
    assert abs(dv.mean()) < 4 * dv.std() / np.sqrt(dv.size) + 0.1
    pull = dv / err
    assert 0.75 < pull.std() < 1.3


def test_error_scales_inversely_with_snr(engine) -> None:
    errs = []
    for snr, seed in ((20.0, 4), (80.0, 5)):
        flux, ivar = _inject(engine, V_TRUE_KMS, snr, 16, seed)
        errs.append(np.median(_fit(engine, flux, ivar, V_TRUE_KMS / C_KMS).z_err))
    assert errs[0] / errs[1] == pytest.approx(4.0, rel=0.1)


def test_scaled_spectrum_gives_the_same_velocity(engine) -> None:
    flux, ivar = _inject(engine, V_TRUE_KMS, 25.0, 4, 6)
    a = _fit(engine, flux, ivar, 0.0)
    b = _fit(engine, 1e3 * flux, 1e-6 * ivar, 0.0)
    np.testing.assert_allclose(b.z, a.z, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.z_err, a.z_err, rtol=1e-8)


def test_minimum_outside_the_scan_keeps_the_start(engine) -> None:
    flux, ivar = _inject(engine, V_TRUE_KMS, 50.0, 2, 7)
    z0 = (V_TRUE_KMS - 400.0) / C_KMS  # the truth is far outside +-120 km/s
    v = _fit(engine, flux, ivar, z0)
    assert v.on_edge.all() and np.all(v.z == z0) and np.isnan(v.z_err).all()


def test_options_are_checked(engine) -> None:
    flux, ivar = _inject(engine, 0.0, 50.0, 1, 8)
    with pytest.raises(ValueError, match="step_kms"):
        _fit(engine, flux, ivar, 0.0, options=VelocityOptions(step_kms=0.0))
    with pytest.raises(ValueError, match="template"):
        fit_star_velocity(engine, flux, ivar, np.array([TEMPLATE, TEMPLATE]), np.zeros(1))


def test_pipeline_star_velocity_beats_the_coarse_kernel_at_high_snr(engine) -> None:
    """Regression against the kernel: at S/N 200 both agree to a few km/s, and the
    full-resolution fit is the one within 1 km/s of the truth, for velocities between
    the kernel's grid points."""
    truths = np.array([-51.7, -8.2, 13.9, 44.4])
    flux = np.concatenate([_inject(engine, v, 200.0, 1, 9 + i)[0] for i, v in enumerate(truths)])
    ivar = np.concatenate([_inject(engine, v, 200.0, 1, 9 + i)[1] for i, v in enumerate(truths)])
    full = classify_arrays(flux, ivar, engine=engine)
    kernel = classify_arrays(
        flux, ivar, engine=engine, options=replace(PipelineOptions(), velocity=None)
    )
    assert (full.fit.objclass[:, 0] == CLASS_CODES.index("STAR")).all()
    v_full = full.fit.z[:, 0] * C_KMS
    v_kernel = kernel.fit.z[:, 0] * C_KMS
    assert np.all(np.abs(v_full - truths) < 1.0)
    assert np.all(np.abs(v_full - v_kernel) < 10.0)
    assert np.all(full.fit.z_err[:, 0] * C_KMS < 1.0)
    # only the best fit's redshift changes
    np.testing.assert_array_equal(full.fit.z[:, 1:], kernel.fit.z[:, 1:])
    np.testing.assert_array_equal(full.fit.chi2, kernel.fit.chi2)
