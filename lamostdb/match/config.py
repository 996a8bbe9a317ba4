"""The engine's configuration: one frozen object, built once and passed to every worker.

``EngineConfig`` names everything that changes the engine's answers besides the spectra:
added template files, the continuum vectors, the confidence parameters and the redshift
grids of each class. It is hashable (workers cache one engine per configuration) and
picklable (it travels with each task to a process pool or a Dask worker). Nothing in the
engine reads environment variables.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class RedshiftGrid:
    """A redshift grid: explicit values (stars) or pixel lags (eigen classes)."""

    z_min: float
    z_max: float
    z_step: float | None = None  # explicit grid step; None: one value per pixel lag

    def values(self) -> npt.NDArray[np.float64]:
        if self.z_step is None:
            raise ValueError("a lag grid has no explicit values; use lag_range")
        n = int(round((self.z_max - self.z_min) / self.z_step)) + 1
        return self.z_min + self.z_step * np.arange(n, dtype=np.float64)

    def lag_range(self, dloglam: float) -> tuple[int, int]:
        """Smallest and largest pixel lag k with 10**(k*dloglam) - 1 within the grid."""
        lo = int(np.ceil(np.log10(1 + self.z_min) / dloglam - 1e-9))
        hi = int(np.floor(np.log10(1 + self.z_max) / dloglam + 1e-9))
        return lo, hi


#: The paper's grids: stars +-0.004 (+-1200 km/s) in steps of 0.0002; galaxies and QSOs one
#: value per working-grid pixel lag.
STAR_GRID = RedshiftGrid(-0.004, 0.004, 0.0002)
GALAXY_GRID = RedshiftGrid(-0.01, 1.0)
QSO_GRID = RedshiftGrid(0.0033, 6.0)


@dataclass(frozen=True)
class SearchConfig:
    """How much of the templates x redshifts the exact chi-square visits.

    The default (pruned) search runs a cheap first pass over every template and redshift
    and the exact chi-square of the paper only where that pass leaves candidates;
    ``exhaustive=True`` runs the exact chi-square everywhere (today's full search, kept for
    validation: ``lamostdb classify --exhaustive``).
    """

    exhaustive: bool = False
    # --- GALAXY and QSO eigen-bases (fit._eigen_candidates_pruned) ---
    # Defaults measured against the exhaustive search on 1280 simulated and 1280 real spectra
    # (one BLAS thread, fit_spectra's best candidate; NOTES-eigen.md has the table).
    #: first pass: pixels per block of the binned correlations, per eigen class. QSO 8 was
    #: 4 % faster per batch but moved 6 of 2000 simulated and 8 of 1341 real QSO redshifts by
    #: more than z_err (a different noise dip within the 8-pixel block); 4 moves 3 and 4 of them
    #: (validate_search.py --n 2000 --fit-only, with the noise-like fallback)
    galaxy_factor: int = 4
    qso_factor: int = 4
    #: the first pass keeps the galaxies' multiplicative e_0 * g terms: without them the true
    #: neighbourhood was missing from the first pass's 10 lowest minima for 10-15 % of spectra
    coarse_full_design: bool = True
    #: lowest local minima of the first pass kept per class (the exact pass's windows). 5, 4
    #: and 3 gave the same agreement with the exhaustive search (fit_spectra's best, 2000
    #: simulated and 1341 real spectra: class 100 % / 99.93 %, z 99.70 % / 99.63 %) at 178,
    #: 148 and 141 ms per simulated batch; 3 is also the candidates kept per class
    eigen_top_n: int = 3
    #: exact chi-square on +-half_window pixel lags around each kept first-pass minimum (the
    #: best window of each spectrum follows its minimum if it falls on the window's edge)
    eigen_half_window: int = 2

    # The STAR knobs were chosen with benchmarks/bench_star_search.py and
    # benchmarks/validate_search.py (simulated night of 2000, seed 21, and the 1341 real
    # spectra of ../shared); see NOTES-star.md.
    #: STAR: redshift step (in grid steps) of the first pass over every template. Ranked by
    #: the exact chi-square, step 2 keeps the exhaustive best template in the top 12 for every
    #: spectrum of both sets, steps 3 and 4 for 99.7 % of the simulated ones; with the first
    #: pass's bound at step 3 the search was 13 % faster but matched the exhaustive best
    #: template and z less often (631 vs 634 of 640 simulated, 1328 vs 1334 of 1341 real).
    star_coarse_step: int = 2
    #: STAR: templates per spectrum, best of the first pass, that get the exact chi-square (at
    #: least ``fit_spectra``'s ``n_star_templates``). 12 holds the exhaustive search's 6 best
    #: templates for 98 % (simulated) and 99.4 % (real) of the spectra, 8 for 95 %; 8, 10 and
    #: 12 took the same time within the noise of the shared machine.
    star_top_k: int = 12
    #: STAR: exact chi-square at the first pass's best redshift +- this many grid steps (the
    #: window moves on while its minimum is on its edge); one coarse step.
    star_half_window: int = 2
    #: STAR: redshifts per template where the first pass solves the continuum coefficients.
    #: 3: the exhaustive best template is in the first pass's top 12 for 99.5 % of the
    #: simulated spectra (98.7 % with 1; the misses are noise-like spectra, see below).
    star_anchors: int = 3
    #: STAR: a spectrum whose first pass puts its ``star_top_k`` best templates within this
    #: chi-square of each other gets the exact chi-square everywhere: noise-like spectra, where
    #: dips of 10-25 at a single redshift decide the exhaustive answer. 20 sends every UNKNOWN
    #: spectrum of the simulated night there (10: 98.9 %), 4.9 % of that night and 2.1 % of the
    #: real spectra; without it 3 of the 2000 simulated spectra changed class (fit only).
    star_full_gap: float = 20.0

    #: noise-like spectra (``star_full_gap``) get the exhaustive eigen search as well: their
    #: GALAXY, QSO and STAR fits lie within |delta rchi2| < 0.004 of each other, and a narrow
    #: noise dip that only one of the two searches finds decides the class
    eigen_noise_exhaustive: bool = True

    def __post_init__(self) -> None:
        if min(self.galaxy_factor, self.qso_factor, self.eigen_top_n, self.eigen_half_window) < 1:
            raise ValueError(f"{self}: factors, eigen_top_n and eigen_half_window must be >= 1")
        if self.star_coarse_step < 1 or self.star_top_k < 1 or self.star_anchors < 1:
            raise ValueError("star_coarse_step, star_top_k and star_anchors must be >= 1")
        if self.star_half_window < 1:
            raise ValueError("star_half_window must be >= 1 (the parabola needs neighbours)")


@dataclass(frozen=True)
class EngineConfig:
    """What the engine is built from.

    Parameters
    ----------
    templates
        Template files (or folders of them) added to the shipped library: a STAR set joins
        the star library, a GALAXY or QSO set replaces that class's basis.
    continuum
        Continuum vectors file (``lamostdb templates build``); None: the shipped vectors.
    confidence
        Confidence parameters (``lamostdb confidence fit``); None: the shipped ones.
    star_grid, galaxy_grid, qso_grid
        Redshift grids of each class.
    search
        Pruned (default) or exhaustive search (:class:`SearchConfig`).
    """

    templates: tuple[str, ...] = ()
    continuum: str | None = None
    confidence: str | None = None
    star_grid: RedshiftGrid = STAR_GRID
    galaxy_grid: RedshiftGrid = GALAXY_GRID
    qso_grid: RedshiftGrid = QSO_GRID
    search: SearchConfig = SearchConfig()

    def checked(self) -> EngineConfig:
        """This configuration with absolute paths, after checking every file exists.

        Workers may run in another folder (a Dask worker, a forkserver): paths must not
        depend on the current directory.
        """

        def one(option: str, path: str) -> str:
            p = Path(path).expanduser()
            if not p.exists():
                raise FileNotFoundError(f"{option} {path}: no such file or folder")
            return str(p.resolve())

        return replace(
            self,
            templates=tuple(one("--templates", t) for t in self.templates),
            continuum=one("--continuum", self.continuum) if self.continuum else None,
            confidence=one("--confidence", self.confidence) if self.confidence else None,
        )


#: The shipped engine.
DEFAULT_CONFIG = EngineConfig()
