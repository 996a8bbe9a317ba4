"""Arm-join and flux-calibration artefacts of real LAMOST spectra, for the simulator.

Real LAMOST stars are lost to GALAXY / QSO by three kinds of defect that the
ordinary tilt and arm mismatch of the simulator do not reach:

* a **join step**: the red arm is off the blue arm by a factor of up to 5 either
  way at the dichroic join (5,700-5,950 A);
* a **join spike or dip**: a few tens of pixels at the join far above or below
  the continuum, where the two arms are stitched;
* a **red bump**: a broad, smooth excess or deficit of 10-40 % in the red arm,
  centred in 6,800-7,400 A or 8,200-8,800 A (response-curve residuals).

:class:`Artefacts` holds the rate and amplitude range of each; :func:`draw` makes
the per-spectrum parameters from one seeded stream (always the same number of draws
per spectrum, so a rate changes which spectra are hit, never the other draws);
:func:`factors` turns them into multiplicative factors on the flux and on the
noise. Step and bump are calibration errors, so they scale noise and flux alike;
the spike does not (a stitching defect, not a response error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

JOIN_RANGE_ANGSTROM = (5700.0, 5950.0)
BUMP_WINDOWS_ANGSTROM = ((6800.0, 7400.0), (8200.0, 8800.0))
#: Truth-table columns written for every spectrum (neutral values when no artefact).
COLUMNS = (
    "art_join_angstrom",
    "art_join_step",
    "art_join_spike",
    "art_spike_pixels",
    "art_red_bump",
    "art_bump_angstrom",
    "art_bump_sigma_angstrom",
)
_SPIKE_EDGE_PIXELS = 1.5  # soft edges of the spike's top hat


@dataclass(frozen=True)
class Artefacts:
    """Rates (fraction of object spectra) and amplitude ranges of each artefact.

    Parameters
    ----------
    join_step_rate
        Fraction of spectra whose red arm is scaled by a factor ``s`` at the join;
        ``|ln s|`` is uniform in ``[ln join_step_min, ln join_step_max]`` (log-uniform
        steps), up or down with equal odds.
    join_spike_rate
        Fraction with a spike (factor ``1 + a``) or a dip (factor ``1 / (1 + a)``) of
        ``spike_pixels`` pixels at the join, ``a`` uniform in ``spike_amplitude``.
    red_bump_rate
        Fraction with a Gaussian bump ``1 + b exp(-(x - c)^2 / 2 w^2)`` in the red arm,
        ``|b|`` uniform in ``bump_amplitude``, ``c`` uniform in one of
        :data:`BUMP_WINDOWS_ANGSTROM`, ``w`` uniform in ``bump_sigma_angstrom``.

    >>> Artefacts.at_rate(0.2).join_spike_rate
    0.2
    >>> Artefacts.none().active
    False
    """

    join_step_rate: float = 0.04
    join_step_min: float = 1.2
    join_step_max: float = 5.0
    join_spike_rate: float = 0.03
    spike_amplitude: tuple[float, float] = (0.5, 3.0)
    spike_pixels: tuple[int, int] = (10, 60)
    red_bump_rate: float = 0.04
    bump_amplitude: tuple[float, float] = (0.10, 0.40)
    bump_sigma_angstrom: tuple[float, float] = (60.0, 150.0)

    def __post_init__(self) -> None:
        for name in ("join_step_rate", "join_spike_rate", "red_bump_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name}={rate}: a rate is a fraction in [0, 1]")
        if not 1.0 <= self.join_step_min <= self.join_step_max:
            raise ValueError("need 1 <= join_step_min <= join_step_max")
        lo, hi = self.spike_amplitude
        if not 0.0 < lo <= hi:
            raise ValueError(f"spike_amplitude={self.spike_amplitude}: need 0 < low <= high")
        plo, phi = self.spike_pixels
        if not 1 <= plo <= phi:
            raise ValueError(f"spike_pixels={self.spike_pixels}: need 1 <= low <= high")
        blo, bhi = self.bump_amplitude
        if not 0.0 <= blo <= bhi < 0.9:
            raise ValueError(f"bump_amplitude={self.bump_amplitude}: need 0 <= low <= high < 0.9")
        slo, shi = self.bump_sigma_angstrom
        if not 0.0 < slo <= shi:
            raise ValueError("bump_sigma_angstrom: need 0 < low <= high")

    @classmethod
    def none(cls) -> Artefacts:
        """No artefact at all (the simulator's behaviour before artefacts existed)."""
        return cls(join_step_rate=0.0, join_spike_rate=0.0, red_bump_rate=0.0)

    @classmethod
    def at_rate(cls, rate: float) -> Artefacts:
        """Default amplitudes, every artefact at ``rate`` (e.g. 0.2 for a severe night)."""
        return cls(join_step_rate=rate, join_spike_rate=rate, red_bump_rate=rate)

    @property
    def active(self) -> bool:
        """True when some artefact has a non-zero rate."""
        return max(self.join_step_rate, self.join_spike_rate, self.red_bump_rate) > 0.0


def neutral(n: int) -> dict[str, np.ndarray]:
    """Parameters of ``n`` spectra without artefacts (the values :data:`COLUMNS` get)."""
    return {
        "art_join_angstrom": np.full(n, np.nan),
        "art_join_step": np.ones(n),
        "art_join_spike": np.ones(n),
        "art_spike_pixels": np.zeros(n, dtype=np.int32),
        "art_red_bump": np.zeros(n),
        "art_bump_angstrom": np.full(n, np.nan),
        "art_bump_sigma_angstrom": np.full(n, np.nan),
    }


def draw(
    rng: np.random.Generator, eligible: npt.NDArray[np.bool_], spec: Artefacts
) -> dict[str, np.ndarray]:
    """Per-spectrum artefact parameters (:data:`COLUMNS`) for spectra ``eligible``.

    Ineligible spectra (sky and junk fibres) and spectra not picked by a rate get
    the neutral values of :func:`neutral`.
    """
    n = eligible.size
    u = rng.uniform(size=(n, 3))  # which artefacts: step, spike, bump
    join = rng.uniform(*JOIN_RANGE_ANGSTROM, size=n)
    step_ln = rng.uniform(np.log(spec.join_step_min), np.log(spec.join_step_max), size=n)
    step_sign = rng.choice([-1.0, 1.0], size=n)
    spike_amp = rng.uniform(*spec.spike_amplitude, size=n)
    spike_sign = rng.choice([-1.0, 1.0], size=n)
    spike_pix = rng.integers(spec.spike_pixels[0], spec.spike_pixels[1] + 1, size=n)
    bump_amp = rng.uniform(*spec.bump_amplitude, size=n) * rng.choice([-1.0, 1.0], size=n)
    window = rng.integers(0, len(BUMP_WINDOWS_ANGSTROM), size=n)
    lo = np.array([w[0] for w in BUMP_WINDOWS_ANGSTROM])[window]
    hi = np.array([w[1] for w in BUMP_WINDOWS_ANGSTROM])[window]
    centre = lo + (hi - lo) * rng.uniform(size=n)
    width = rng.uniform(*spec.bump_sigma_angstrom, size=n)
    has_step = eligible & (u[:, 0] < spec.join_step_rate)
    has_spike = eligible & (u[:, 1] < spec.join_spike_rate)
    has_bump = eligible & (u[:, 2] < spec.red_bump_rate)
    out = neutral(n)
    out["art_join_angstrom"] = np.where(has_step | has_spike, join, np.nan)
    out["art_join_step"] = np.where(has_step, np.exp(step_sign * step_ln), 1.0)
    out["art_join_spike"] = np.where(has_spike, (1.0 + spike_amp) ** spike_sign, 1.0)
    out["art_spike_pixels"] = np.where(has_spike, spike_pix, 0).astype(np.int32)
    out["art_red_bump"] = np.where(has_bump, bump_amp, 0.0)
    out["art_bump_angstrom"] = np.where(has_bump, centre, np.nan)
    out["art_bump_sigma_angstrom"] = np.where(has_bump, width, np.nan)
    return out


def factors(params: dict[str, np.ndarray], wave: F64) -> tuple[F64, F64]:
    """Multiplicative factors ``(on_flux, on_noise)``, each (n, len(wave)).

    ``params`` holds the :data:`COLUMNS` arrays of ``n`` spectra. Spectra without
    artefacts get factors of exactly 1.
    """
    n = params["art_join_step"].size
    calib = np.ones((n, wave.size))
    join = params["art_join_angstrom"]
    stepped = np.flatnonzero(params["art_join_step"] != 1.0)
    if stepped.size:
        red = wave[None, :] > join[stepped, None]
        calib[stepped] = np.where(red, params["art_join_step"][stepped, None], 1.0)
    bumped = np.flatnonzero(params["art_red_bump"] != 0.0)
    if bumped.size:
        x = (wave[None, :] - params["art_bump_angstrom"][bumped, None]) / params[
            "art_bump_sigma_angstrom"
        ][bumped, None]
        calib[bumped] *= 1.0 + params["art_red_bump"][bumped, None] * np.exp(-0.5 * x**2)
    on_flux = calib.copy()
    spiked = np.flatnonzero(params["art_join_spike"] != 1.0)
    if spiked.size:
        # A top hat of art_spike_pixels pixels centred on the join, edges softened.
        pix = np.arange(wave.size, dtype=np.float64)
        centre = np.interp(join[spiked], wave, pix)
        half = 0.5 * params["art_spike_pixels"][spiked]
        dist = np.abs(pix[None, :] - centre[:, None]) - half[:, None]
        shape = np.clip(0.5 - dist / (2.0 * _SPIKE_EDGE_PIXELS), 0.0, 1.0)
        peak = params["art_join_spike"][spiked, None]
        on_flux[spiked] *= peak**shape
    return on_flux, calib


def flags(params: dict[str, np.ndarray]) -> dict[str, npt.NDArray[np.bool_]]:
    """Which spectra carry each artefact: ``join_step``, ``join_spike``, ``red_bump``."""
    return {
        "join_step": params["art_join_step"] != 1.0,
        "join_spike": params["art_join_spike"] != 1.0,
        "red_bump": params["art_red_bump"] != 0.0,
    }
