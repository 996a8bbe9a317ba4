"""The simulated sky: survey fields, their targets, and mock Gaia / PS1 catalogues.

Everything here is a pure function of a field index and the constant
:data:`SURVEY_SEED`, never of a night's seed: two nights that observe the same
field see the same objects (same ids, classes, templates, positions) and the
same reference-catalogue rows. Only what happens during an observation (S/N,
noise, distortions, masks) belongs to the night.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from astropy import units as u
from astropy_healpix.core import lonlat_to_healpix

from lamostdb.constants import C_KMS
from lamostdb.sim import spectra_model as sm
from lamostdb.templates import TemplateSet

F64 = npt.NDArray[np.float64]
Targets = dict[str, np.ndarray]

SURVEY_SEED = 20120901
N_FIELDS = 256  # >= 250 plates: a night of 999,999 spectra still gets distinct fields
FIELD_RADIUS_DEG = 2.5
TARGETS_PER_FIELD = 6000
CLASSES = ("STAR", "GALAXY", "QSO", "UNKNOWN")
CLASS_P = (0.88, 0.05, 0.03, 0.04)
GAIA_EPOCH = 2016.0
PS1_EPOCH = 2012.0  # mean epoch of the PS1 3pi survey; PS1 has no proper motions
MAG_ZEROPOINT = 23.5  # flux units: median g-band model flux = 10**(-0.4 (g - ZP))
# Background densities (per arcmin^2) and radii of the mock reference catalogues.
BACKGROUND_NEAR_DENSITY = 0.5
BACKGROUND_NEAR_RADIUS_ARCSEC = 30.0
BACKGROUND_FIELD_DENSITY = 0.05
CLOSE_PAIR_FRACTION = 0.01
# Local id blocks inside a field: targets, their close companions, background.
_PAIR_BASE = 6_000
_BACKGROUND_BASE = 10_000
_DEG2MAS = 3.6e6
_MJD0 = _dt.date(1858, 11, 17)


def _check_field(index: int) -> None:
    if not 0 <= index < N_FIELDS:
        raise ValueError(f"field index {index} outside 0..{N_FIELDS - 1}")


def field_centre(index: int) -> tuple[float, float]:
    """(ra, dec) in degrees of survey field ``index``: uniform on the sky, -10 < dec < 60."""
    _check_field(index)
    rng = np.random.default_rng([SURVEY_SEED, 0, index])
    ra = rng.uniform(0.0, 360.0)
    sin_dec = rng.uniform(np.sin(np.radians(-10.0)), np.sin(np.radians(60.0)))
    return float(ra), float(np.degrees(np.arcsin(sin_dec)))


def tangent_to_sky(ra0: F64 | float, dec0: F64 | float, xi: F64, eta: F64) -> tuple[F64, F64]:
    """Inverse gnomonic projection: tangent-plane offsets (radians) to (ra, dec) degrees."""
    a0, d0 = np.radians(ra0), np.radians(dec0)
    denom = np.cos(d0) - eta * np.sin(d0)
    ra = np.degrees(a0 + np.arctan2(xi, denom)) % 360.0
    dec = np.degrees(np.arctan2(np.sin(d0) + eta * np.cos(d0), np.hypot(xi, denom)))
    return ra, dec


def _scatter(
    rng: np.random.Generator, ra0: F64, dec0: F64, r_max_deg: F64 | float
) -> tuple[F64, F64]:
    """Uniform points in discs of radius ``r_max_deg`` around each (ra0, dec0)."""
    ra0, dec0 = np.broadcast_arrays(np.asarray(ra0, float), np.asarray(dec0, float))
    r = np.tan(np.radians(r_max_deg)) * np.sqrt(rng.uniform(size=ra0.shape))
    theta = rng.uniform(0.0, 2.0 * np.pi, size=ra0.shape)
    return offset(ra0, dec0, np.degrees(r * np.sin(theta)), np.degrees(r * np.cos(theta)))


def offset(ra: F64, dec: F64, east_deg: F64, north_deg: F64) -> tuple[F64, F64]:
    """Move (ra, dec) by tangent-plane offsets east/north in degrees (exact gnomonic)."""
    return tangent_to_sky(ra, dec, np.radians(east_deg), np.radians(north_deg))


def propagate(ra: F64, dec: F64, pmra: F64, pmdec: F64, dt_yr: F64 | float) -> tuple[F64, F64]:
    """Positions moved by proper motion (mas/yr, pmra includes cos dec) over ``dt_yr``.

    Small-angle tangent-plane propagation: good to < 1 mas for |pm dt| < 30".
    """
    dra = np.asarray(pmra) * dt_yr / _DEG2MAS / np.cos(np.radians(dec))
    ddec = np.asarray(pmdec) * dt_yr / _DEG2MAS
    return (np.asarray(ra) + dra) % 360.0, np.asarray(dec) + ddec


def mjd_to_date(mjd: int) -> str:
    """ISO calendar date of an integer MJD (MJD 0 = 1858-11-17)."""
    return (_MJD0 + _dt.timedelta(days=int(mjd))).isoformat()


def designation(ra_deg: float, dec_deg: float) -> str:
    """IAU-style ``LAMOST Jhhmmss.ss+ddmmss.s`` name (truncated, not rounded)."""
    cs = int(ra_deg / 15.0 * 360000.0)  # hundredths of a second of time
    h, rem = divmod(cs, 360000)
    m, rem = divmod(rem, 6000)
    ds = int(abs(dec_deg) * 36000.0)  # tenths of an arcsecond
    d, drem = divmod(ds, 36000)
    dm, drem = divmod(drem, 600)
    sign = "-" if dec_deg < 0 else "+"
    return (
        f"LAMOST J{h:02d}{m:02d}{rem // 100:02d}.{rem % 100:02d}"
        f"{sign}{d:02d}{dm:02d}{drem // 10:02d}.{drem % 10}"
    )


def gaia_like_id(
    ra: F64, dec: F64, field: int, local: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Gaia-style source_id: HEALPix level-12 nested pixel * 2**35 + a unique number."""
    pix = lonlat_to_healpix(
        np.asarray(ra) * u.deg, np.asarray(dec) * u.deg, 4096, order="nested"
    ).astype(np.int64)
    return pix * (1 << 35) + (field + 1) * (1 << 20) + local


