"""The pruned star search (SearchConfig.exhaustive False) against the exhaustive one."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from numpy.polynomial import legendre

from lamostdb.match import fit as fit_module
from lamostdb.match import star_kernel
from lamostdb.match.config import STAR_GRID, SearchConfig
from lamostdb.match.engine import Engine, get_engine, prepare_star
from lamostdb.match.fit import _star_candidates, fit_spectra, weighted_inputs
from lamostdb.match.star_kernel import _star_chi2
from lamostdb.templates.templateset import TemplateSet

C_KMS = 299792.458


@pytest.fixture(scope="module")
def engine() -> Engine:
    return get_engine()


def _library_stars(engine: Engine, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Library templates at random velocities (between grid points), tilted, S/N 15-60."""
    rng = np.random.default_rng(seed)
    ts = engine.star.rest[0]
    p = engine.grid.npix
    obs = engine.grid.loglam0 + engine.grid.dloglam * np.arange(p)
    rest = ts.loglam0 + ts.dloglam * np.arange(ts.vectors.shape[1])
    x = np.linspace(-1, 1, p)
    flux = np.empty((n, p))
    for i, t in enumerate(rng.choice(len(ts.names), n, replace=False)):
        v = rng.uniform(-900, 900)
        model = np.interp(obs - np.log10(1 + v / C_KMS), rest, ts.vectors[t])
        tilt = 1 + legendre.legval(x, [0, *rng.uniform(-0.15, 0.15, 3)])
        flux[i] = model / np.median(model) * 100 * tilt
    sigma = np.full_like(flux, 1.0) * 100 / rng.uniform(15, 60, (n, 1))
    return flux + rng.normal(size=flux.shape) * sigma, 1 / sigma**2


def test_pruned_agrees_with_exhaustive_on_stars(engine: Engine) -> None:
    flux, ivar = _library_stars(engine, 12, seed=8)
    flux = np.vstack([flux, np.zeros((1, flux.shape[1]))])  # and a spectrum with no weight
    ivar = np.vstack([ivar, np.zeros((1, ivar.shape[1]))])
    exh = replace(engine, search=SearchConfig(exhaustive=True))
    f, w = weighted_inputs(engine, flux, ivar)
    p_c = _star_candidates(engine, f, w, 6)
    e_c = _star_candidates(exh, f, w, 6)
    # the stars went through the pruned path (templates left out), the empty one did not
    assert np.isinf(p_c[0][:-1]).any(axis=1).all()
    assert np.isfinite(p_c[0][-1]).all()
    wff = np.einsum("sp,sp->s", w * f, f)
    for s in range(flux.shape[0]):
        top = np.argsort(e_c[0][s], kind="stable")[:6]
        # the exhaustive search's 6 best templates are the pruned one's, with its values
        assert set(top) == set(np.argsort(p_c[0][s], kind="stable")[:6])
        np.testing.assert_allclose(p_c[0][s, top], e_c[0][s, top], rtol=0, atol=1e-6 * wff[s])
        np.testing.assert_allclose(p_c[1][s, top], e_c[1][s, top], rtol=0, atol=2e-6)
        np.testing.assert_array_equal(p_c[3][s, top], e_c[3][s, top])
    # a batch where every spectrum goes to the full search
    alone = _star_candidates(engine, f[-1:], w[-1:], 6)
    for a, b in zip(alone, _star_candidates(exh, f[-1:], w[-1:], 6), strict=True):
        np.testing.assert_array_equal(a, b)
    p_fit = fit_spectra(flux, ivar, engine=engine)
    e_fit = fit_spectra(flux, ivar, engine=exh)
    np.testing.assert_array_equal(p_fit.objclass[:, 0], e_fit.objclass[:, 0])
    np.testing.assert_array_equal(p_fit.template[:-1, 0], e_fit.template[:-1, 0])
    assert np.all(np.abs(p_fit.z[:-1, 0] - e_fit.z[:-1, 0]) <= e_fit.z_err[:-1, 0])


def _lines(loglam: np.ndarray, centres: np.ndarray, depth: float, sigma: float) -> np.ndarray:
    d = (loglam[:, None] - centres[None, :]) / sigma
    return 1.0 - depth * np.exp(-0.5 * d * d).sum(axis=1)


