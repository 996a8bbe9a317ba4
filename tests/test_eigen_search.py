"""The pruned GALAXY/QSO search: exact windows, the binned first pass, agreement with the
exhaustive search (``SearchConfig(exhaustive=True)``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lamostdb.match import fit
from lamostdb.match.config import SearchConfig
from lamostdb.match.eigen_kernel import (
    _eigen_chi2_at,
    coarse_chi2,
    eigen_chi2_all,
    normal_at,
    observed_products,
)
from lamostdb.match.engine import EigenBlock, Engine, get_engine
from lamostdb.match.fit import CLASS_CODES, fit_spectra, weighted_inputs
from lamostdb.templates import load_default_templates


@pytest.fixture(scope="module")
def engine() -> Engine:
    return get_engine()


def _block(engine: Engine, objclass: str) -> EigenBlock:
    return next(b for b in engine.eigen if b.objclass == objclass)


def _injected(
    engine: Engine, objclass: str, zs: list[float], snr: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-basis models at redshifts ``zs`` with Gaussian noise at ``snr`` per pixel."""
    ts = load_default_templates()[objclass]
    p = engine.grid.npix
    obs_loglam = engine.grid.loglam0 + engine.grid.dloglam * np.arange(p)
    rest_loglam = ts.loglam0 + ts.dloglam * np.arange(ts.vectors.shape[1])
    rng = np.random.default_rng(seed)
    flux = np.empty((len(zs), p))
    ivar = np.empty((len(zs), p))
    for i, z in enumerate(zs):
        coef = np.array([1.0, *rng.uniform(-0.2, 0.2, 3)])
        rest = coef @ ts.vectors[:4]
        model = np.interp(obs_loglam - np.log10(1 + z), rest_loglam, rest)
        model = model / np.median(np.abs(model)) * 20
        sigma = np.full(p, np.median(np.abs(model)) / snr)
        flux[i] = model + rng.normal(size=p) * sigma
        ivar[i] = 1 / sigma**2
    return flux, ivar


def _both(engine: Engine, block: EigenBlock, flux: np.ndarray, ivar: np.ndarray):
    f, w = weighted_inputs(engine, flux, ivar)
    wff = np.einsum("sp,sp->s", w * f, f)
    return (
        fit._eigen_candidates(engine, block, f, w, wff),
        fit._eigen_candidates_pruned(engine, block, f, w, wff),
    )


@pytest.mark.parametrize("objclass", ["GALAXY", "QSO"])
def test_window_sums_equal_the_fft_correlations(engine: Engine, objclass: str) -> None:
    """Direct sums on windows (first and last lags of the grid included) equal the FFT
    correlations entry by entry; a spectrum without weight gives zeros, a subset of the
    batch the same rows."""
    block = _block(engine, objclass)
    rng = np.random.default_rng(11)
    p = engine.grid.npix
    flux = rng.normal(10, 1, (4, p))
    ivar = rng.uniform(0.5, 2.0, (4, p))
    ivar[1] = 0.0
    ivar[2, 500:900] = 0.0
    flux = np.where(ivar > 0, flux, 0.0)
    m_all, b_all = eigen_chi2_all(
        flux, ivar, engine.obs_funcs, block.design, block.rest_fft, block.nfft, block.m_range
    )
    lo, hi = block.m_range
    n_lag = 5
    start = rng.integers(lo, hi - n_lag + 2, (4, 3))
    start[0, 0], start[3, 2] = lo, hi - n_lag + 1
    obs = observed_products(flux, ivar, engine.obs_funcs, block.design)
    m, b = normal_at(obs, block.rest, start, n_lag)
    idx = start[:, :, None] - lo + np.arange(n_lag)
    s_i = np.arange(4)[:, None, None]
    scale = np.abs(m_all).max()
    assert np.abs(m - m_all[s_i, idx]).max() < 1e-12 * scale
    assert np.abs(b - b_all[s_i, idx]).max() < 1e-12 * np.abs(b_all).max()
    assert not m[1].any() and not b[1].any()
    sub = np.array([3, 0, 3])
    m_s, b_s = normal_at(obs, block.rest, start[sub], n_lag, sub)
    np.testing.assert_array_equal(m_s, m[sub])
    np.testing.assert_array_equal(b_s, b[sub])


