"""The faster steps after the chi-square search give the values of the direct computations.

Each test compares a shortcut of issue 13 with the straightforward formula it replaces
(written out here): slice shifts vs per-pixel gathers, the sort median vs ``np.nanmedian``,
star fits without a design vs the (S, P, K) design, per-window line sums vs whole-grid
sums, the symmetric common-footing products vs all K*K of them, and the re-match's per-class
solves vs one zero-padded mixed design.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lamostdb.constants import C_KMS
from lamostdb.match.confidence import _masked_median
from lamostdb.match.decide import _pair_products_t, arm_basis, common_chi2, line_snr, line_sums
from lamostdb.match.engine import Engine, get_engine
from lamostdb.match.linalg import solve_normal_equations
from lamostdb.match.models import (
    legendre_rows,
    shift_many,
    shifted_eigens,
    shifted_stars,
    solve_design,
    solve_scaled,
    staircase_starts,
    star_design,
)
from lamostdb.match.refine import _continuum_rows, _eigen_extra, _fit_rows
from lamostdb.match.shift import same_step, shift_uniform, spline_uniform


@pytest.fixture(scope="module")
def engine() -> Engine:
    return get_engine()


def _obs(engine: Engine) -> np.ndarray:
    g = engine.grid
    return g.loglam0 + g.dloglam * np.arange(g.npix, dtype=np.float64)


def test_slice_shifts_equal_the_per_pixel_gathers(engine: Engine) -> None:
    g = engine.grid
    rng = np.random.default_rng(4)
    # redshifts inside the templates, at exact pixel lags, and far outside (all zero)
    z_eig = np.concatenate([rng.uniform(-0.01, 6.0, 20), [0.0, 1e-13, 30.0, -0.9]])
    for block in engine.eigen:
        rest0 = g.loglam0 - block.offset * g.dloglam
        rows = np.repeat(np.arange(block.n_vectors)[:, None], z_eig.size, axis=1)
        want = shift_many(block.vectors, rest0, g.dloglam, rows, _obs(engine), z_eig)
        got = shift_uniform(block.vectors, rest0, g.dloglam, rows, g.loglam0, g.npix, z_eig)
        assert np.array_equal(got == 0, want == 0)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(want).max())
        assert not np.allclose(got[:, :20], 0.0)  # the comparison is not of zeros
    ts = engine.star.rest[0]
    assert same_step(ts.dloglam, g.dloglam)
    tpl = rng.integers(0, len(ts.names), 24)
    z = np.concatenate([rng.uniform(-0.004, 0.004, 22), [0.0, 0.5]])
    want = shift_many(ts.vectors, ts.loglam0, ts.dloglam, tpl[None], _obs(engine), z)[0]
    got = shifted_stars(engine, tpl, z)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(want).max())


def test_slice_spline_equals_the_per_pixel_spline(engine: Engine) -> None:
    ts, coef = engine.star.rest[0], engine.star.spline_coeffs[0]
    obs = _obs(engine)
    rng = np.random.default_rng(5)
    tpl = rng.integers(0, len(ts.names), 16)
    z = np.concatenate([rng.uniform(-0.004, 0.004, 14), [0.0, 0.45]])
    # the velocity step's per-pixel evaluation
    x = (obs[None, :] - np.log10(1.0 + z)[:, None] - ts.loglam0) / ts.dloglam
    i0 = np.floor(x).astype(np.int64)
    inside = (i0 >= 0) & (i0 < coef.shape[1])
    i0 = np.clip(i0, 0, coef.shape[1] - 1)
    t = (x - i0) * ts.dloglam
    c = coef[tpl[:, None], i0]
    want = ((c[..., 0] * t + c[..., 1]) * t + c[..., 2]) * t + c[..., 3]
    want = np.where(inside, want, 0.0)
    got = spline_uniform(coef, ts.loglam0, ts.dloglam, tpl, obs[0], obs.size, z)
    assert np.array_equal(got == 0, want == 0) and (got[-1] == 0).any()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(want).max())


def _nanmedian_reference(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    filled = np.where(ok, x, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(np.where(np.any(ok, axis=1)[:, None], filled, 0.0), axis=1)


def test_sort_median_is_nanmedian_exactly() -> None:
    rng = np.random.default_rng(6)
    for it in range(300):
        s, p = int(rng.integers(1, 5)), int(rng.integers(1, 700))
        x = rng.normal(size=(s, p))
        if it % 3 == 0:
            x = np.round(x, 1)  # ties
        x[rng.uniform(size=x.shape) < 0.05] = np.nan
        if it % 5 == 0:
            x[0] = np.nan  # a row whose ok pixels are all NaN: NaN, as nanmedian
        if it % 7 == 0:
            x[rng.uniform(size=x.shape) < 0.02] = np.inf
        ok = rng.uniform(size=x.shape) < rng.uniform()
        want, got = _nanmedian_reference(x, ok), _masked_median(x, ok)
        assert np.array_equal(got, want, equal_nan=True), it


def test_star_fit_without_a_design_equals_the_design_fit(engine: Engine) -> None:
    rng = np.random.default_rng(7)
    n = 12
    tpl = rng.integers(0, len(engine.star.rest[0].names), n)
    z = rng.uniform(-0.002, 0.002, n)
    t = shifted_stars(engine, tpl, z)
    ivar = rng.uniform(0.5, 2.0, t.shape) * (rng.uniform(size=t.shape) > 0.1)
    staircase = engine.basis.per_pixel()
    legendre = np.vstack([legendre_rows(engine.grid.npix, 5), engine.obs_funcs[3][None, :]])
    assert staircase_starts(staircase) is not None and staircase_starts(legendre) is None
    for cont in (staircase, legendre):
        truth = rng.normal(1.0, 0.3, (n, cont.shape[0]))
        flux = t * (truth @ cont) + rng.normal(0, 0.05, t.shape)
        want = solve_design(star_design(engine, tpl, z, cont), flux, ivar)
        got = solve_scaled(t, flux, ivar, cont)
        np.testing.assert_allclose(got.chi2, want.chi2, rtol=1e-10)
        np.testing.assert_allclose(got.coeffs, want.coeffs, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(got.model, want.model, rtol=0, atol=1e-10 * np.abs(flux).max())


def _line_snr_reference(flux, weight, model, wave, z, lines, half_kms, sign, use):
    num, var = np.zeros(flux.shape[0]), np.zeros(flux.shape[0])
    resid = sign * (flux - model)
    for k, lam in enumerate(lines):
        centre = lam * (1.0 + z)[:, None]
        inside = np.abs(wave[None, :] - centre) <= centre * half_kms / C_KMS
        if use is not None:
            inside &= use[:, k : k + 1]
        w = np.where(inside, weight, 0.0)
        good = w > 0
        num += np.where(good, resid, 0.0).sum(axis=1)
        var += np.where(good, 1.0 / np.where(good, w, 1.0), 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, num / np.sqrt(var), 0.0)


def test_window_line_sums_equal_the_whole_grid_sums(engine: Engine) -> None:
    wave = engine.grid.wave_angstrom
    rng = np.random.default_rng(8)
    n = 10
    flux = rng.normal(1.0, 0.2, (n, wave.size))
    model = np.ones_like(flux)
    weight = rng.uniform(0.0, 4.0, flux.shape) * (rng.uniform(size=flux.shape) > 0.2)
    lines = (3934.8, 4862.7, 6564.6, 8664.5, 9500.0)  # the last one off the grid
    use = rng.uniform(size=(n, len(lines))) > 0.3
    for z in (np.zeros(n), rng.uniform(-0.002, 0.4, n)):
        for u in (None, use):
            want = _line_snr_reference(flux, weight, model, wave, z, lines, 250.0, -1.0, u)
            got = line_snr(flux, weight, model, wave, z, lines, 250.0, sign=-1.0, use=u)
            assert np.any(want != 0)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    num, var = line_sums(flux, weight, model, wave, np.zeros(n), lines, 250.0, sign=-1.0)
    for k, lam in enumerate(lines):  # per-line sums are the one-line S/N
        one = _line_snr_reference(flux, weight, model, wave, np.zeros(n), (lam,), 250.0, -1.0, None)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.testing.assert_allclose(
                np.where(var[:, k] > 0, num[:, k] / np.sqrt(var[:, k]), 0.0), one, rtol=1e-12
            )


def test_symmetric_products_give_the_full_common_chi2(engine: Engine) -> None:
    rng = np.random.default_rng(9)
    basis = arm_basis(engine, 5, 5800.0)
    n, k = 8, basis.shape[0]
    model = 1.0 + 0.3 * rng.normal(size=(n, basis.shape[1]))
    flux = model * (rng.normal(1.0, 0.1, (n, k)) @ basis) + rng.normal(0, 0.05, model.shape)
    weight = rng.uniform(0.5, 2.0, model.shape)
    # the dense K*K products of the previous code
    outer = (basis[:, None, :] * basis[None, :, :]).reshape(k * k, -1)
    wm = weight * model
    a = solve_normal_equations(((wm * model) @ outer.T).reshape(-1, k, k), (wm * flux) @ basis.T)
    want = np.einsum("sp,sp->s", weight, (flux - model * (a @ basis)) ** 2)
    np.testing.assert_allclose(common_chi2(model, flux, weight, basis), want, rtol=1e-10)
    kept = _pair_products_t(basis)
    assert kept.shape == (basis.shape[1], k * (k + 1) // 2)
    np.testing.assert_allclose(common_chi2(model, flux, weight, basis, kept), want, rtol=1e-10)


def _mixed_design(engine: Engine, cls, tpl, z, cont) -> np.ndarray:
    """The re-match's previous (R, P, K) design: every class zero-padded to K columns."""
    n_c = cont.shape[0]
    k = n_c + max(_eigen_extra(b) for b in engine.eigen)
    x = np.zeros((cls.size, engine.grid.npix, k))
    star = np.flatnonzero(cls == 0)
    x[star, :, :n_c] = shifted_stars(engine, tpl[star], z[star])[:, :, None] * cont.T[None]
    for code, block in ((1, engine.eigen[0]), (2, engine.eigen[1])):
        sel = np.flatnonzero(cls == code)
        e = shifted_eigens(engine, block, list(range(block.n_vectors)), z[sel])
        x[sel, :, :n_c] = e[0][:, :, None] * cont.T[None]
        col = n_c
        for j in range(1, block.n_vectors):
            x[sel, :, col] = e[j]
            col += 1
        for q in range(sum(1 for r in block.design.rest if r < 0)):
            x[sel, :, col] = engine.obs_funcs[q] if q < 3 else 1.0
            col += 1
    return x