def test_exact_pass_corrects_the_first_pass_within_k(engine: Engine) -> None:
    """A template whose lines sit between the first pass's redshifts loses that pass to a
    copy of it shifted by one grid step (which lacks one weak line); within the top K the
    exact pass still finds it, at its own redshift; with K = 1 it is lost."""
    rng = np.random.default_rng(2)
    g = engine.grid
    step = np.log10(1 + STAR_GRID.z_step)
    rest = g.loglam0 - 0.003 + 2e-5 * np.arange(int((g.npix * g.dloglam + 0.006) / 2e-5))
    lo, hi = g.loglam0 + 0.01, g.loglam0 + g.npix * g.dloglam - 0.01
    centres = rng.uniform(lo, hi, 60)
    extra = np.array([(lo + hi) / 2])
    sigma = 1.2 * g.dloglam
    true = _lines(rest, centres, 0.5, sigma) * _lines(rest, extra, 0.2, sigma)
    vectors = [true, _lines(rest, centres + step, 0.5, sigma)]  # the shifted copy, no extra
    vectors += [_lines(rest, rng.uniform(lo, hi, 60), 0.5, sigma) for _ in range(3)]
    names = ("true", "shifted", "other1", "other2", "other3")
    ts = TemplateSet("STAR", "single", names, float(rest[0]), 2e-5, np.array(vectors), "test")
    iz_true = 21  # z = +0.0002, between the first pass's redshifts (every 2nd)
    z_true = STAR_GRID.values()[iz_true]
    obs = g.loglam0 + g.dloglam * np.arange(g.npix)
    x = np.linspace(-1, 1, g.npix)
    flux = np.interp(obs - np.log10(1 + z_true), rest, true) * 100 * (1 + 0.1 * x)
    ivar = np.full((1, g.npix), 1e-2)  # S/N 100
    flux = flux[None, :] + rng.normal(size=flux.shape) * 0.1

    search = SearchConfig(star_coarse_step=2, star_top_k=2, star_full_gap=0.0)
    eng = replace(engine, star=prepare_star(ts, g, engine.basis), search=search)
    f, w = weighted_inputs(eng, flux, ivar)
    # the premise: the first pass ranks the shifted copy first and the true template second
    groups = eng.star.coarse(2, search.star_anchors)
    runs = [(gr.tpl_bins, gr.tpl2_bins, gr.anchor) for gr in groups]
    approx = star_kernel.star_chi2_coarse(
        f, w, runs, eng.star.bin_index, eng.basis.vectors, len(names)
    )
    assert list(np.argsort(approx.min(axis=2)[0])[:2]) == [1, 0]

    exh = _star_candidates(replace(eng, search=SearchConfig(exhaustive=True)), f, w)
    assert np.argmin(exh[0][0]) == 0  # the exact best is the true template
    chi2, z, z_err, edge, _ = _star_candidates(eng, f, w)
    assert np.argmin(chi2[0]) == 0
    assert abs(z[0, 0] - z_true) < 0.1 * STAR_GRID.z_step
    # the same values as the exhaustive search, to the float32 sums' rounding
    wff = float(np.sum(w * f * f))
    assert chi2[0, 0] == pytest.approx(exh[0][0, 0], abs=1e-6 * wff)
    assert z[0, 0] == pytest.approx(exh[1][0, 0], abs=0.1 * exh[2][0, 0])
    assert z_err[0, 0] == pytest.approx(exh[2][0, 0], rel=1e-2)
    assert not edge[0, 0]
    lost = _star_candidates(replace(eng, search=replace(search, star_top_k=1)), f, w)
    assert np.argmin(lost[0][0]) == 1


def test_exhaustive_path_is_the_full_grid(engine: Engine, monkeypatch) -> None:
    """exhaustive=True never runs the pruned kernels and gives, bit for bit, the grid
    minimum of the exact kernel over every template and redshift refined by the parabola
    (the search before the pruned one existed, written out here)."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the exhaustive search ran a pruned kernel")

    monkeypatch.setattr(fit_module, "star_chi2_coarse", forbidden)
    monkeypatch.setattr(fit_module, "star_chi2_at", forbidden)
    flux, ivar = _library_stars(engine, 3, seed=4)
    flux[1, :2000] = 0.0  # a spectrum whose blue half has no weight
    ivar[1, :2000] = 0.0
    exh = replace(engine, search=SearchConfig(exhaustive=True))
    f, w = weighted_inputs(engine, flux, ivar)
    got = _star_candidates(exh, f, w, 6)
    st = engine.star
    grid, coef = _star_chi2(f, w, st.tpl_bins, st.tpl2_bins, st.bin_index, engine.basis.vectors)
    nt, nz = len(st.names), st.z.size
    grid = grid.reshape(3, nt, nz)
    iz = grid.argmin(axis=2)
    c = lambda i: np.take_along_axis(grid, i[..., None], 2)[..., 0]  # noqa: E731
    edge = (iz == 0) | (iz == nz - 1)
    izc = np.clip(iz, 1, nz - 2)
    dx, vertex, sigma = fit_module._parabola(c(izc - 1), c(izc), c(izc + 1))
    step = st.z[1] - st.z[0]
    np.testing.assert_array_equal(got[0], np.where(edge, c(iz), vertex))
    np.testing.assert_array_equal(got[1], np.where(edge, st.z[iz], st.z[izc] + dx * step))
    np.testing.assert_array_equal(got[2], np.where(edge, np.nan, sigma * step))
    np.testing.assert_array_equal(got[3], edge)
    coef = coef.reshape(3, nt, nz, -1)
    np.testing.assert_array_equal(got[4], np.take_along_axis(coef, iz[..., None, None], 2)[:, :, 0])


def test_search_config_checks_its_knobs() -> None:
    with pytest.raises(ValueError):
        SearchConfig(star_top_k=0)
    with pytest.raises(ValueError):
        SearchConfig(star_half_window=0)


def test_batch_last_solve_agrees_with_the_per_system_solve() -> None:
    from lamostdb.match.linalg import solve_normal_equations, solve_normal_equations_t

    rng = np.random.default_rng(3)
    a = rng.standard_normal((500, 7, 12))
    m = a @ a.transpose(0, 2, 1)
    m[:5, 3, :] = m[:5, :, 3] = 0.0  # a basis vector with no weight: stays solvable
    b = rng.standard_normal((500, 7))
    b[:5, 3] = 0.0
    ref = solve_normal_equations(m, b)
    got = solve_normal_equations_t(m.transpose(1, 2, 0).copy(), b.T.copy()).T
    assert np.allclose(got, ref, rtol=1e-9, atol=1e-9)
    assert np.all(got[:5, 3] == 0.0)