@pytest.mark.parametrize("objclass", ["GALAXY", "QSO"])
def test_coarse_pass_follows_the_exact_chi2(engine: Engine, objclass: str) -> None:
    """The binned first pass at offsets F*mu tracks the exact chi-square there, and its
    lowest minimum lies near the exact one for a clean injected spectrum."""
    block = _block(engine, objclass)
    z_true = 0.3 if objclass == "GALAXY" else 2.2
    flux, ivar = _injected(engine, objclass, [z_true], 20.0, 12)
    f, w = weighted_inputs(engine, flux, ivar)
    wff = np.einsum("sp,sp->s", w * f, f)
    m_all, b_all = eigen_chi2_all(
        f, w, engine.obs_funcs, block.design, block.rest_fft, block.nfft, block.m_range
    )
    n_l = m_all.shape[1]
    exact, _ = _eigen_chi2_at(np.arange(n_l)[None], m_all, b_all, wff)
    factor = 4
    cb = block.coarse(factor, True)
    approx = coarse_chi2(f, w, engine.obs_funcs, cb, wff)
    at = factor * np.arange(cb.m_range[0], cb.m_range[1] + 1) - block.m_range[0]
    assert np.corrcoef(approx[0], exact[0, at])[0, 1] > 0.95
    assert abs(at[np.argmin(approx[0])] - np.argmin(exact[0])) <= 2 * factor


@pytest.mark.parametrize(
    ("objclass", "zs"),
    [("GALAXY", [0.02, 0.1234, 0.3, 0.4711, 0.8]), ("QSO", [0.5, 1.234, 2.2, 3.05, 4.5])],
)
def test_pruned_equals_exhaustive_on_injected_spectra(
    engine: Engine, objclass: str, zs: list[float]
) -> None:
    """Same best minimum (z within z_err, same chi-square to rounding) as the exhaustive
    search, at the injected redshift."""
    block = _block(engine, objclass)
    flux, ivar = _injected(engine, objclass, zs, 15.0, 13)
    ex, pr = _both(engine, block, flux, ivar)
    rows = np.arange(len(zs))
    ie, ip = np.argmin(ex[0], axis=1), np.argmin(pr[0], axis=1)
    z_e, z_p = ex[1][rows, ie], pr[1][rows, ip]
    np.testing.assert_allclose(pr[0][rows, ip], ex[0][rows, ie], rtol=1e-9)
    assert np.all(np.abs(z_p - z_e) <= ex[2][rows, ie])
    assert np.all(np.abs(z_p - np.array(zs)) / (1 + np.array(zs)) < 3e-4)
    assert np.all(pr[2][rows, ip] > 0)
    np.testing.assert_array_equal(pr[3][rows, ip], ex[3][rows, ie])
    np.testing.assert_allclose(pr[4][rows, ip], ex[4][rows, ie], rtol=1e-6, atol=1e-9)


