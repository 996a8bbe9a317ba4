"""Simulate one LAMOST-like observing night: FITS spectra, truth table, mock Gaia/PS1.

The night is planned first as one table of observations (which object, which
fibre, which S/N and distortions), from random streams derived from the night's
seed and the plate number; spectra are then rendered in chunks of the fixed size
:data:`CHUNK`, each with its own stream derived from the chunk number. The files
therefore depend on the arguments only: not on threads, timing, or the
iteration order of dicts and sets.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from lamostdb.constants import C_KMS
from lamostdb.io.fits_write import Card, coadd_file_bytes, image_file_bytes, write_bytes
from lamostdb.sim import artefacts as art
from lamostdb.sim import refcat
from lamostdb.sim import spectra_model as sm
from lamostdb.templates import TemplateSet, load_default_templates

NIGHT_TAG = 1_725  # first entropy word of every night stream, apart from SURVEY_SEED's
N_SPECTROGRAPHS = 16
FIBERS_PER_SPECTROGRAPH = 250
FIBERS_PER_PLATE = N_SPECTROGRAPHS * FIBERS_PER_SPECTROGRAPH
CHUNK = 500  # spectra rendered together; part of the output's definition, keep fixed
MAX_N = 999_999
MAX_SEED = 90_000
LAYOUTS = ("dr9", "dr5", "mixed")
SKY_UNIT = 10.0  # flux units of the noise in sky / junk fibres
PIPELINE_CLASS = {"STAR": "STAR", "GALAXY": "GALAXY", "QSO": "QSO", "UNKNOWN": "Unknown"}
OBJTYPE = {"STAR": "Star", "GALAXY": "Galaxy", "QSO": "QSO"}


def _check(n: int, seed: int) -> None:
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n={n}: a night holds 1..{MAX_N} spectra (obsid has 6 digits for it)")
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed={seed}: use 0 <= seed < {MAX_SEED} (it is part of every obsid)")


def night_fields(seed: int, n: int) -> list[int]:
    """Survey fields observed by night ``seed`` with ``n`` spectra, one per plate.

    A night with more spectra observes a superset of the fields of a smaller one.
    """
    _check(n, seed)
    n_plates = math.ceil(n / FIBERS_PER_PLATE)
    order = np.random.default_rng([NIGHT_TAG, seed, 0]).permutation(refcat.N_FIELDS)
    return [int(f) for f in order[:n_plates]]


def _plan_plate(
    seed: int,
    k: int,
    field: int,
    size: int,
    targets: refcat.Targets,
    tilt_max: float,
    arm_max: float,
    basis: np.ndarray,
) -> dict[str, Any]:
    """Per-observation columns of plate ``k``: who is observed where, and how."""
    rng = np.random.default_rng([NIGHT_TAG, seed, 1, k])
    # Weighted sampling without replacement (Gumbel top-k) by target priority.
    keys = np.log(targets["priority"]) + rng.gumbel(size=targets["priority"].size)
    idx = rng.permutation(np.argsort(-keys, kind="stable")[:size])
    slot = np.sort(rng.choice(FIBERS_PER_PLATE, size=size, replace=False))
    p: dict[str, Any] = {key: np.asarray(val)[idx] for key, val in targets.items()}
    p["field"] = np.full(size, field)
    p["plate"] = np.full(size, k)
    p["spid"] = slot // FIBERS_PER_SPECTROGRAPH + 1
    p["fiberid"] = slot % FIBERS_PER_SPECTROGRAPH + 1
    # Brighter objects get higher S/N; the plate (seeing, moon) shifts all of them.
    log_snr = (
        np.log10(20.0)
        - 0.3 * (p["mag_g"] - 16.0)
        + rng.normal(0, 0.08)
        + rng.normal(0.0, 0.12, size=size)
    )
    p["snr_g"] = 10.0 ** np.clip(np.nan_to_num(log_snr), np.log10(2.0), 2.0)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=size)
    p["v_kms"] = np.clip(p["v_sys_kms"] + p["binary_k_kms"] * np.sin(phase), -1099.0, 1099.0)
    is_star = p["class"] == "STAR"
    p["z"] = np.where(is_star, p["v_kms"] / C_KMS, p["z_sys"])
    p["tilt"] = sm.draw_tilts(rng, size, tilt_max, basis)
    p["arm_join"] = rng.uniform(5700.0, 5900.0, size=size)
    p["arm_scale"] = 1.0 + arm_max * rng.uniform(-1.0, 1.0, size=size)
    p["edge_blue"] = rng.uniform(1.5, 3.0, size=size)
    p["edge_red"] = rng.uniform(1.5, 3.0, size=size)
    sky = p["unknown_kind"] == "sky"
    p["sky_level"] = np.where(sky, rng.uniform(0.2, 1.5, size=size), 0.0)
    amps = rng.uniform(3.0, 15.0, size=(size, 4)) * rng.choice([-1.0, 1.0], size=(size, 4))
    p["sky_amps"] = np.where(sky[:, None], amps, 0.0)
    p["n_masked_runs"] = np.where(rng.uniform(size=size) < 0.3, rng.integers(1, 4, size=size), 0)
    p["run_start"] = rng.integers(0, sm.NPIX - 60, size=(size, 3))
    p["run_length"] = rng.integers(5, 61, size=(size, 3))
    p["run_bits"] = rng.choice(np.array(sm.MASK_BITS_DEAD), size=(size, 3))
    # The pipeline's answer: the truth with a redshift error that grows as S/N falls.
    base_err = np.select(
        [is_star, p["class"] == "GALAXY"], [5.0 / C_KMS, 5e-5 * (1 + p["z"])], 5e-4 * (1 + p["z"])
    )
    z_err = base_err * 20.0 / p["snr_g"]
    p["header_z"] = np.round(p["z"] + z_err * rng.normal(size=size), 8)
    p["header_z_err"] = np.round(z_err * rng.uniform(0.8, 1.2, size=size), 8)
    # One pointing: a fixed UTC time per plate, a heliocentric correction per plate.
    hh, mm, ss = 12 + k % 8, (17 * k + 7) % 60, float((13 * k) % 60)
    p["time"] = np.full(size, f"{hh:02d}:{mm:02d}:{ss:05.2f}", dtype=object)
    p["day_fraction"] = np.full(size, (hh + mm / 60.0 + ss / 3600.0) / 24.0)
    p["helio_rv"] = np.full(size, round(float(rng.uniform(-30.0, 30.0)), 5))
    return p


def plan_night(
    seed: int,
    n: int,
    templates: dict[str, TemplateSet],
    *,
    layout: str = "mixed",
    gzip: bool = False,
    tilt_max: float = 0.30,
    arm_mismatch_max: float = 0.15,
    artefacts: art.Artefacts | None = None,
    targets: dict[int, refcat.Targets] | None = None,
) -> dict[str, Any]:
    """Every observation of the night as columns (no pixels yet), sorted by obsid.

    ``artefacts`` (None: none) adds arm-join and calibration artefacts, drawn from
    their own stream so that every other column is the same with or without them.
    ``targets`` (field index -> :func:`refcat.field_targets`) is filled in as a cache.
    """
    _check(n, seed)
    fields = night_fields(seed, n)
    targets = {} if targets is None else targets
    for f in fields:
        if f not in targets:
            targets[f] = refcat.field_targets(f, templates)
    sizes = [n // len(fields) + (k < n % len(fields)) for k in range(len(fields))]
    basis = sm.legendre_basis()
    plates = [
        _plan_plate(seed, k, f, size, targets[f], tilt_max, arm_mismatch_max, basis)
        for k, (f, size) in enumerate(zip(fields, sizes, strict=True))
    ]
    p: dict[str, Any] = {key: np.concatenate([pl[key] for pl in plates]) for key in plates[0]}
    order = np.lexsort((p["fiberid"], p["spid"], p["plate"]))
    p = {key: val[order] for key, val in p.items()}
    p["obsid"] = 10_000_000_000 + seed * 1_000_000 + np.arange(n, dtype=np.int64)
    if artefacts is None or not artefacts.active:
        p.update(art.neutral(n))
    else:
        p.update(
            art.draw(
                np.random.default_rng([NIGHT_TAG, seed, 3]), p["class"] != "UNKNOWN", artefacts
            )
        )
    p["lmjd"] = np.full(n, 57000 + seed % 3000, dtype=np.int64)
    p["mjd"] = p["lmjd"] - 1
    p["planid"] = np.array([f"SIM{seed:05d}F{k:02d}" for k in p["plate"]], dtype=object)
    p["date_obs"] = np.array(
        [f"{refcat.mjd_to_date(m)}T{t}" for m, t in zip(p["mjd"], p["time"], strict=True)],
        dtype=object,
    )
    p["epoch_jyear"] = 2000.0 + (p["mjd"] + p["day_fraction"] - 51544.5) / 365.25
    p["ra"], p["dec"] = refcat.propagate(
        p["ra_2016"], p["dec_2016"], p["pmra"], p["pmdec"], p["epoch_jyear"] - refcat.GAIA_EPOCH
    )
    if layout == "mixed":
        p["layout"] = np.where(p["spid"] % 2 == 1, "dr9", "dr5").astype(object)
    else:
        p["layout"] = np.full(n, layout, dtype=object)
    suffix = ".fits.gz" if gzip else ".fits"
    p["filename"] = np.array(
        [
            f"spec-{lm}-{pl}_sp{sp:02d}-{fi:03d}{suffix}"
            for lm, pl, sp, fi in zip(p["lmjd"], p["planid"], p["spid"], p["fiberid"], strict=True)
        ],
        dtype=object,
    )
    p["fields"] = fields
    return p


def render(
    p: dict[str, Any], sl: slice, templates: dict[str, TemplateSet], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Pixel arrays of observations ``sl`` of plan ``p``.

    Returns float32 ``flux``, ``ivar``, ``andmask``, ``ormask``, ``model`` (the
    noise-free, distorted spectrum), ``snr_g`` (noise-free median S/N in the g
    band) and the measured ``SNRU``..``SNRZ``.
    """
    wave = sm.wave_angstrom()
    cls = p["class"][sl]
    m = cls.size
    model = np.zeros((m, sm.NPIX))
    star = cls == "STAR"
    model[star] = sm.shift_templates(
        templates["STAR"], p["star_row"][sl][star], p["z"][sl][star], wave
    )
    for key in ("GALAXY", "QSO"):
        sel = cls == key
        model[sel] = sm.eigen_model(templates[key], p["coeffs"][sl][sel], p["z"][sl][sel], wave)
    g_band = sm.band_mask(wave, "G")
    obj = cls != "UNKNOWN"
    median_g = np.median(model[obj][:, g_band], axis=1)
    target = 10.0 ** (-0.4 * (p["mag_g"][sl][obj] - refcat.MAG_ZEROPOINT))
    model[obj] *= (target / median_g)[:, None]
    # Sky and junk fibres: a weak continuum (sky fibres only) plus sky-line residuals.
    unk = ~obj
    model[unk] = SKY_UNIT * (
        p["sky_level"][sl][unk, None] + sm.sky_residuals(p["sky_amps"][sl][unk], wave)
    )
    # Multiplicative flux-calibration tilt and blue/red arm mismatch.
    model *= 1.0 + p["tilt"][sl] @ sm.legendre_basis()
    red = wave[None, :] > p["arm_join"][sl][:, None]
    model *= np.where(red, p["arm_scale"][sl][:, None], 1.0)
    # Arm-join and calibration artefacts (none in the g band, so S/N_g is unchanged).
    params = {k: p[k][sl] for k in art.COLUMNS} if art.COLUMNS[0] in p else art.neutral(m)
    on_flux, on_noise = art.factors(params, wave)
    model *= on_flux
    profile = sm.noise_profile(wave, p["edge_blue"][sl], p["edge_red"][sl])
    scale = np.full(m, SKY_UNIT)
    scale[obj] = np.median(model[obj][:, g_band] / profile[obj][:, g_band], axis=1)
    scale[obj] /= p["snr_g"][sl][obj]
    sigma = scale[:, None] * profile * on_noise
    snr_g = np.median(model[:, g_band] / sigma[:, g_band], axis=1)
    flux = model + sigma * rng.standard_normal((m, sm.NPIX))
    ivar = 1.0 / sigma**2
    andmask = np.zeros((m, sm.NPIX), dtype=np.int64)
    n_runs = p["n_masked_runs"][sl]
    for j in np.flatnonzero(n_runs):
        for r in range(n_runs[j]):
            start = p["run_start"][sl][j, r]
            andmask[j, start : start + p["run_length"][sl][j, r]] |= p["run_bits"][sl][j, r]
    ormask = andmask.copy()
    # The dichroic join: a few pixels flagged in some exposures but still usable.
    join = (wave >= 5700.0) & (wave <= 5900.0)
    ormask[:, join] |= np.where(rng.uniform(size=(m, join.sum())) < 0.01, sm.MASK_BIT_PARTIAL, 0)
    dead = andmask != 0
    flux[dead] = 0.0
    ivar[dead] = 0.0
    out: dict[str, np.ndarray] = {
        "flux": flux.astype(np.float32),
        "ivar": ivar.astype(np.float32),
        "andmask": andmask.astype(np.float32),
        "ormask": ormask.astype(np.float32),
        "model": model.astype(np.float32),
        "snr_g": snr_g,
    }
    measured = sm.measured_snr(out["flux"], out["ivar"], wave)
    out.update({f"SNR{b}": np.round(v, 2) for b, v in measured.items()})
    return out


