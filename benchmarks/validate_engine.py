"""Acceptance harness of the whole per-spectrum method: real LAMOST, real SDSS, simulated nights.

Usage::

    python benchmarks/validate_engine.py [--n 2000] [--seed 5] [--continuum FILE]
        [--templates FILE ...] [--no-reorder] [--no-confidence] [--no-refine]
        [--option NAME=VALUE ...] [--artefact-rate 0.2] [--skip-sim] [--json OUT]

Every spectrum goes through ``lamostdb.match.pipeline.classify_arrays`` (fit, reordering,
confidence, polynomial re-match, ZWARNING) in batches of 32. Spectra:

- every readable FITS file under ../shared/data/spectra/lamost (all subfolders) and
  ../shared/data/spectra/sdss (all subfolders); unreadable files are listed, not fatal.
  Their pipeline labels (LAMOST CLASS/SUBCLASS/Z/Z_ERR, SDSS CLASS/Z and the ZWARNING of
  the SPECOBJ/SPALL HDU) are used for scoring only. The parsed (flux, ivar) matrices are
  cached in the temp folder, keyed by the file list (paths, sizes, times) and the grid;
- two simulated nights of ``--n`` spectra with the same seed, one clean and one with the
  arm-join / red-arm artefacts of ``lamostdb.sim.Artefacts.at_rate(--artefact-rate)``.
  The artefact night is the clean night plus artefacts (they are drawn from a stream of
  their own), so spectra without an artefact are byte-identical and their results are
  reused; only the changed spectra are classified again.

Prints one acceptance table (measured, target, MET / NOT MET), confusion matrices per
survey, every wrong-class real spectrum, the letter breakdown of LAMOST stars and the
simulated class accuracy by artefact. ``--json OUT`` saves the figures; beside it
``OUT-stem.files.csv`` (every file and whether it was read) and ``OUT-stem.spectra.csv``
(one row per real spectrum).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from lamostdb.io import read_spectrum
from lamostdb.match.batch import batch_to_matrices
from lamostdb.match.config import EngineConfig
from lamostdb.match.engine import Engine, get_engine
from lamostdb.match.fit import CLASS_CODES
from lamostdb.match.pipeline import PipelineOptions, classify_arrays
from lamostdb.templates.subclass import spectral_letter, subclass_distance
from lamostdb.validate.acceptance import (
    Figure,
    Target,
    best_rchi2_by_class,
    confusion_counts,
    format_confusion,
    format_table,
    fraction,
    robust_scatter,
)

C_KMS = 299792.458
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "spectra"
BATCH = 32
CACHE_VERSION = "1"
SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz", ".fts")
CLASSES = list(CLASS_CODES)
F64 = npt.NDArray[np.float64]


# ----------------------------------------------------------------------------- reading


def records_frame(records: list) -> pl.DataFrame:
    """The engine columns of ``spectra`` rows for in-memory records (same code as ingest)."""
    from lamostdb.ingest.table import records_to_table

    table = records_to_table(
        records, ingest_run="validate", hp=np.zeros(len(records), dtype=np.int64)
    )
    df = pl.from_arrow(table.select(["coeff0", "coeff1", "wavelength", "flux", "ivar", "andmask"]))
    assert isinstance(df, pl.DataFrame)
    return df


def list_files(root: Path) -> list[Path]:
    """Every FITS file under ``root``, sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIXES))


