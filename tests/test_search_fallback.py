"""The pruned search's safety nets: noise-like spectra get the exhaustive eigen search, and
the first pass's chi-square reduction equals the solve it replaces."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lamostdb.match import fit
from lamostdb.match.config import SearchConfig
from lamostdb.match.engine import get_engine
from lamostdb.match.fit import fit_spectra, weighted_inputs
from lamostdb.match.linalg import chi2_reduction, solve_normal_equations


def test_chi2_reduction_equals_the_solve_including_rank_deficient_systems() -> None:
    rng = np.random.default_rng(3)
    for n in (7, 10):
        a = rng.normal(size=(200, n, 40))
        m = a @ a.transpose(0, 2, 1)
        m[:20, 2, :] = 0.0  # a basis function without weight (a fully masked arm)
        m[:20, :, 2] = 0.0
        b = rng.normal(size=(200, n))
        b[:20, 2] = 0.0
        coef = solve_normal_equations(m, b)
        want = np.einsum("sk,sk->s", coef, b)
        got = chi2_reduction(m.transpose(1, 2, 0), b.T)
        np.testing.assert_allclose(got, want, rtol=1e-10)
        assert np.all(np.isfinite(got[:20]))


def _noise_and_star(engine, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two pure-noise spectra (noise-like) and one bright star (not)."""
    rng = np.random.default_rng(seed)
    p = engine.grid.npix
    noise = rng.normal(size=(2, p))
    star = engine.star.tpl_bins  # a template column on the working grid, rebuilt below
    j, b, t = star.shape
    col = np.zeros(p + 1)
    col[engine.star.bin_index.ravel()] = star[:, :, 40 * 41 + 20].ravel()
    bright = col[:p] * 50 + rng.normal(size=p)
    flux = np.vstack([noise, bright[None, :]])
    return flux, np.ones_like(flux)


def test_noise_like_spectra_get_the_exhaustive_eigen_search() -> None:
    engine = get_engine()
    flux, ivar = _noise_and_star(engine, 5)
    f, w = weighted_inputs(engine, flux, ivar)
    wff = np.einsum("sp,sp->s", w * f, f)
    _, noise = fit._star_search(engine, f, w, 6)
    assert noise.tolist() == [True, True, False]
    for block in engine.eigen:
        got = fit._eigen_search(engine, block, f, w, wff, noise)
        exh = fit._eigen_candidates(engine, block, f[:2], w[:2], wff[:2])
        pruned = fit._eigen_candidates_pruned(engine, block, f[2:], w[2:], wff[2:])
        for g, e, p in zip(got, exh, pruned, strict=True):
            np.testing.assert_array_equal(g[:2], e)
            np.testing.assert_array_equal(g[2:], p)
        off = replace(engine, search=replace(engine.search, eigen_noise_exhaustive=False))
        all_pruned = fit._eigen_candidates_pruned(engine, block, f, w, wff)
        for g, p in zip(fit._eigen_search(off, block, f, w, wff, noise), all_pruned, strict=True):
            np.testing.assert_array_equal(g, p)


def test_exhaustive_engine_never_calls_the_pruned_search(monkeypatch) -> None:
    engine = replace(get_engine(), search=SearchConfig(exhaustive=True))
    flux, ivar = _noise_and_star(engine, 6)

    def boom(*args, **kwargs):
        raise AssertionError("pruned search called by the exhaustive engine")

    monkeypatch.setattr(fit, "_eigen_candidates_pruned", boom)
    monkeypatch.setattr(fit, "_star_candidates_pruned", boom)
    res = fit_spectra(flux, ivar, engine=engine)
    assert res.objclass.shape == (3, 10)