def header_cards(row: dict[str, Any]) -> list[Card]:
    """Primary-header cards of one observation (LAMOST DR9 keys and order)."""
    cls = row["class"]
    sky = row["unknown_kind"] == "sky"
    unknown = cls == "UNKNOWN"
    cards: list[Card] = [
        ("COMMENT", "--------FILE INFORMATION", ""),
        ("FILENAME", row["filename"].removesuffix(".gz"), ""),
        ("OBSID", row["obsid"], "Unique number ID of this spectrum"),
        ("AUTHOR", "lamostdb simulator", "Who compiled the information"),
        (
            "DATA_V",
            "LAMOST DR9" if row["layout"] == "dr9" else "LAMOST DR5",
            "Data release version",
        ),
        ("TELESCOP", "LAMOST", "GuoShouJing Telescope"),
        ("COMMENT", "--------OBSERVATION PARAMETERS", ""),
        ("DATE-OBS", row["date_obs"], "The observation median UTC"),
        ("LMJD", row["lmjd"], "Local Modified Julian Day"),
        ("MJD", row["mjd"], "Modified Julian Day"),
        ("PLANID", row["planid"], "Plan ID in use"),
        ("RA", row["ra"], "[deg] Right ascension of object"),
        ("DEC", row["dec"], "[deg] Declination of object"),
        ("RA_OBS", row["ra"], "[deg] Right ascension during observing"),
        ("DEC_OBS", row["dec"], "[deg] Declination during observing"),
        ("DESIG", refcat.designation(row["ra"], row["dec"]), "Designation of LAMOST target"),
        ("FIBERID", row["fiberid"], "Fiber ID of Object"),
        ("OBJNAME", str(row["object_id"]), "Name of object"),
        ("OBJTYPE", "Sky" if sky else OBJTYPE.get(cls, "Star"), "Object type"),
        ("TSOURCE", "SIMULATED", "Name of input catalog"),
        ("FIBERTYP", "Sky" if sky else "Obj", "Fiber type of object"),
        ("FIBERMAS", int(unknown and not sky), "Bitmask of warning values, 0 means good"),
        ("EQUINOX", 2000.0, "Equinox in years"),
        ("COMMENT", "--------SPECTROGRAPH PARAMETERS", ""),
        ("SPID", row["spid"], "Spectrograph ID"),
        ("COMMENT", "--------DATA REDUCTION PARAMETERS", ""),
        ("HELIO", True, "Heliocentric correction"),
        ("HELIO_RV", row["helio_rv"], "[km/s] Heliocentric correction"),
        ("VACUUM", True, "Wavelengths are in vacuum"),
        ("COEFF0", sm.LOGLAM0, "Central wavelength (log10) of first pixel"),
        ("COEFF1", sm.DLOGLAM, "Log10 dispersion per pixel"),
        ("COMMENT", "--------SPECTRA ANALYSIS RESULTS", ""),
        ("VERSPIPE", "lamostdb-sim", "Version of Pipeline"),
        ("CLASS", PIPELINE_CLASS[cls], "Class of object"),
        ("SUBCLASS", "Non" if unknown else row["subclass"], "Subclass of object"),
        ("Z", -9999.0 if unknown else row["header_z"], "Redshift of object"),
        ("Z_ERR", -9999.0 if unknown else row["header_z_err"], "Redshift error of object"),
    ]
    cards += [(f"SNR{b}", row[f"SNR{b}"], f"SNR of {b.lower()} filter") for b in sm.BANDS]
    return cards