def ps1_like_id(ra: F64, dec: F64, local: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """PS1-style objID: 30-arcsec declination zone, RA in micro-degrees, a counter."""
    zone = np.floor((np.asarray(dec) + 90.0) * 120.0).astype(np.int64)
    ra_micro = np.floor(np.asarray(ra) * 1e6).astype(np.int64)
    return zone * 10**13 + ra_micro * 10**4 + local % 10**4


def gaia_mags(g: F64, r: F64) -> tuple[F64, F64, F64]:
    """Rough Gaia G, BP, RP from SDSS-like g, r (mock photometry, not a calibration)."""
    gr = g - r
    big_g = r - 0.1 - 0.25 * gr
    bp_rp = 0.3 + 1.2 * gr
    return big_g, big_g + 0.4 * bp_rp, big_g - 0.6 * bp_rp


def field_targets(index: int, templates: dict[str, TemplateSet]) -> Targets:
    """Every target of field ``index`` with its intrinsic (epoch-independent) properties.

    Columns: object_id, local, class, star_row, template_name, subclass, z_sys,
    v_sys_kms, binary_k_kms, coeffs (n, 4), ra_2016, dec_2016, pmra, pmdec,
    parallax, mag_g/r/i/z/y, gaia_g/bp/rp, has_gaia, has_ps1, gaia_source_id,
    ps1_objid (-1 when absent), close_pair, unknown_kind, priority.
    """
    ra0, dec0 = field_centre(index)
    streams = [
        np.random.default_rng(s) for s in np.random.SeedSequence([SURVEY_SEED, 1, index]).spawn(8)
    ]
    r_pos, r_cls, r_star, r_kin, r_ext, r_mag, r_ref, r_sel = streams
    n = TARGETS_PER_FIELD
    wave = sm.wave_angstrom()
    local = np.arange(n, dtype=np.int64)
    t: Targets = {"object_id": (index + 1) * 10_000_000 + local, "local": local}
    cls = r_cls.choice(len(CLASSES), size=n, p=CLASS_P)
    t["class"] = np.array(CLASSES, dtype=object)[cls]
    is_star, is_gal, is_qso, is_unk = (cls == k for k in range(4))
    # Half the UNKNOWN targets are sky fibres, half junk (artefacts in the input catalogue).
    kind = np.where(r_cls.uniform(size=n) < 0.5, "sky", "junk")
    t["unknown_kind"] = np.where(is_unk, kind, "").astype(object)
    t["ra_2016"], t["dec_2016"] = _scatter(
        r_pos, np.full(n, ra0), np.full(n, dec0), FIELD_RADIUS_DEG
    )

    stars = templates["STAR"]
    pool, p = sm.star_pool(stars)
    t["star_row"] = np.where(is_star, r_star.choice(pool, size=n, p=p), -1)
    names = np.array(stars.names, dtype=object)
    t["template_name"] = np.where(
        is_star, names[np.maximum(t["star_row"], 0)], np.where(is_unk, "none", "eigen")
    )
    subclass = {name: sm.subclass_of(name) for name in set(names[pool])}
    t["subclass"] = np.array(
        [subclass[x] if s else "Non" for x, s in zip(t["template_name"], is_star, strict=True)],
        dtype=object,
    )

    t.update(_kinematics(r_kin, is_star))

    # Extragalactic redshifts (more galaxies at low z) and eigen-coefficients.
    z_gal = 0.6 * r_ext.beta(1.5, 4.0, size=n)
    z_qso = 0.1 + 3.9 * r_ext.beta(2.0, 3.5, size=n)
    t["z_sys"] = np.select([is_star, is_gal, is_qso], [t["v_sys_kms"] / C_KMS, z_gal, z_qso], 0.0)
    coeffs = np.zeros((n, 4))
    for flag, key in ((is_gal, "GALAXY"), (is_qso, "QSO")):
        coeffs[flag] = sm.draw_eigen_coeffs(
            r_ext, templates[key], t["z_sys"][flag], (0.3, 0.2, 0.1), wave
        )
    t["coeffs"] = coeffs
    t.update(_photometry(r_mag, t, templates, pool))

    # Which reference catalogues see the target (faint / extended ones drop out).
    draw = r_ref.uniform(size=(n, 3))
    t["has_gaia"] = (
        (is_star & (draw[:, 0] < 0.97))
        | (is_qso & (draw[:, 0] < 0.7))
        | (is_gal & (draw[:, 0] < 0.1))
    )
    t["has_ps1"] = ~is_unk & (draw[:, 1] < 0.97)
    t["close_pair"] = ~is_unk & (draw[:, 2] < CLOSE_PAIR_FRACTION)
    t["gaia_source_id"] = np.where(
        t["has_gaia"], gaia_like_id(t["ra_2016"], t["dec_2016"], index, local), -1
    )
    ra_ps1, dec_ps1 = propagate(
        t["ra_2016"], t["dec_2016"], t["pmra"], t["pmdec"], PS1_EPOCH - GAIA_EPOCH
    )
    t["ps1_objid"] = np.where(t["has_ps1"], ps1_like_id(ra_ps1, dec_ps1, local), -1)
    # Selection weight: some targets get onto plates far more often than others.
    t["priority"] = np.exp(r_sel.normal(0.0, 0.7, size=n))
    return t


def _kinematics(rng: np.random.Generator, is_star: npt.NDArray[np.bool_]) -> Targets:
    """Radial velocity, binarity, proper motion and parallax (zero for non-stars)."""
    n = is_star.size
    v_sys = np.clip(rng.normal(0.0, 40.0, size=n), -1099.0, 1099.0)
    binary = rng.uniform(size=n) < 0.10
    k_amp = rng.uniform(10.0, 60.0, size=n)
    pm = rng.normal(0.0, 6.0, size=(n, 2))
    high = rng.uniform(size=n) < 0.02
    pm_high = 10.0 ** rng.uniform(2.0, 3.0, size=n)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    vt = rng.uniform(30.0, 150.0, size=n)
    plx = np.exp(rng.normal(np.log(0.6), 0.8, size=n))
    high &= is_star
    pm[high] = (pm_high * np.stack([np.sin(angle), np.cos(angle)]))[:, high].T
    # Nearby fast movers have the parallax their tangential velocity implies.
    plx = np.where(high, 4.74 * pm_high / vt, plx)
    return {
        "v_sys_kms": np.where(is_star, v_sys, 0.0),
        "binary_k_kms": np.where(is_star & binary, k_amp, 0.0),
        "pmra": np.where(is_star, pm[:, 0], 0.0),
        "pmdec": np.where(is_star, pm[:, 1], 0.0),
        "parallax": np.where(is_star, plx, 0.0),
        "high_pm": high,
    }


def _photometry(
    rng: np.random.Generator,
    t: Targets,
    templates: dict[str, TemplateSet],
    pool: npt.NDArray[np.intp],
) -> Targets:
    """g from a class-dependent distribution, other bands from the model's colours."""
    n = t["class"].size
    is_star, is_gal, is_qso = (t["class"] == c for c in CLASSES[:3])
    wave = sm.wave_angstrom()
    stars = templates["STAR"]
    g = np.select(
        [is_star, is_gal, is_qso],
        [
            np.clip(rng.normal(15.8, 1.2, size=n), 10.5, 19.0),
            np.clip(rng.normal(17.6, 0.5, size=n), 15.5, 18.8),
            np.clip(rng.normal(18.3, 0.6, size=n), 16.0, 19.5),
        ],
        np.nan,
    )
    colours = np.zeros((n, 4))
    star_mags = sm.band_flux_mags(sm.shift_templates(stars, pool, np.zeros(pool.size), wave), wave)
    lookup = np.zeros((len(stars.names), 4))
    lookup[pool] = star_mags
    colours[is_star] = lookup[t["star_row"][is_star]]
    for flag, key in ((is_gal, "GALAXY"), (is_qso, "QSO")):
        model = sm.eigen_model(templates[key], t["coeffs"][flag], t["z_sys"][flag], wave)
        colours[flag] = sm.band_flux_mags(model, wave)
    out: Targets = {}
    mags = g[:, None] + colours - colours[:, :1]
    out["mag_g"], out["mag_r"], out["mag_i"], out["mag_z"] = mags.T
    out["mag_y"] = out["mag_z"] - 0.5 * (out["mag_i"] - out["mag_z"])
    out["gaia_g"], out["gaia_bp"], out["gaia_rp"] = gaia_mags(out["mag_g"], out["mag_r"])
    return out


def _sources(index: int, targets: Targets) -> dict[str, np.ndarray]:
    """All reference-catalogue sources of a field: targets, companions, background."""
    rng = np.random.default_rng([SURVEY_SEED, 2, index])
    ra0, dec0 = field_centre(index)
    # Background near each target (where cross-match confusion happens) and spread
    # thinly over the whole field.
    near_area = np.pi * (BACKGROUND_NEAR_RADIUS_ARCSEC / 60.0) ** 2
    n_near = rng.poisson(BACKGROUND_NEAR_DENSITY * near_area, size=TARGETS_PER_FIELD)
    host = np.repeat(np.arange(TARGETS_PER_FIELD), n_near)
    ra_n, dec_n = _scatter(
        rng,
        targets["ra_2016"][host],
        targets["dec_2016"][host],
        BACKGROUND_NEAR_RADIUS_ARCSEC / 3600.0,
    )
    n_far = int(rng.poisson(BACKGROUND_FIELD_DENSITY * np.pi * (FIELD_RADIUS_DEG * 60) ** 2))
    ra_f, dec_f = _scatter(rng, np.full(n_far, ra0), np.full(n_far, dec0), FIELD_RADIUS_DEG)
    # Close companions 1-2.5 arcsec from 1 % of the targets.
    pair = np.flatnonzero(targets["close_pair"])
    sep = rng.uniform(1.0, 2.5, size=pair.size) / 3600.0
    pa_ = rng.uniform(0.0, 2.0 * np.pi, size=pair.size)
    ra_p, dec_p = offset(
        targets["ra_2016"][pair], targets["dec_2016"][pair], sep * np.sin(pa_), sep * np.cos(pa_)
    )
    n_bg = host.size + n_far
    n_extra = pair.size + n_bg
    g_extra = np.concatenate(
        [
            targets["mag_g"][pair] + rng.uniform(0.5, 3.0, pair.size),
            17.0 + 4.5 * np.sqrt(rng.uniform(size=n_bg)),
        ]
    )
    # A fifth of the background are galaxies: red-ish, no motion, not in Gaia.
    is_galaxy = np.concatenate([np.zeros(pair.size, bool), rng.uniform(size=n_bg) < 0.2])
    gr = np.where(is_galaxy, rng.uniform(0.6, 1.0, n_extra), rng.uniform(0.2, 1.4, n_extra))
    pm = np.where(is_galaxy[:, None], 0.0, rng.normal(0.0, 5.0, size=(n_extra, 2)))
    plx = np.where(is_galaxy, 0.0, np.exp(rng.normal(np.log(0.4), 0.8, size=n_extra)))
    r = g_extra - gr
    i = r - 0.4 * gr
    z = i - 0.2 * gr
    big_g, bp, rp = gaia_mags(g_extra, r)
    ps1_noise = rng.normal(0.0, 0.015 / 3600.0, size=(TARGETS_PER_FIELD + n_extra, 2))
    extra_local = np.concatenate(
        [
            _PAIR_BASE + np.arange(pair.size, dtype=np.int64),
            _BACKGROUND_BASE + np.arange(n_bg, dtype=np.int64),
        ]
    )
    has_gaia_extra = ~is_galaxy & (big_g < 20.8) & (rng.uniform(size=n_extra) < 0.95)
    has_ps1_extra = rng.uniform(size=n_extra) < 0.97
    src = {
        "local": np.concatenate([targets["local"], extra_local]),
        "ra": np.concatenate([targets["ra_2016"], ra_p, ra_n, ra_f]),
        "dec": np.concatenate([targets["dec_2016"], dec_p, dec_n, dec_f]),
        "pmra": np.concatenate([targets["pmra"], pm[:, 0]]),
        "pmdec": np.concatenate([targets["pmdec"], pm[:, 1]]),
        "parallax": np.concatenate([targets["parallax"], plx]),
        "g": np.concatenate([targets["mag_g"], g_extra]),
        "r": np.concatenate([targets["mag_r"], r]),
        "i": np.concatenate([targets["mag_i"], i]),
        "z": np.concatenate([targets["mag_z"], z]),
        "y": np.concatenate([targets["mag_y"], z - 0.1 * gr]),
        "gaia_g": np.concatenate([targets["gaia_g"], big_g]),
        "gaia_bp": np.concatenate([targets["gaia_bp"], bp]),
        "gaia_rp": np.concatenate([targets["gaia_rp"], rp]),
        "has_gaia": np.concatenate([targets["has_gaia"], has_gaia_extra]),
        "has_ps1": np.concatenate([targets["has_ps1"], has_ps1_extra]),
    }
    src["gaia_source_id"] = gaia_like_id(src["ra"], src["dec"], index, src["local"])
    ra_ps1, dec_ps1 = propagate(
        src["ra"], src["dec"], src["pmra"], src["pmdec"], PS1_EPOCH - GAIA_EPOCH
    )
    src["ps1_objid"] = ps1_like_id(ra_ps1, dec_ps1, src["local"])
    # Id from the noise-free position so a target's id equals targets["ps1_objid"].
    src["ra_ps1"] = (ra_ps1 + ps1_noise[:, 0] / np.cos(np.radians(dec_ps1))) % 360.0
    src["dec_ps1"] = dec_ps1 + ps1_noise[:, 1]
    return src


def reference_tables(
    fields: list[int], templates: dict[str, TemplateSet], targets: dict[int, Targets] | None = None
) -> tuple[pa.Table, pa.Table]:
    """Mock Gaia (epoch 2016.0) and PS1 tables covering ``fields``, sorted by id.

    ``targets`` may hold :func:`field_targets` results already computed.
    """
    if not fields:
        raise ValueError("no fields given")
    targets = targets or {}
    parts = [
        _sources(f, targets[f] if f in targets else field_targets(f, templates))
        for f in sorted(set(fields))
    ]
    src = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    g = np.flatnonzero(src["has_gaia"])
    g = g[np.argsort(src["gaia_source_id"][g], kind="stable")]
    gaia = pa.table(
        {
            "source_id": pa.array(src["gaia_source_id"][g], pa.int64()),
            "ra": src["ra"][g],
            "dec": src["dec"][g],
            "pmra": src["pmra"][g],
            "pmdec": src["pmdec"][g],
            "parallax": src["parallax"][g],
            "ref_epoch": np.full(g.size, GAIA_EPOCH),
            "phot_g_mean_mag": src["gaia_g"][g].astype(np.float32),
            "phot_bp_mean_mag": src["gaia_bp"][g].astype(np.float32),
            "phot_rp_mean_mag": src["gaia_rp"][g].astype(np.float32),
        }
    )
    p = np.flatnonzero(src["has_ps1"])
    p = p[np.argsort(src["ps1_objid"][p], kind="stable")]
    ps1 = pa.table(
        {
            "objID": pa.array(src["ps1_objid"][p], pa.int64()),
            "raMean": src["ra_ps1"][p],
            "decMean": src["dec_ps1"][p],
            **{f"{b}MeanPSFMag": src[b][p].astype(np.float32) for b in "grizy"},
        }
    )
    return gaia, ps1