def test_rematch_per_class_solves_equal_the_mixed_design(engine: Engine) -> None:
    assert [b.objclass for b in engine.eigen] == ["GALAXY", "QSO"]
    rng = np.random.default_rng(10)
    n_s = 4
    cls = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1], dtype=np.int8)
    tpl = np.where(cls == 0, rng.integers(0, 90, cls.size), -1)
    z = np.where(cls == 0, rng.uniform(-1e-3, 1e-3, cls.size), rng.uniform(0.05, 2.0, cls.size))
    spectrum = rng.integers(0, n_s, cls.size)
    flux = rng.normal(1.0, 0.3, (n_s, engine.grid.npix))
    ivar = rng.uniform(0.5, 2.0, flux.shape)
    cont = _continuum_rows(engine, 5)
    want = solve_design(_mixed_design(engine, cls, tpl, z, cont), flux[spectrum], ivar[spectrum])
    got = _fit_rows(engine, cls, tpl, z, spectrum, flux, ivar, cont, with_model=True)
    np.testing.assert_allclose(got.chi2, want.chi2, rtol=1e-10)
    np.testing.assert_allclose(got.coeffs, want.coeffs, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(got.model, want.model, rtol=0, atol=1e-9)
    only = _fit_rows(engine, cls, tpl, z, spectrum, flux, ivar, cont, with_model=False)
    assert only.model.shape[0] == 0 and np.array_equal(only.chi2, got.chi2)