_ROW_KEYS = (
    "class",
    "unknown_kind",
    "filename",
    "obsid",
    "layout",
    "date_obs",
    "lmjd",
    "mjd",
    "planid",
    "ra",
    "dec",
    "fiberid",
    "object_id",
    "spid",
    "helio_rv",
    "subclass",
    "header_z",
    "header_z_err",
)


def _file_bytes(row: dict[str, Any], pix: np.ndarray) -> bytes:
    if row["layout"] == "dr9":
        names = ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK", "NORMALIZATION")
        return coadd_file_bytes(header_cards(row), dict(zip(names, pix, strict=True)))
    return image_file_bytes(header_cards(row), pix[:5])


def write_spectra(
    p: dict[str, Any],
    spectra_dir: Path,
    templates: dict[str, TemplateSet],
    seed: int,
    *,
    progress: bool = False,
) -> tuple[int, np.ndarray]:
    """Render and write every spectrum of plan ``p``.

    Returns the bytes written and the noise-free g-band S/N of each spectrum.
    """
    n = p["obsid"].size
    wave32 = sm.wave_angstrom().astype(np.float32)
    snr_g = np.zeros(n)
    total = 0
    with (
        tqdm(total=n, disable=not progress, unit="spec", desc="simulate") as bar,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        for c, start in enumerate(range(0, n, CHUNK)):
            sl = slice(start, min(start + CHUNK, n))
            pix = render(p, sl, templates, np.random.default_rng([NIGHT_TAG, seed, 2, c]))
            snr_g[sl] = pix["snr_g"]
            m = sl.stop - sl.start
            stack = np.empty((m, 6, sm.NPIX), dtype=">f4")
            for r, key in enumerate(("flux", "ivar", None, "andmask", "ormask", "model")):
                stack[:, r] = wave32 if key is None else pix[key]
            cols = {key: p[key][sl].tolist() for key in _ROW_KEYS}
            cols.update({f"SNR{b}": pix[f"SNR{b}"].tolist() for b in sm.BANDS})
            jobs = []
            for j in range(m):
                row = {key: vals[j] for key, vals in cols.items()}
                # zlib and file writes release the GIL, so threads overlap them.
                jobs.append(
                    pool.submit(
                        write_bytes, spectra_dir / row["filename"], _file_bytes(row, stack[j])
                    )
                )
            total += sum(job.result() for job in jobs)
            bar.update(m)
    return total, snr_g


def _nullable(values: np.ndarray, valid: np.ndarray, kind: pa.DataType) -> pa.Array:
    return pa.array(np.where(valid, values, 0), type=kind, mask=~np.asarray(valid, bool))


def truth_table(p: dict[str, Any], snr_g: np.ndarray) -> pa.Table:
    """One row per spectrum: what was simulated, sorted by obsid."""
    n = p["obsid"].size
    star = p["class"] == "STAR"
    obj = p["class"] != "UNKNOWN"
    tilt = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 3 * n + 1, 3), pa.int32()), pa.array(p["tilt"].ravel(), pa.float64())
    )
    cols: dict[str, Any] = {
        "obsid": pa.array(p["obsid"], pa.int64()),
        "object_id": pa.array(p["object_id"], pa.int64()),
        "class": p["class"].astype(str),
        "subclass": p["subclass"].astype(str),
        "template_name": p["template_name"].astype(str),
        "z": _nullable(p["z"], obj, pa.float64()),
        "v_kms": _nullable(p["v_kms"], star, pa.float64()),
        "v_sys_kms": _nullable(p["v_sys_kms"], star, pa.float64()),
        "is_binary": star & (p["binary_k_kms"] > 0),
        "snr_g": snr_g,
        "tilt_coeffs": tilt,
        "arm_join_angstrom": p["arm_join"],
        "arm_scale": p["arm_scale"],
        "n_masked_runs": p["n_masked_runs"].astype(np.int32),
        "layout": p["layout"].astype(str),
        "filename": p["filename"].astype(str),
        "planid": p["planid"].astype(str),
        "field": p["field"].astype(np.int32),
        "spid": p["spid"].astype(np.int32),
        "fiberid": p["fiberid"].astype(np.int32),
        "fiber_type": np.where(p["unknown_kind"] == "sky", "Sky", "Obj"),
        "unknown_kind": p["unknown_kind"].astype(str),
        "ra": p["ra"],
        "dec": p["dec"],
        "ra_2016": p["ra_2016"],
        "dec_2016": p["dec_2016"],
        "pmra": p["pmra"],
        "pmdec": p["pmdec"],
        "parallax": p["parallax"],
        "high_pm": p["high_pm"],
        "close_pair": p["close_pair"],
        "mag_g": _nullable(p["mag_g"], obj, pa.float64()),
        "lmjd": p["lmjd"],
        "mjd": p["mjd"],
        "date_obs": p["date_obs"].astype(str),
        "epoch_jyear": p["epoch_jyear"],
        "header_z": p["header_z"],
        "header_z_err": p["header_z_err"],
        "gaia_source_id": _nullable(p["gaia_source_id"], p["has_gaia"], pa.int64()),
        "ps1_objid": _nullable(p["ps1_objid"], p["has_ps1"], pa.int64()),
    }
    for key in art.COLUMNS:  # null where a spectrum has no such artefact
        val = p[key] if key in p else art.neutral(n)[key]
        cols[key] = _nullable(val, np.isfinite(val), pa.float64()) if val.dtype.kind == "f" else val
    return pa.table(cols)