def test_top_n_finds_a_minimum_the_first_pass_ranks_lower(engine: Engine) -> None:
    """Strong narrow emission lines of a galaxy at z = 0.2 on the continuum of one at
    z = 0.5: the exhaustive search follows the lines, a first pass binned by 8 pixels
    ranks two other neighbourhoods before it. With one window the pruned search misses
    the exhaustive answer, with enough windows it finds it."""
    block = _block(engine, "GALAXY")
    ts = load_default_templates()["GALAXY"]
    p = engine.grid.npix
    obs_loglam = engine.grid.loglam0 + engine.grid.dloglam * np.arange(p)
    rest_loglam = ts.loglam0 + ts.dloglam * np.arange(ts.vectors.shape[1])
    rest = np.array([1.0, 0.3, 0.0, 0.0]) @ ts.vectors[:4]
    box = np.ones(41) / 41

    def at(z: float) -> np.ndarray:
        return np.interp(obs_loglam - np.log10(1 + z), rest_loglam, rest)

    lines = at(0.2) - np.convolve(at(0.2), box, mode="same")
    cont = np.convolve(at(0.5), box, mode="same")
    scale = 20 / np.median(np.abs(cont))
    sigma = np.full(p, 20 / 30.0)
    noise = np.random.default_rng(14).normal(size=p) * sigma
    flux, ivar = ((cont + 3 * lines) * scale + noise)[None], (1 / sigma**2)[None]
    f, w = weighted_inputs(engine, flux, ivar)
    wff = np.einsum("sp,sp->s", w * f, f)
    factor = 8
    cb = block.coarse(factor, True)
    approx = coarse_chi2(f, w, engine.obs_funcs, cb, wff)
    minima = fit._local_minima(approx, 20)[0]
    ex = fit._eigen_candidates(engine, block, f, w, wff)
    best = int(np.argmin(ex[0][0]))
    assert ex[1][0, best] == pytest.approx(0.2, abs=1e-3)
    m_e = block.offset - np.log10(1 + ex[1][0, best]) / engine.grid.dloglam
    near = np.flatnonzero(np.abs(factor * (cb.m_range[0] + minima) - m_e) <= factor)
    assert near.size and near[0] >= 1  # the scenario: the true one is not the coarse best

    def pruned(top_n: int):
        cfg = SearchConfig(galaxy_factor=factor, eigen_top_n=top_n, coarse_full_design=True)
        return fit._eigen_candidates_pruned(replace(engine, search=cfg), block, f, w, wff)

    one = pruned(1)
    many = pruned(int(near[0]) + 1)
    assert abs(one[1][0, np.argmin(one[0][0])] - ex[1][0, best]) > ex[2][0, best]
    i = int(np.argmin(many[0][0]))
    assert abs(many[1][0, i] - ex[1][0, best]) <= ex[2][0, best]
    assert many[0][0, i] == pytest.approx(ex[0][0, best], rel=1e-9)


def test_grid_edge_and_empty_spectra_as_exhaustive(engine: Engine) -> None:
    """A galaxy at the lowest redshift of the grid is flagged on the edge (no z_err) by
    both searches at the same z; a spectrum without weight gives chi2 0 (or a duplicate
    minimum's inf) in both."""
    block = _block(engine, "GALAXY")
    lag_lo = block.offset - block.m_range[1]
    z_lo = float(block.z_of_lag(lag_lo, engine.grid.dloglam))
    flux, ivar = _injected(engine, "GALAXY", [z_lo - 0.002, 0.2], 20.0, 15)
    ivar[1] = 0.0
    ex, pr = _both(engine, block, flux, ivar)
    ie, ip = np.argmin(ex[0][0]), np.argmin(pr[0][0])
    assert ex[3][0, ie] and pr[3][0, ip]
    assert pr[1][0, ip] == pytest.approx(z_lo) and ex[1][0, ie] == pytest.approx(z_lo)
    assert np.isnan(pr[2][0, ip])
    assert pr[0][0, ip] == pytest.approx(ex[0][0, ie], rel=1e-9)
    for search in (ex, pr):
        chi2 = search[0][1]
        assert np.isfinite(chi2).any() and np.all(chi2[np.isfinite(chi2)] == 0)


def test_exhaustive_path_is_todays_search(engine: Engine) -> None:
    """``exhaustive=True`` runs the full-resolution search whatever the pruned knobs say,
    and fit_spectra's eigen candidates are the exhaustive search's."""
    flux, ivar = _injected(engine, "QSO", [1.5, 2.5], 10.0, 16)
    ex = replace(engine, search=SearchConfig(exhaustive=True))
    odd = replace(
        engine, search=SearchConfig(exhaustive=True, galaxy_factor=16, qso_factor=32, eigen_top_n=1)
    )
    a = fit_spectra(flux, ivar, engine=ex)
    b = fit_spectra(flux, ivar, engine=odd)
    for field in ("objclass", "z", "z_err", "chi2", "rchi2"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    block = _block(engine, "QSO")
    e, _ = _both(engine, block, flux, ivar)
    qso = a.objclass == CLASS_CODES.index("QSO")
    for s in range(2):
        np.testing.assert_array_equal(
            np.sort(a.chi2[s][qso[s]]), np.sort(e[0][s][np.isfinite(e[0][s])])[: qso[s].sum()]
        )
