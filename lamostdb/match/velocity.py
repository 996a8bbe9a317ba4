"""Star radial velocities at full resolution, after the best template is chosen.

The star kernel finds a star's redshift on a coarse grid (0.0002 = 60 km/s steps) with the
chi-square of its binned sums, and a parabola through three grid points. Here the chosen
template is fitted again around that redshift, pixel by pixel:

- trial redshifts ``z0 + k * step`` for ``|k * step| <= half_width`` (default 30 km/s steps
  over +-2 coarse grid steps), then three trials 5 km/s apart about that scan's vertex;
- at each trial the template is shifted by its cubic spline in log-lambda (the star kernel's
  interpolation; see ``_SplineShifter``) and multiplied by the full continuum functions
  (K, P) of the fit; the K continuum coefficients are solved by weighted least squares;
- a parabola through the last three trials gives z, and ``z_err`` comes from its curvature
  (delta chi2 = 1), scaled by ``sqrt(rchi2)`` where the reduced chi-square exceeds 1 (then
  by ``err_scale``, 1 by default: the pulls measured by ``benchmarks/validate_rv.py`` are
  0.87 against LAMOST and 1.20 on simulated stars at S/N_g >= 20 without it).

The sums over pixels factor as ``M_kl = sum_p w t^2 v_k v_l`` and ``b_k = sum_p w f t v_k``:
for a batch they are two matrix products per trial redshift against the (P, K*K) and (P, K)
continuum products; the engine's staircase continuum (constant over bins of ~60 pixels) is
summed per bin first (``models.scaled_normal_equations``). The loop runs over trial
redshifts, never spectra.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from lamostdb.constants import C_KMS
from lamostdb.match.engine import Engine
from lamostdb.match.fit import CLASS_CODES, FitResult
from lamostdb.match.linalg import solve_normal_equations
from lamostdb.match.models import legendre_rows, scaled_normal_equations
from lamostdb.match.shift import same_step, spline_uniform

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class VelocityOptions:
    """Settings of the full-resolution velocity fit.

    Attributes
    ----------
    half_width_kms
        Half-width of the scan around the kernel's velocity (two coarse grid steps).
    step_kms
        Step of the scan; a parabola through its minimum and the two neighbours gives a
        first vertex.
    fine_step_kms
        Half-spacing of the three trials about that vertex whose parabola gives z and,
        from its curvature, z_err.
    err_scale
        Factor on the curvature error after the ``sqrt(rchi2)`` scaling (1: none).
    err_floor_kms
        Added in quadrature to the error (template mismatch, wavelength calibration).
    """

    half_width_kms: float = 120.0
    step_kms: float = 30.0
    fine_step_kms: float = 5.0
    err_scale: float = 1.0
    err_floor_kms: float = 0.0


@dataclass(frozen=True)
class VelocityFit:
    """Full-resolution velocity of a batch of stars (arrays (S,))."""

    z: F64
    z_err: F64  # NaN where the minimum fell on the scan edge (z is then the kernel's)
    chi2: F64
    on_edge: npt.NDArray[np.bool_]


class _SplineShifter:
    """The spectra's templates as cubic splines in log-lambda, evaluated at any redshift.

    The same interpolation as the star kernel's precomputed grid (``engine.prepare_star``):
    a not-a-knot cubic spline through the template's samples. Cubic convolution (Keys)
    differs from it by up to ~1 km/s depending on the sub-pixel phase, at S/N 200 five
    times the velocity error, so the fit uses the spline. The coefficients of every template
    are built once per engine (``StarBlock.spline_coeffs``, (NT, n - 1, 4)); each trial is
    one gather of the four coefficients per pixel and a Horner evaluation.
    """

    def __init__(self, engine: Engine, template: npt.NDArray[np.int64]) -> None:
        grid = engine.grid
        self.obs = grid.loglam0 + grid.dloglam * np.arange(grid.npix)
        self.dloglam = grid.dloglam
        self.parts: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.int64], float, float, F64]] = []
        start = 0
        for ts, coef in zip(engine.star.rest, engine.star.spline_coeffs, strict=True):
            local = template - start  # a loop over template files (usually one)
            sel = np.flatnonzero((local >= 0) & (local < len(ts.names)))
            if sel.size:
                self.parts.append((sel, local[sel][:, None], ts.loglam0, ts.dloglam, coef))
            start += len(ts.names)
        self.n_s = template.size

    def __call__(self, z: F64) -> F64:
        out = np.zeros((self.n_s, self.obs.size))
        for sel, row, loglam0, dloglam, coef in self.parts:
            if same_step(dloglam, self.dloglam):  # slices, not gathers (lamostdb.match.shift)
                out[sel] = spline_uniform(
                    coef, loglam0, dloglam, row[:, 0], self.obs[0], self.obs.size, z[sel]
                )
                continue
            x = (self.obs[None, :] - np.log10(1.0 + z[sel])[:, None] - loglam0) / dloglam
            n_int = coef.shape[1]
            i0 = np.floor(x).astype(np.int64)
            inside = (i0 >= 0) & (i0 < n_int)
            np.clip(i0, 0, n_int - 1, out=i0)
            t = (x - i0) * dloglam
            # one gather of the four coefficients of each pixel's interval (``take`` of
            # rows: 4x the speed of ``coef[row, i0]``), then the same Horner sums in place
            c = coef.reshape(-1, 4).take(row * n_int + i0, axis=0)  # (S, P, 4)
            val = c[..., 0].copy()
            for k in (1, 2, 3):  # Horner over the four polynomial coefficients
                val *= t
                val += c[..., k]
            out[sel] = np.where(inside, val, 0.0)
        return out


def _chi2_curve(
    engine: Engine,
    flux: F64,
    ivar: F64,
    template: npt.NDArray[np.int64],
    z_trials: F64,
    continuum: F64,
) -> F64:
    """Chi-square (S, T) of each spectrum's template at each of its trial redshifts."""
    n_s, n_t = z_trials.shape
    k = continuum.shape[0]
    wf = ivar * flux
    wff = np.einsum("sp,sp->s", wf, flux)
    m = np.empty((n_t, n_s, k, k))
    b = np.empty((n_t, n_s, k))
    shift = _SplineShifter(engine, template)
    for j in range(n_t):  # a loop over trial redshifts; each step is batched over spectra
        # the engine's staircase continuum is summed per bin first (scaled_normal_equations)
        m[j], b[j] = scaled_normal_equations(shift(z_trials[:, j]), flux, ivar, continuum)
    a = solve_normal_equations(m, b)
    chi2 = wff[None, :] - np.einsum("tsk,tsk->ts", a, b)
    return chi2.T