def simulate_night(
    out_dir: str | Path,
    *,
    n: int,
    seed: int,
    layout: str = "mixed",
    gzip: bool = False,
    arm_mismatch_max: float = 0.15,
    tilt_max: float = 0.30,
    artefacts: art.Artefacts | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write a simulated LAMOST night into ``out_dir`` (which must be new or empty).

    Writes ``spectra/spec-*.fits[.gz]``, ``truth.parquet``, ``gaia.parquet`` and
    ``ps1.parquet``. The same arguments always give byte-identical files.
    ``artefacts`` (e.g. ``Artefacts()`` or ``Artefacts.at_rate(0.2)``) adds the
    arm-join and red-arm artefacts of :mod:`lamostdb.sim.artefacts` and records
    them in the truth table's ``art_*`` columns; None (default) adds none, and the
    spectra are then those of a night simulated before artefacts existed.

    Returns
    -------
    dict
        ``counts`` per class, ``layouts`` counts, ``fields``, ``bytes_written``,
        ``paths`` of the tables and the spectra folder, ``files`` (spectra, by obsid).
    """
    _check(n, seed)
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: choose one of {', '.join(LAYOUTS)}")
    for name, val in (("arm_mismatch_max", arm_mismatch_max), ("tilt_max", tilt_max)):
        if not 0.0 <= val < 0.9:
            raise ValueError(f"{name}={val}: must be in [0, 0.9) to keep the flux positive")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; simulate each night into a new folder")
    spectra_dir = out / "spectra"
    spectra_dir.mkdir(parents=True)
    templates = load_default_templates()
    targets: dict[int, refcat.Targets] = {}
    p = plan_night(
        seed,
        n,
        templates,
        layout=layout,
        gzip=gzip,
        tilt_max=tilt_max,
        arm_mismatch_max=arm_mismatch_max,
        artefacts=artefacts,
        targets=targets,
    )
    total, snr_g = write_spectra(p, spectra_dir, templates, seed, progress=progress)
    paths = {
        "spectra": spectra_dir,
        "truth": out / "truth.parquet",
        "gaia": out / "gaia.parquet",
        "ps1": out / "ps1.parquet",
    }
    pq.write_table(truth_table(p, snr_g), paths["truth"], compression="zstd")
    gaia, ps1 = refcat.reference_tables(p["fields"], templates, targets)
    pq.write_table(gaia, paths["gaia"], compression="zstd")
    pq.write_table(ps1, paths["ps1"], compression="zstd")
    total += sum(paths[k].stat().st_size for k in ("truth", "gaia", "ps1"))
    classes, counts = np.unique(p["class"].astype(str), return_counts=True)
    layouts, lcounts = np.unique(p["layout"].astype(str), return_counts=True)
    return {
        "n": n,
        "seed": seed,
        "layout": layout,
        "gzip": gzip,
        "counts": {str(c): int(k) for c, k in zip(classes, counts, strict=True)},
        "layouts": {str(c): int(k) for c, k in zip(layouts, lcounts, strict=True)},
        "fields": list(p["fields"]),
        "planids": sorted(set(p["planid"].tolist())),
        "bytes_written": int(total),
        "paths": {k: str(v) for k, v in paths.items()},
        "files": [str(spectra_dir / f) for f in p["filename"]],
    }