def _sdss_zwarning(path: Path) -> int:
    """ZWARNING of the SPECOBJ (SDSS-I/II) or SPALL (BOSS) HDU; -1 when absent."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        for name in ("SPECOBJ", "SPALL"):
            if name in hdul and "ZWARNING" in [c.upper() for c in hdul[name].columns.names]:
                return int(hdul[name].data["ZWARNING"][0])
        if (
            len(hdul) > 2
            and hasattr(hdul[2], "columns")
            and "ZWARNING" in [c.upper() for c in hdul[2].columns.names]
        ):
            return int(hdul[2].data["ZWARNING"][0])
    return -1


def _header_float(header: str, key: str) -> float:
    """A numeric card of a header string (NaN when absent or not a number)."""
    for k in range(0, len(header), 80):
        card = header[k : k + 80]
        if card[:8].strip() == key and card[8:10] == "= ":
            try:
                return float(card[10:].split("/")[0].strip().strip("'"))
            except ValueError:
                return np.nan
    return np.nan


def read_real(files: list[Path], engine: Engine) -> dict[str, Any]:
    """Matrices and labels of every readable file; ``unreadable`` lists the others."""
    meta: dict[str, list[Any]] = {
        k: []
        for k in (
            "file",
            "survey",
            "specid",
            "label",
            "label_subclass",
            "label_z",
            "label_z_err",
            "snrg",
            "fibertype",
            "sdss_zwarning",
        )
    }
    unreadable: list[tuple[str, str]] = []
    good = []
    for f in files:
        rel = str(f.relative_to(SHARED))
        try:
            r = read_spectrum(f)
        except Exception as exc:  # noqa: BLE001 - a damaged file is listed, never fatal
            unreadable.append((rel, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        survey = "SDSS" if rel.startswith("sdss/") else "LAMOST"
        z_err = r.lasp_z_err
        if z_err is None and survey == "LAMOST":
            z_err = _header_float(r.header, "Z_ERR")
        meta["file"].append(rel)
        meta["survey"].append(survey)
        meta["specid"].append(r.specid)
        meta["label"].append((r.lasp_class or "").strip().upper() or "NONE")
        meta["label_subclass"].append(r.lasp_subclass or "")
        meta["label_z"].append(np.nan if r.lasp_z is None else float(r.lasp_z))
        meta["label_z_err"].append(np.nan if z_err is None else float(z_err))
        meta["snrg"].append(np.nan if r.snrg is None else float(r.snrg))
        meta["fibertype"].append(r.fibertype or "")
        meta["sdss_zwarning"].append(_sdss_zwarning(f) if survey == "SDSS" else -1)
        good.append(r)
    flux = np.zeros((len(good), engine.grid.npix))
    ivar = np.zeros_like(flux)
    for a in range(0, len(good), 256):
        flux[a : a + 256], ivar[a : a + 256] = batch_to_matrices(
            records_frame(good[a : a + 256]), engine.grid
        )
    out: dict[str, Any] = {k: np.array(v) for k, v in meta.items()}
    out.update(flux=flux, ivar=ivar, unreadable=unreadable)
    return out


def load_real(engine: Engine) -> dict[str, Any]:
    """:func:`read_real` through a temp-folder cache keyed by the file list and the grid."""
    files = list_files(SHARED)
    key = hashlib.sha256()
    key.update(
        f"{CACHE_VERSION}|{engine.grid.loglam0}|{engine.grid.dloglam}|{engine.grid.npix}\n".encode()
    )
    for f in files:
        st = f.stat()
        key.update(f"{f.relative_to(SHARED)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    cache = Path(tempfile.gettempdir()) / f"lamostdb_validate_{key.hexdigest()[:20]}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            data: dict[str, Any] = {k.removeprefix("m_"): z[k] for k in z.files}
        data["unreadable"] = [tuple(u) for u in data.pop("unreadable").tolist()]
        data["n_files"] = len(files)
        return data
    data = read_real(files, engine)
    arr = np.array(data["unreadable"], dtype=str).reshape(-1, 2)
    tmp = cache.with_suffix(".tmp.npz")
    # Prefixed keys: "file" is a column here and savez's own first argument.
    np.savez(tmp, m_unreadable=arr, **{f"m_{k}": v for k, v in data.items() if k != "unreadable"})
    tmp.replace(cache)
    data["n_files"] = len(files)
    return data


# ----------------------------------------------------------------------------- classifying


def classify(
    flux: F64, ivar: F64, fibertype: npt.ArrayLike, engine: Engine, options: PipelineOptions
) -> dict[str, np.ndarray]:
    """The whole per-spectrum method in batches of :data:`BATCH`; best answer per spectrum."""
    parts: list[dict[str, np.ndarray]] = []
    ft = np.asarray(fibertype, dtype=object)
    for a in range(0, flux.shape[0], BATCH):
        out = classify_arrays(
            flux[a : a + BATCH],
            ivar[a : a + BATCH],
            engine=engine,
            options=options,
            fibertype=ft[a : a + BATCH],
        )
        fit = out.fit
        per_class = best_rchi2_by_class(fit.objclass, fit.rchi2, len(CLASSES))
        parts.append(
            {
                "class": np.array(CLASSES)[fit.objclass[:, 0]],
                "subclass": out.subclass[:, 0],
                "z": fit.z[:, 0],
                "z_err": fit.z_err[:, 0],
                "rchi2": fit.rchi2[:, 0],
                "conf": out.conf,
                "zwarning": out.zwarning,
                "refined": out.refined,
                **{f"rchi2_{c.lower()}": per_class[:, i] for i, c in enumerate(CLASSES)},
            }
        )
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ----------------------------------------------------------------------------- real spectra


def _pct(k: int, n: int) -> str:
    return f"{k}/{n}"


def real_figures(
    d: dict[str, Any], res: dict[str, np.ndarray]
) -> tuple[list[Figure], dict[str, Any]]:
    """Acceptance rows and details of the real LAMOST and SDSS spectra."""
    figs: list[Figure] = []
    info: dict[str, Any] = {}
    survey, label, ours = d["survey"], d["label"], res["class"]
    lam = survey == "LAMOST"
    known = lam & np.isin(label, CLASSES)
    v, k, n = fraction(ours[known] == label[known])
    figs.append(
        Figure(
            "LAMOST: class agreement (Unknown excluded)",
            v,
            Target(low=0.995),
            _pct(k, n),
            ".2f",
            True,
        )
    )
    lost = known & (label == "STAR") & (d["snrg"] >= 10) & np.isin(ours, ["GALAXY", "QSO"])
    figs.append(
        Figure(
            "LAMOST stars S/N_g >= 10 answered GALAXY/QSO",
            float(lost.sum()),
            Target(low=0.0, high=0.0),
            f"of {int((known & (label == 'STAR') & (d['snrg'] >= 10)).sum())}",
            ".0f",
        )
    )
    info["lost_stars"] = [
        f"{d['specid'][i]} {d['file'][i]} -> {ours[i]} z={res['z'][i]:.4f}"
        for i in np.flatnonzero(lost)
    ]
    both = known & (label == "STAR") & (ours == "STAR")
    lab_letter = np.array([spectral_letter(s) or "" for s in d["label_subclass"]])
    our_letter = np.array([spectral_letter(s) or "" for s in res["subclass"]])
    sel = both & (lab_letter != "")
    v, k, n = fraction(lab_letter[sel] == our_letter[sel])
    figs.append(
        Figure("LAMOST stars: same spectral letter", v, Target(low=0.85), _pct(k, n), ".2f", True)
    )
    dist = np.array(
        [
            subclass_distance(a, b) if m else None
            for a, b, m in zip(res["subclass"], d["label_subclass"], both, strict=True)
        ],
        dtype=object,
    )
    has = both & np.array([x is not None for x in dist])
    v, k, n = fraction(np.array([x <= 2 for x in dist[has]], dtype=bool))
    figs.append(
        Figure(
            "LAMOST stars: subclass within 2 steps", v, Target(low=0.75), _pct(k, n), ".2f", True
        )
    )
    lz, lze = d["label_z"], d["label_z_err"]
    okz = both & np.isfinite(lz) & (lz > -1)
    dv = (res["z"] - lz) * C_KMS
    figs.append(
        Figure(
            "LAMOST stars: median |dv| vs LAMOST Z [km/s]",
            float(np.median(np.abs(dv[okz]))) if okz.any() else None,
            Target(high=3.0),
            f"median dv {np.median(dv[okz]):+.2f} km/s, {int(okz.sum())} stars",
            ".2f",
        )
    )
    oke = okz & np.isfinite(lze) & (lze > 0) & np.isfinite(res["z_err"]) & (res["z_err"] > 0)
    pull = (res["z"] - lz)[oke] / np.sqrt(res["z_err"][oke] ** 2 + lze[oke] ** 2)
    figs.append(
        Figure(
            "LAMOST stars: robust sigma of dv/sqrt(err^2+Z_ERR^2)",
            robust_scatter(pull),
            Target(low=0.8, high=1.25),
            f"{pull.size} stars; median pull {np.median(pull):+.2f}",
            ".3f",
        )
    )
    # the ceiling of that figure: with our z_err = 0 the pull is dv / Z_ERR alone
    ceiling = (res["z"] - lz)[oke] / lze[oke]
    figs.append(
        Figure(
            "LAMOST stars: robust sigma of dv/Z_ERR (our z_err = 0)",
            robust_scatter(ceiling),
            Target(),
            "no z_err of ours can raise the figure above beyond this",
            ".3f",
        )
    )
    sd = survey == "SDSS"
    clean = sd & (d["sdss_zwarning"] == 0) & np.isin(label, CLASSES)
    v, k, n = fraction(ours[clean] == label[clean])
    figs.append(
        Figure(
            "SDSS (ZWARNING=0): same class",
            v,
            Target(low=0.95),
            f"{_pct(k, n)}; {int((sd & (d['sdss_zwarning'] != 0)).sum())} "
            "with ZWARNING != 0 left out",
            ".2f",
            True,
        )
    )
    dz = np.abs(res["z"] - d["label_z"]) / (1 + d["label_z"])
    for cls in ("QSO", "GALAXY"):
        sel = clean & (label == cls)
        v, k, n = fraction((ours[sel] == cls) & (dz[sel] < 3e-3))
        figs.append(
            Figure(
                f"SDSS {cls}: same class and |dz|/(1+z) < 3e-3",
                v,
                Target(low=0.93),
                _pct(k, n),
                ".2f",
                True,
            )
        )
    scored = known | clean
    wrong = scored & (ours != label)
    conf = res["conf"]
    sure = wrong & (conf >= 0.8)
    figs.append(
        Figure(
            "real (LAMOST + SDSS ZWARNING=0): wrong class with conf >= 0.8",
            float(sure.sum()),
            Target(low=0.0, high=0.0),
            f"of {int(wrong.sum())} wrong, {int(scored.sum())} scored",
            ".0f",
        )
    )
    info["confident_wrong"] = [d["file"][i] for i in np.flatnonzero(sure)]
    info["wrong_rows"] = np.flatnonzero(wrong)
    # Letter breakdown: LAMOST letter -> our letter (or our class when not a star).
    breakdown: dict[str, Counter[str]] = {}
    for i in np.flatnonzero(known & (label == "STAR")):
        ll = lab_letter[i] or "?"
        ol = (our_letter[i] or "?") if ours[i] == "STAR" else ours[i]
        breakdown.setdefault(ll, Counter())[ol] += 1
    info["letters"] = {k: dict(v.most_common()) for k, v in sorted(breakdown.items())}
    return figs, info


def print_real_details(d: dict[str, Any], res: dict[str, np.ndarray], info: dict[str, Any]) -> None:
    """Confusion matrices, wrong-class list, letter breakdown."""
    label, ours = d["label"], res["class"]
    for survey, extra in (("LAMOST", None), ("SDSS", "ZWARNING=0")):
        sel = d["survey"] == survey
        if extra:
            sel &= d["sdss_zwarning"] == 0
        rows = [c for c in (*CLASSES, "UNKNOWN", "NONE") if np.any(label[sel] == c)]
        print(
            f"\n== confusion matrix, {survey}{' ' + extra if extra else ''} "
            f"({int(sel.sum())} spectra)"
        )
        print(
            format_confusion(confusion_counts(label[sel], ours[sel], rows, CLASSES), rows, CLASSES)
        )
    wrong = info["wrong_rows"]
    print(f"\n== every wrong-class real spectrum ({wrong.size})")
    print(
        "file | label subclass z | ours subclass z | conf | zwarning | rchi2 best | "
        "rchi2 best of labelled class | S/N_g"
    )
    for i in wrong:
        lab_r = res.get(f"rchi2_{label[i].lower()}")
        lr = np.nan if lab_r is None else lab_r[i]
        print(
            f"{d['file'][i]} | {label[i]} {d['label_subclass'][i] or '-'} "
            f"{d['label_z'][i]:.5f} | {ours[i]} {res['subclass'][i]} {res['z'][i]:.5f} | "
            f"{res['conf'][i]:.3f} | {int(res['zwarning'][i])} | {res['rchi2'][i]:.4f} | "
            f"{lr:.4f} | {d['snrg'][i]:.1f}"
        )
    print("\n== LAMOST stars: LAMOST letter -> our letter (our class when not STAR)")
    for k, v in info["letters"].items():
        print(f"{k:>7}: " + ", ".join(f"{a} {n}" for a, n in v.items()))
    if info["lost_stars"]:
        print("\n== LAMOST stars S/N_g >= 10 answered GALAXY/QSO")
        print("\n".join(info["lost_stars"]))
    if info["confident_wrong"]:
        print("\n== wrong class with conf >= 0.8")
        print("\n".join(info["confident_wrong"]))


# ----------------------------------------------------------------------------- simulated


def _night_matrices(folder: Path, engine: Engine) -> tuple[pl.DataFrame, F64, F64]:
    truth = pl.read_parquet(folder / "truth.parquet")
    recs = [read_spectrum(folder / "spectra" / f) for f in truth["filename"]]
    flux = np.zeros((len(recs), engine.grid.npix))
    ivar = np.zeros_like(flux)
    for a in range(0, len(recs), 256):
        flux[a : a + 256], ivar[a : a + 256] = batch_to_matrices(
            records_frame(recs[a : a + 256]), engine.grid
        )
    return truth, flux, ivar


def simulated(
    n: int, seed: int, rate: float, engine: Engine, options: PipelineOptions
) -> tuple[list[Figure], dict[str, Any]]:
    """Figures of the clean night and class accuracy by artefact of the artefact night."""
    from lamostdb.sim import Artefacts, simulate_night

    work = Path(tempfile.mkdtemp(prefix="validate_"))
    simulate_night(work / "clean", n=n, seed=seed)
    simulate_night(work / "art", n=n, seed=seed, artefacts=Artefacts.at_rate(rate))
    truth, flux, ivar = _night_matrices(work / "clean", engine)
    ft = truth["fiber_type"].to_numpy()
    res = classify(flux, ivar, ft, engine, options)
    truth_a, flux_a, ivar_a = _night_matrices(work / "art", engine)
    changed = np.flatnonzero(np.any(flux_a != flux, axis=1) | np.any(ivar_a != ivar, axis=1))
    res_a = {k: v.copy() for k, v in res.items()}
    if changed.size:
        again = classify(flux_a[changed], ivar_a[changed], ft[changed], engine, options)
        for k in res_a:
            res_a[k][changed] = again[k]
    tc = truth["class"].to_numpy()
    tz = truth["z"].fill_null(np.nan).to_numpy()
    snr = truth["snr_g"].to_numpy()
    real = tc != "UNKNOWN"
    figs: list[Figure] = []
    for lo, hi, goal in ((10, np.inf, 0.99), (5, 10, 0.95), (2, 5, None)):
        sel = real & (snr >= lo) & (snr < hi)
        v, k, m = fraction(res["class"][sel] == tc[sel])
        figs.append(
            Figure(
                f"sim clean: class accuracy {lo} <= S/N_g < {hi}",
                v,
                Target(low=goal),
                _pct(k, m),
                ".2f",
                True,
            )
        )
    dz = np.abs(res["z"] - tz) / (1 + tz)
    for cls in ("GALAXY", "QSO"):
        sel = real & (snr >= 10) & (tc == cls) & (res["class"] == cls)
        v, k, m = fraction(dz[sel] < 1e-3)
        figs.append(
            Figure(
                f"sim clean: {cls} S/N_g >= 10 |dz|/(1+z) < 1e-3",
                v,
                Target(low=0.99),
                f"{_pct(k, m)} correct-class",
                ".2f",
                True,
            )
        )
    sel = real & (snr >= 20) & (tc == "STAR") & (res["class"] == "STAR")
    dv = (res["z"][sel] - tz[sel]) * C_KMS
    med = float(np.median(dv)) if dv.size else None
    figs.append(
        Figure(
            "sim clean: star RV bias S/N_g >= 20 [km/s]",
            med,
            Target(low=-5.0, high=5.0),
            f"{dv.size} stars",
            "+.2f",
        )
    )
    figs.append(
        Figure(
            "sim clean: star RV robust scatter [km/s]",
            robust_scatter(dv),
            Target(high=15.0),
            f"{dv.size} stars",
            ".2f",
        )
    )
    tsub = truth["subclass"].to_numpy()
    sel = real & (snr >= 10) & (tc == "STAR") & (res["class"] == "STAR")
    v, k, m = fraction(
        [
            spectral_letter(a) == spectral_letter(b)
            for a, b in zip(res["subclass"][sel], tsub[sel], strict=True)
        ]
    )
    figs.append(
        Figure(
            "sim clean: stars S/N_g >= 10 same letter as truth",
            v,
            Target(),
            _pct(k, m),
            ".2f",
            True,
        )
    )
    # The artefact night, by artefact.
    tca = truth_a["class"].to_numpy()
    step = truth_a["art_join_step"].to_numpy() != 1.0
    spike = truth_a["art_join_spike"].to_numpy() != 1.0
    bump = truth_a["art_red_bump"].to_numpy() != 0.0
    slices = {
        "no artefact": ~(step | spike | bump),
        "join step": step,
        "join spike/dip": spike,
        "red bump": bump,
    }
    by_art = {}
    for name, mask in slices.items():
        for lo, hi in ((10, np.inf), (5, 10)):
            sel = real & mask & (snr >= lo) & (snr < hi)
            v, k, m = fraction(res_a["class"][sel] == tca[sel])
            by_art[f"{name}, {lo} <= S/N_g < {hi}"] = (v, k, m)
            figs.append(
                Figure(
                    f"sim artefacts {rate:g}: accuracy, {name}, S/N_g {lo}-{hi}",
                    v,
                    Target(),
                    _pct(k, m),
                    ".2f",
                    True,
                )
            )
    lost = real & step & (tca == "STAR") & np.isin(res_a["class"], ["GALAXY", "QSO"])
    info = {
        "changed": int(changed.size),
        "by_artefact": by_art,
        "steps_lost": np.sort(truth_a["art_join_step"].to_numpy()[lost]).round(2).tolist(),
        "n": n,
        "seed": seed,
        "rate": rate,
    }
    return figs, info


# ----------------------------------------------------------------------------- main


def _options(args: argparse.Namespace) -> PipelineOptions:
    opt = PipelineOptions(
        reorder=not args.no_reorder, confidence=not args.no_confidence, refine=not args.no_refine
    )
    fields = {f.name: f for f in dataclasses.fields(PipelineOptions)}
    for item in args.option:
        name, _, raw = item.partition("=")
        if name not in fields:
            raise SystemExit(f"--option {name}: PipelineOptions has {', '.join(fields)}")
        current = getattr(opt, name)
        value: Any = raw
        if isinstance(current, bool):
            value = raw.lower() in ("1", "true", "yes", "on")
        elif isinstance(current, int | float):
            value = type(current)(raw)
        opt = dataclasses.replace(opt, **{name: value})
    return opt


def write_outputs(
    out: Path,
    figs: list[Figure],
    extra: dict[str, Any],
    d: dict[str, Any],
    res: dict[str, np.ndarray],
) -> None:
    """``OUT`` (JSON figures) plus ``OUT-stem.files.csv`` and ``OUT-stem.spectra.csv``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "figures": [
            {
                "name": f.name,
                "value": f.value,
                "target_low": f.target.low,
                "target_high": f.target.high,
                "verdict": f.verdict,
                "detail": f.detail,
            }
            for f in figs
        ],
        **extra,
    }
    out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    stem = out.with_suffix("")
    with open(f"{stem}.files.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "status", "reason"])
        w.writerows([f, "read", ""] for f in d["file"])
        w.writerows([f, "unreadable", why] for f, why in d["unreadable"])
    cols = [
        "file",
        "survey",
        "specid",
        "label",
        "label_subclass",
        "label_z",
        "label_z_err",
        "snrg",
        "sdss_zwarning",
    ]
    rcols = list(res)
    with open(f"{stem}.spectra.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols + rcols)
        for i in range(len(d["file"])):
            w.writerow([d[c][i] for c in cols] + [res[c][i] for c in rcols])


def cross_validate(
    d: dict[str, Any], res: dict[str, np.ndarray], k: int, options: PipelineOptions
) -> None:
    """Replace the results of the labelled LAMOST stars by K-fold out-of-sample ones (in place).

    The default library is learned from the labelled LAMOST stars of ../shared (A/F/G stacks,
    and every template's subclass put on LAMOST's scale), and so is the typing table of line
    indices that star subclasses are read from; scoring those spectra with them would be
    in-sample. The stars are split into K folds (seeded random order) and each fold is
    classified with a library made without it, by the same code as the shipped one
    (``make_default_library.build_library_sets`` and ``build_typing_set``). LAMOST galaxies,
    QSOs and SDSS spectra took no part in making either and keep the shipped one's results.
    """
    import make_default_library as mdl

    from lamostdb.match.engine import prepare_engine
    from lamostdb.templates import load_default_templates

    records = mdl.read_lamost_stars()
    rel = np.array([str(Path(r.source_path).relative_to(SHARED)) for r in records])
    fold = np.random.default_rng(12345).permutation(len(records)) % k
    row_of = {f: i for i, f in enumerate(d["file"])}
    for j in range(k):
        train = [r for r, g in zip(records, fold, strict=True) if g != j]
        sets, _, _, _ = mdl.build_library_sets(train)
        templates = load_default_templates()
        templates["STAR"] = _one_set(sets)
        eng = prepare_engine(templates, typing=mdl.build_typing_set(train))
        rows = np.array([row_of[f] for f in rel[fold == j] if f in row_of])
        part = classify(d["flux"][rows], d["ivar"][rows], d["fibertype"][rows], eng, options)
        for key, val in part.items():
            res[key][rows] = val
        print(
            f"cross-validation fold {j + 1}/{k}: {rows.size} LAMOST stars scored with a "
            f"library made from the {len(train)} others",
            flush=True,
        )


def _one_set(sets: list[Any]) -> Any:
    """Single STAR template sets on one grid, through the library file (as shipped)."""
    from lamostdb.templates.libfile import load_library, write_library

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lib.fits"
        write_library(path, sets, name="cv", provenance="cross-validation fold")
        return load_library(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="spectra per simulated night")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--continuum", help="continuum vectors file (default: shipped)")
    ap.add_argument(
        "--templates",
        nargs="+",
        default=None,
        metavar="FILE",
        help="template files added to the library (as `lamostdb classify`)",
    )
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument(
        "--artefact-rate",
        type=float,
        default=0.2,
        help="rate of each artefact in the artefact night (default 0.2)",
    )
    ap.add_argument("--no-reorder", action="store_true")
    ap.add_argument("--no-confidence", action="store_true")
    ap.add_argument("--no-refine", action="store_true")
    ap.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other PipelineOptions field (repeatable)",
    )
    ap.add_argument("--json", type=Path, help="save the figures here (and CSVs beside it)")
    ap.add_argument(
        "--cv",
        type=int,
        default=5,
        metavar="K",
        help="K-fold cross-validation of the LAMOST-built templates: the dr10_afg "
        "spectra of each fold are classified with a default library built without "
        "them (default 5; 0: no cross-validation, in-sample)",
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    engine = get_engine(
        EngineConfig(templates=tuple(args.templates or ()), continuum=args.continuum).checked()
    )
    options = _options(args)
    print(
        f"engine {engine.version}; star continuum: {', '.join(engine.basis.names)} "
        f"({engine.basis.source}); options {options}"
    )
    d = load_real(engine)
    print(
        f"real spectra: {d['n_files']} files, {len(d['file'])} read "
        f"({int(np.sum(d['survey'] == 'LAMOST'))} LAMOST, {int(np.sum(d['survey'] == 'SDSS'))} "
        f"SDSS), {len(d['unreadable'])} unreadable [{time.perf_counter() - t0:.0f} s]"
    )
    for f, why in d["unreadable"]:
        print(f"  unreadable: {f}: {why}")
    res = classify(d["flux"], d["ivar"], d["fibertype"], engine, options)
    if args.cv and not args.templates:
        cross_validate(d, res, args.cv, options)
    print(f"real spectra classified [{time.perf_counter() - t0:.0f} s]")
    figs, info = real_figures(d, res)
    sim_info: dict[str, Any] = {}
    if not args.skip_sim:
        sfigs, sim_info = simulated(args.n, args.seed, args.artefact_rate, engine, options)
        figs += sfigs
        print(f"simulated nights classified [{time.perf_counter() - t0:.0f} s]")
    print_real_details(d, res, info)
    if sim_info:
        print(
            f"\n== artefact night: {sim_info['changed']} of {sim_info['n']} spectra changed "
            "by artefacts (only those classified again)"
        )
        print(f"join-step stars answered GALAXY/QSO, their steps: {sim_info['steps_lost']}")
    print(f"\n== ACCEPTANCE ({time.perf_counter() - t0:.0f} s)")
    print(format_table(figs))
    if args.json:
        extra = {
            "real": {k: v for k, v in info.items() if k != "wrong_rows"},
            "sim": sim_info,
            "unreadable": d["unreadable"],
        }
        write_outputs(args.json, figs, extra, d, res)


if __name__ == "__main__":
    main()