def _vertex(cm: F64, c0: F64, cp: F64) -> tuple[F64, F64, F64]:
    """Parabola through three equally spaced points: offset (steps), value, 1-sigma (steps)."""
    curv = cm - 2.0 * c0 + cp
    ok = curv > 0
    safe = np.where(ok, curv, 1.0)
    dx = np.clip(np.where(ok, 0.5 * (cm - cp) / safe, 0.0), -0.5, 0.5)
    vertex = np.where(ok, c0 - 0.25 * (cm - cp) * dx, c0)
    sigma = np.where(ok, np.sqrt(2.0 / safe), np.nan)
    return dx, vertex, sigma


def _scan(
    engine: Engine,
    flux: F64,
    ivar: F64,
    template: npt.NDArray[np.int64],
    centre: F64,
    step: float,
    n_half: int,
    continuum: F64,
) -> tuple[npt.NDArray[np.int64], F64, F64, F64, F64]:
    """Chi-square at ``centre + k * step * (1 + centre)``, |k| <= n_half, and its parabola.

    Returns the index of the minimum, the vertex redshift, the vertex chi-square, the
    1-sigma (delta chi2 = 1) in redshift, and the trial redshifts (S, T).
    """
    offsets = step * np.arange(-n_half, n_half + 1)
    # trials multiply (1 + centre): the scan is uniform in velocity about its centre
    trials = centre[:, None] + (1.0 + centre[:, None]) * offsets[None, :]
    chi2 = _chi2_curve(engine, flux, ivar, template, trials, continuum)
    n_s, n_t = chi2.shape
    s = np.arange(n_s)
    j = np.argmin(np.where(np.isfinite(chi2), chi2, np.inf), axis=1)
    jc = np.clip(j, 1, n_t - 2)
    dx, vertex, sigma = _vertex(chi2[s, jc - 1], chi2[s, jc], chi2[s, jc + 1])
    dz = step * (1.0 + centre)
    return j, trials[s, jc] + dx * dz, vertex, sigma * dz, trials


def _fit_velocity(
    engine: Engine,
    flux: F64,
    ivar: F64,
    template: npt.NDArray[np.int64],
    z0: F64,
    continuum: F64,
    n_params: int,
    opt: VelocityOptions,
) -> VelocityFit:
    """Coarse scan, fine triplet about its vertex, and the error rule (arrays (S, ...))."""
    n_half = max(1, int(round(opt.half_width_kms / opt.step_kms)))
    j, z_c, _, _, _ = _scan(
        engine, flux, ivar, template, z0, opt.step_kms / C_KMS, n_half, continuum
    )
    on_edge = (j == 0) | (j == 2 * n_half)
    _, z, vertex, sigma, _ = _scan(
        engine, flux, ivar, template, z_c, opt.fine_step_kms / C_KMS, 1, continuum
    )
    dof = np.maximum((ivar > 0).sum(axis=1) - n_params, 1)
    rchi2 = vertex / dof
    z_err = sigma * np.sqrt(np.maximum(rchi2, 1.0)) * opt.err_scale
    z_err = np.hypot(z_err, opt.err_floor_kms / C_KMS)
    z = np.where(on_edge, z0, z)
    z_err = np.where(on_edge, np.nan, z_err)
    return VelocityFit(z, z_err, vertex, on_edge)


