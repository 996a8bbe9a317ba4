"""Templates prepared once on the working grid, ready for the kernels.

``prepare_engine`` turns a template library into what the kernels consume:

- stars: every template shifted to every redshift of the star grid (cubic interpolation in
  log-lambda, which avoids the pixel-locking of linear interpolation), gathered per
  continuum bin, with squares precomputed;
- eigen classes (GALAXY, QSO): the eigenvectors on a rest grid aligned with the working
  grid (so a redshift is an integer pixel lag), their FFTs and the FFTs of their pairwise
  products, and the lag range of the class's redshift grid.

Building takes about a second and is cached per process (``get_engine``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from numpy.polynomial import legendre
from scipy.interpolate import CubicSpline

from lamostdb.match.confidence import ConfidenceParams, load_params
from lamostdb.match.config import (
    DEFAULT_CONFIG,
    GALAXY_GRID,
    QSO_GRID,
    STAR_GRID,
    EngineConfig,
    RedshiftGrid,
    SearchConfig,
)
from lamostdb.match.continuum import ContinuumBasis, default_basis, load_basis
from lamostdb.match.eigen_kernel import (
    CoarseBasis,
    EigenDesign,
    coarse_basis,
    make_design,
    rest_products,
    subset_design,
)
from lamostdb.match.indices import INDEX_NAMES
from lamostdb.match.spectype import IndexTyper, prepare_typer
from lamostdb.match.version import ENGINE_VERSION
from lamostdb.templates.grid import WORKING_GRID, LogGrid
from lamostdb.templates.library import (
    TemplateSet,
    load_default_star_library,
    load_default_templates,
)
from lamostdb.templates.typeset import TypingSet, load_default_typing_set

#: Observed-frame ranges (vacuum Angstrom) given zero weight in every fit: residuals of the
#: strongest sky lines, the telluric O2 A and B bands (LAMOST spectra are not corrected for
#: them and no template has them), and the red end where the last pixels are unreliable.
#: Without them real stars were matched to galaxies/QSOs whose lines fell on these bands.
SKY_TELLURIC_MASK_ANGSTROM: tuple[tuple[float, float], ...] = (
    (5572.0, 5582.0),  # [OI] 5577 sky
    (5885.0, 5900.0),  # Na D sky
    (6295.0, 6305.0),  # [OI] 6300 sky
    (6360.0, 6368.0),  # [OI] 6364 sky
    (6850.0, 6960.0),  # telluric O2 B band
    (7150.0, 7400.0),  # telluric H2O
    (7580.0, 7720.0),  # telluric O2 A band
    (8100.0, 8400.0),  # telluric H2O
    (8950.0, 9300.0),  # telluric H2O and the unreliable red end
)
# Measured on the real LAMOST stars of ../shared (benchmarks/validate_engine.py): masking the
# two water bands as well took the median |dv| against LAMOST from 6.6 to 5.4 km/s and its
# median offset from +3.5 to +2.1 km/s (telluric lines do not move with the star and pull the
# fit towards the heliocentric correction).


@dataclass(frozen=True)
class StarBlock:
    names: tuple[str, ...]
    z: npt.NDArray[np.float64]  # (NZ,)
    tpl_bins: npt.NDArray[np.float32] = field(repr=False)  # (J, B, NT*NZ)
    tpl2_bins: npt.NDArray[np.float32] = field(repr=False)
    bin_index: npt.NDArray[np.int64] = field(repr=False)
    rest: tuple[TemplateSet, ...] = field(repr=False)  # to rebuild models on demand

    @cached_property
    def spline_coeffs(self) -> tuple[npt.NDArray[np.float64], ...]:
        """Per template set: not-a-knot cubic spline of every template in log-lambda.

        Shape (NT, n - 1, 4) per set, the four polynomial coefficients of each interval
        (highest power first, in log-lambda units), contiguous per pixel so that one gather
        fetches all four. Built on first use (0.02 s) and kept for the engine's lifetime:
        the velocity step evaluates these splines at a dozen redshifts per batch.
        """
        out = []
        for ts in self.rest:
            rest = ts.loglam0 + ts.dloglam * np.arange(ts.vectors.shape[1])
            coef = CubicSpline(rest, ts.vectors, axis=1).c  # (4, n - 1, NT)
            out.append(np.ascontiguousarray(coef.transpose(2, 1, 0)))
        return tuple(out)

    @cached_property
    def tpl_jtb(self) -> npt.NDArray[np.float32]:
        """(J, NT*NZ, B) the columns of ``tpl_bins`` contiguous per bin and column.

        The pruned search gathers a few columns per spectrum (``star_kernel.star_chi2_at``);
        from this layout each is one contiguous row of a bin. Built on first use (60 MB for
        the shipped library) and kept for the engine's lifetime.
        """
        return np.ascontiguousarray(self.tpl_bins.transpose(0, 2, 1))

    @cached_property
    def _coarse_cache(self) -> dict[tuple[int, int], tuple[CoarseGroup, ...]]:
        return {}

    def coarse(self, step: int, n_anchors: int) -> tuple[CoarseGroup, ...]:
        """The columns of the pruned search's first pass, in groups around anchors.

        Redshift indices every ``step`` (both grid ends included), split into ``n_anchors``
        runs of consecutive ones, each with the anchor (the middle one) whose continuum
        coefficients it reuses; per group the columns of ``tpl_bins`` and ``tpl2_bins``,
        (J, B, NT * NZg) template-major. Built on first use per (step, n_anchors) and kept
        (for step 2, 2 x 31 MB with the shipped library).
        """
        key = (step, n_anchors)
        cache = self._coarse_cache
        if key not in cache:
            nz = self.z.size
            iz = np.arange(0, nz, step)
            if iz[-1] != nz - 1:
                iz = np.append(iz, nz - 1)
            groups = []
            for run in np.array_split(iz, min(n_anchors, iz.size)):
                cols = (np.arange(len(self.names))[:, None] * nz + run[None, :]).ravel()
                groups.append(
                    CoarseGroup(
                        run,
                        (run.size - 1) // 2,
                        np.ascontiguousarray(self.tpl_bins[:, :, cols]),
                        np.ascontiguousarray(self.tpl2_bins[:, :, cols]),
                    )
                )
            cache[key] = tuple(groups)
        return cache[key]


@dataclass(frozen=True)
class CoarseGroup:
    """Consecutive first-pass redshifts of the pruned star search sharing one anchor."""

    iz: npt.NDArray[np.int64]  # (NZg,) indices into the star grid
    anchor: int  # position in iz where the continuum coefficients are solved
    tpl_bins: npt.NDArray[np.float32] = field(repr=False)  # (J, B, NT * NZg)
    tpl2_bins: npt.NDArray[np.float32] = field(repr=False)


@dataclass(frozen=True)
class EigenBlock:
    objclass: str
    n_vectors: int
    offset: int  # rest pixel of observed pixel 0 at z = 0
    lag_lo: int
    lag_hi: int
    nfft: int
    design: EigenDesign
    vectors: npt.NDArray[np.float64] = field(repr=False)  # (J, R) aligned rest grid
    rest_fft: dict[tuple[int, int], npt.NDArray[np.complex128]] = field(repr=False)
    #: first-pass bases of the pruned search, built on first use (``coarse``)
    coarse_cache: dict[tuple[int, bool], CoarseBasis] = field(
        default_factory=dict, repr=False, compare=False
    )
    #: pixels of the observed grid (0: unknown; the first pass then correlates whole vectors)
    npix: int = 0

    @property
    def n_params(self) -> int:
        return self.design.n

    @cached_property
    def rest(self) -> dict[tuple[int, int], npt.NDArray[np.float64]]:
        """The rest-frame products of the design (the pruned search's direct sums)."""
        return rest_products(self.vectors, self.design)

    @property
    def additive_only(self) -> tuple[int, ...]:
        """Basis functions other than the multiplicative e_0 * g terms."""
        d = self.design
        return tuple(a for a in range(d.n) if not (d.rest[a] == 0 and d.obs[a] > 0))

    def coarse(self, factor: int, full_design: bool) -> CoarseBasis:
        """The basis binned by ``factor`` pixels (:func:`coarse_basis`), cached.

        ``full_design`` False drops the multiplicative e_0 * g terms from the first pass.
        """
        key = (factor, full_design)
        if key not in self.coarse_cache:
            design = self.design if full_design else subset_design(self.design, self.additive_only)
            self.coarse_cache[key] = coarse_basis(
                self.vectors, design, self.m_range, factor, npix=self.npix or None
            )
        return self.coarse_cache[key]

    @property
    def m_range(self) -> tuple[int, int]:
        return self.offset - self.lag_hi, self.offset - self.lag_lo

    def z_of_lag(self, lag: npt.ArrayLike, dloglam: float) -> npt.NDArray[np.float64]:
        return 10.0 ** (np.asarray(lag, dtype=np.float64) * dloglam) - 1.0


@dataclass(frozen=True)
class Engine:
    """Everything the kernels need, on one working grid."""

    grid: LogGrid
    basis: ContinuumBasis
    star: StarBlock
    eigen: tuple[EigenBlock, ...]
    obs_funcs: npt.NDArray[np.float64] = field(repr=False)  # (4, P): P0, P1, P2, red arm
    pixel_weight: npt.NDArray[np.float64] = field(repr=False)  # (P,) 0 in masked ranges
    version: str = ENGINE_VERSION
    #: star subclasses from line indices (``spectype``); None: the template's subclass
    typer: IndexTyper | None = field(default=None, repr=False)
    #: confidence parameters of this configuration; None: the shipped ones
    confidence: ConfidenceParams | None = field(default=None, repr=False)
    #: what the engine was built from (None when built directly by prepare_engine)
    config: EngineConfig | None = None
    #: pruned or exhaustive search over templates x redshifts
    search: SearchConfig = SearchConfig()


def _bin_index(basis: ContinuumBasis) -> npt.NDArray[np.int64]:
    starts = basis.bin_starts
    ends = np.append(starts[1:], basis.npix)
    width = int((ends - starts).max())
    idx = np.full((starts.size, width), basis.npix, dtype=np.int64)
    for j, (a, b) in enumerate(zip(starts, ends, strict=True)):
        idx[j, : b - a] = np.arange(a, b)
    return idx


def prepare_star(
    sets: TemplateSet | tuple[TemplateSet, ...],
    grid: LogGrid,
    basis: ContinuumBasis,
    zgrid: RedshiftGrid = STAR_GRID,
) -> StarBlock:
    """Shift every single star template of ``sets`` to every redshift of ``zgrid``."""
    sets = (sets,) if isinstance(sets, TemplateSet) else tuple(sets)
    for ts in sets:
        if ts.kind != "single":
            raise ValueError(
                f"{ts.source}: a STAR eigen-basis ({ts.subclass or ts.objclass}) "
                "cannot be used by the star kernel, which fits single templates "
                "with continuum vectors; give single-template files"
            )
    z = zgrid.values()
    obs_loglam = grid.loglam0 + grid.dloglam * np.arange(grid.npix)
    n_cols = sum(ts.vectors.shape[0] for ts in sets) * z.size
    # float32: the per-bin sums are of same-sign terms (relative error ~1e-7), and float32
    # matrix products run at twice the float64 rate; chi2 itself is formed in float64.
    # Pixel-major (P + 1, T), written in place (no (T, P) float64 intermediate), so that the
    # per-bin gather reads whole rows: 3x faster start-up than gathering columns of a
    # (T, P + 1) array. Columns are template-major, redshift-minor; row P is the padding.
    padded = np.zeros((grid.npix + 1, n_cols), dtype=np.float32)
    first = 0
    for ts in sets:
        rest_loglam = ts.loglam0 + ts.dloglam * np.arange(ts.vectors.shape[1])
        spline = CubicSpline(rest_loglam, ts.vectors, axis=1, extrapolate=False)
        n_t = ts.vectors.shape[0]
        block = padded[: grid.npix, first : first + n_t * z.size]
        for iz, zz in enumerate(z):  # 41 interpolations at preparation, not in the hot path
            block[:, iz :: z.size] = spline(obs_loglam - np.log10(1 + zz)).T
        first += n_t * z.size
    np.putmask(padded, np.isnan(padded), 0.0)  # outside a template (6x nan_to_num's speed)
    names = tuple(n for ts in sets for n in ts.names)
    bin_index = _bin_index(basis)
    tpl_bins = padded[bin_index]  # (J, B, T)
    return StarBlock(names, z, tpl_bins, tpl_bins**2, bin_index, sets)


#: Additive polynomial terms per eigen class, as in the SDSS pipeline: galaxies get a
#: quadratic (3 terms); QSOs none, otherwise a polynomial alone can imitate a star's
#: continuum while the QSO vectors fit noise at a far redshift.
N_POLY = {"GALAXY": 3, "QSO": 0}
#: Additive polynomial terms (P0..P(n-1) in the observed frame) applied only redward of
#: rest 1230 A (Lyman alpha), per eigen class. For QSOs they let the basis follow the
#: continuum shapes of real QSOs (SDSS QSOs with the right class and |dz|/(1+z) < 3e-3:
#: 78 -> 84 of 85 on ../shared, `benchmarks/validate_engine.py`), while blue of Lyman alpha
#: the forest keeps the eigenvectors' mean absorption, so the terms cannot rebuild a star's
#: blue continuum under a QSO at z ~ 5 (which a polynomial over the whole grid did: a LAMOST
#: A2 star at S/N 40 came out a QSO at z = 4.98).
RED_OF_LYA_POLY = {"QSO": 3}
LYA_STEP_ANGSTROM = 1230.0
#: Observed-frame functions multiplying the mean eigenvector (rows of ``Engine.obs_funcs``:
#: 0 = P0, 1 = P1, 2 = P2, 3 = red arm). Without them a simulated galaxy with a 36 % tilt
#: and a 15 % arm step was fit best at a wrong redshift (rchi2 2.5 against 3.3 at the truth).
MULT_OBS = {"GALAXY": (1, 2, 3), "QSO": ()}
# QSOs get none: with them the SDSS QSO at z = 2.953 moved by 0.001 and the class agreement
# with LAMOST fell (the extra freedom let QSO fits take real stars).


def prepare_eigen(
    ts: TemplateSet, grid: LogGrid, zgrid: RedshiftGrid, mult_obs: tuple[int, ...] | None = None
) -> EigenBlock:
    if abs(ts.dloglam - grid.dloglam) > 1e-12:
        raise ValueError(
            f"{ts.source}: template step {ts.dloglam} differs from the working "
            f"grid step {grid.dloglam}; resample it first"
        )
    offset_f = (grid.loglam0 - ts.loglam0) / grid.dloglam
    vectors = ts.vectors
    offset = int(round(offset_f))
    if abs(offset_f - offset) > 1e-6:  # align the rest grid to the working grid's phase
        rest = ts.loglam0 + ts.dloglam * np.arange(vectors.shape[1])
        shift = (offset_f - offset) * grid.dloglam
        vectors = CubicSpline(rest, vectors, axis=1, extrapolate=False)(rest + shift)
        vectors = np.nan_to_num(vectors, nan=0.0)
    n_rest = vectors.shape[1]
    lag_lo, lag_hi = zgrid.lag_range(grid.dloglam)
    # the template must cover the whole observed grid at every lag
    lag_lo = max(lag_lo, offset + grid.npix - n_rest)
    lag_hi = min(lag_hi, offset)
    nfft = sfft.next_fast_len(n_rest, real=True)
    if mult_obs is None:
        mult_obs = MULT_OBS.get(ts.objclass, ())
    n_red = RED_OF_LYA_POLY.get(ts.objclass, 0)
    if n_red:
        # additive P0..P(n-1) redward of Lyman alpha only: a rest-frame step vector times the
        # observed-frame polynomials; the forest keeps the eigenvectors' own mean absorption
        n_eig = vectors.shape[0]
        rest_wave = 10.0 ** (grid.loglam0 + grid.dloglam * (np.arange(vectors.shape[1]) - offset))
        step = 0.5 * (1.0 + np.tanh((rest_wave - LYA_STEP_ANGSTROM) / 5.0))
        vectors = np.vstack([vectors, step])
        design = EigenDesign((*range(n_eig), *([n_eig] * n_red)), (*([-1] * n_eig), *range(n_red)))
    else:
        design = make_design(vectors.shape[0], N_POLY.get(ts.objclass, 3), mult_obs)
    rest_fft = {key: sfft.rfft(arr, nfft) for key, arr in rest_products(vectors, design).items()}
    return EigenBlock(
        ts.objclass,
        vectors.shape[0],
        offset,
        lag_lo,
        lag_hi,
        nfft,
        design,
        vectors,
        rest_fft,
        npix=grid.npix,
    )


def observed_functions(grid: LogGrid, join_angstrom: float = 5800.0) -> npt.NDArray[np.float64]:
    """Rows P0, P1, P2 (Legendre across the grid) and the red-arm indicator."""
    x = np.linspace(-1.0, 1.0, grid.npix)
    rows = [legendre.legval(x, np.eye(3)[k]) for k in range(3)]
    rows.append((grid.wave_angstrom >= join_angstrom).astype(np.float64))
    return np.array(rows)


def prepare_engine(
    templates: dict[str, TemplateSet] | None = None,
    *,
    extra: tuple[TemplateSet, ...] = (),
    basis: ContinuumBasis | None = None,
    grid: LogGrid = WORKING_GRID,
    typing: TypingSet | None = None,
    zgrids: tuple[RedshiftGrid, RedshiftGrid, RedshiftGrid] = (STAR_GRID, GALAXY_GRID, QSO_GRID),
) -> Engine:
    """Prepare the default (or given) templates for the kernels.

    The default star set is the shipped library (:func:`load_default_star_library`); the
    galaxy and QSO eigen-bases are SDSS's. With the default templates, star subclasses are
    typed from line indices against the shipped typing table
    (:func:`lamostdb.templates.typeset.load_default_typing_set`); with given templates, only
    when a ``typing`` table is given too (it belongs with a LAMOST-scale library).

    ``extra`` template sets are added: single STAR templates join the star library (e.g.
    redrock's Carbon and L dwarf), a GALAXY or QSO eigen-basis replaces that class's default.
    ``zgrids`` are the STAR, GALAXY and QSO redshift grids.
    """
    if templates is None:
        templates = load_default_templates()
        templates["STAR"] = load_default_star_library()
        typing = typing or load_default_typing_set()
    typer = None  # checked first: a stale table fails before the templates are prepared
    if typing is not None:
        typer = prepare_typer(
            typing.index_names, typing.indices, typing.ordinals, source=typing.provenance
        )
        if typer.index_names != INDEX_NAMES:
            raise ValueError(
                f"typing table indices {typer.index_names} are not this engine's "
                f"{INDEX_NAMES}; remake it with benchmarks/make_default_library.py"
            )
    templates = dict(templates)
    star_sets = [templates["STAR"]]
    for ts in extra:
        if ts.objclass == "STAR":
            star_sets.append(ts)
        elif ts.objclass in ("GALAXY", "QSO"):
            templates[ts.objclass] = ts
        else:
            raise ValueError(f"{ts.source}: class {ts.objclass} is not one the engine fits")
    basis = basis or default_basis()
    star_grid, galaxy_grid, qso_grid = zgrids
    star = prepare_star(tuple(star_sets), grid, basis, star_grid)
    eigen = tuple(
        prepare_eigen(templates[c], grid, g)
        for c, g in (("GALAXY", galaxy_grid), ("QSO", qso_grid))
        if c in templates
    )
    return Engine(
        grid,
        basis,
        star,
        eigen,
        observed_functions(grid),
        mask_weight(grid, SKY_TELLURIC_MASK_ANGSTROM),
        typer=typer,
    )


def mask_weight(grid: LogGrid, ranges: tuple[tuple[float, float], ...]) -> npt.NDArray[np.float64]:
    """1 everywhere except 0 inside the given wavelength ranges."""
    wave = grid.wave_angstrom
    weight = np.ones(grid.npix)
    for lo, hi in ranges:
        weight[(wave >= lo) & (wave <= hi)] = 0.0
    return weight


@lru_cache(maxsize=4)
def get_engine(config: EngineConfig = DEFAULT_CONFIG) -> Engine:
    """The engine ``config`` describes, built once per process and configuration."""
    from lamostdb.templates.library import load_template_file

    extra = tuple(load_template_file(f) for f in config.templates)
    engine = prepare_engine(
        extra=extra,
        basis=load_basis(config.continuum) if config.continuum else None,
        zgrids=(config.star_grid, config.galaxy_grid, config.qso_grid),
    )
    return replace(
        engine, confidence=load_params(config.confidence), config=config, search=config.search
    )