def fit_star_velocity(
    engine: Engine,
    flux: npt.ArrayLike,
    ivar: npt.ArrayLike,
    template: npt.ArrayLike,
    z0: npt.ArrayLike,
    *,
    continuum: F64 | None = None,
    options: VelocityOptions | None = None,
) -> VelocityFit:
    """Velocity of star template ``template[s]`` in spectrum ``s``, scanned around ``z0[s]``.

    Parameters
    ----------
    engine
        The engine whose star templates ``template`` indexes.
    flux, ivar
        (S, P) spectra on ``engine.grid``; ``ivar`` already holds the fit's weights
        (``fit.weighted_inputs``).
    template
        (S,) engine-wide star template index of each spectrum's best fit.
    z0
        (S,) starting redshift (the star kernel's).
    continuum
        (K, P) continuum functions multiplying the template; default the engine's continuum
        vectors, pixel by pixel (``engine.basis.per_pixel()``).
    options
        Scan and error settings.

    Returns
    -------
    VelocityFit
        ``z``, ``z_err``, the minimum chi-square, and ``on_edge`` where the scan's minimum was
        at its edge (z is then ``z0`` and ``z_err`` NaN).
    """
    opt = options or VelocityOptions()
    f = np.ascontiguousarray(flux, dtype=np.float64)
    w = np.ascontiguousarray(ivar, dtype=np.float64)
    tpl = np.asarray(template, dtype=np.int64).reshape(-1)
    z_start = np.asarray(z0, dtype=np.float64).reshape(-1)
    if (
        f.ndim != 2
        or f.shape != w.shape
        or f.shape[1] != engine.grid.npix
        or tpl.size != f.shape[0]
        or z_start.size != f.shape[0]
    ):
        raise ValueError(
            f"need flux and ivar (S, {engine.grid.npix}) and template, z0 (S,); "
            f"got {f.shape}, {w.shape}, {tpl.shape}, {z_start.shape}"
        )
    if not (opt.step_kms > 0 and opt.half_width_kms >= opt.step_kms):
        raise ValueError(f"{opt}: need step_kms > 0 and half_width_kms >= step_kms")
    cont = engine.basis.per_pixel() if continuum is None else np.asarray(continuum, np.float64)
    if f.shape[0] == 0:
        empty = np.zeros(0)
        return VelocityFit(empty, empty, empty, np.zeros(0, dtype=bool))
    return _fit_velocity(engine, f, w, tpl, z_start, cont, cont.shape[0], opt)


def refine_best_star(
    engine: Engine,
    fit: FitResult,
    flux: F64,
    ivar: F64,
    refined: npt.NDArray[np.bool_],
    options: VelocityOptions,
    poly_order: int,
) -> FitResult:
    """``fit`` with the full-resolution z and z_err of every best fit of class STAR.

    Only the first candidate changes (the other candidates keep the kernel's values). Best
    fits from the polynomial re-match (``refined``) are scanned with the re-match's
    continuum (Legendre P0..P``poly_order`` and the red-arm indicator), the others with the
    engine's continuum vectors. A scan whose minimum is on its edge keeps the kernel's z.
    """
    star = np.flatnonzero(
        (fit.objclass[:, 0] == CLASS_CODES.index("STAR"))
        & (fit.template[:, 0] >= 0)
        & (fit.n_good > 0)
    )
    if star.size == 0:
        return fit
    z = fit.z.copy()
    z_err = fit.z_err.copy()
    poly = np.vstack([legendre_rows(engine.grid.npix, poly_order), engine.obs_funcs[3][None, :]])
    for rows, cont in (
        (star[~refined[star]], engine.basis.per_pixel()),
        (star[refined[star]], poly),
    ):  # the two continuum kinds
        if rows.size == 0:
            continue
        v = fit_star_velocity(
            engine,
            flux[rows],
            ivar[rows],
            fit.template[rows, 0].astype(np.int64),
            fit.z[rows, 0],
            continuum=cont,
            options=options,
        )
        keep = v.on_edge
        z[rows, 0] = np.where(keep, fit.z[rows, 0], v.z)
        z_err[rows, 0] = np.where(keep, fit.z_err[rows, 0], v.z_err)
    return replace(fit, z=z, z_err=z_err)
