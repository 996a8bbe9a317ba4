"""lamostdb next to DESI's redrock on the same real LAMOST spectra: speed and quality side by side.

Usage::

    python benchmarks/bench_vs_redrock.py [--n 200] [--seed 13] [--root DIR] [--templates DIR]
        [--batch 32] [--procs 2] [--throughput-s 10]

Needs the ``peer`` extra (``pip install 'lamostdb[peer]'``: redrock 0.21.0, numba, fitsio,
h5py); without it the script stops at once and says so.

What it does, all in one run:

1. chooses ``--n`` readable files (``--seed``) of the real LAMOST spectra under ``--root``
   (default ``../shared/data/spectra/lamost``, every subfolder): every spectrum LAMOST
   labels GALAXY, QSO or Unknown (a handful: the set is ~99 % stars), the rest stars drawn
   at random. It reads them with
   :func:`lamostdb.io.read_spectrum` and puts them on the engine's working grid (the same
   ``flux``/``ivar`` matrices for both codes: 3909 log-lambda pixels of 1e-4 dex,
   3700-9100 A; masked pixels have ivar 0). LAMOST's own labels (CLASS, SUBCLASS, Z of the
   header) are kept for scoring only;
2. loads redrock's templates from the ``rrtemplate-*.fits`` files of ``--templates``
   (default ``../shared/data/templates/redrock``), every file passed explicitly, so redrock
   never looks for (or downloads) templates of its own, and rebins them once to the grid
   (a set-up cost, reported apart). The 2016 galaxy file lacks the RRIGM card redrock
   0.21.0 wants; it is built from its arrays with ``igm_model="Calura12"``, which changes
   nothing here (Lyman-alpha of a z <= 1.7 galaxy lies below 3700 A);
3. on ONE core (one BLAS thread for both through threadpoolctl, one numba thread), batch by
   batch and interleaved so that a busy neighbour slows both alike: lamostdb's
   ``classify_arrays`` on the batch (the whole method: fit, reordering, class decision,
   confidence, re-match, velocity, ZWARNING), then redrock's ``zfind`` on each spectrum
   of the batch (one ``Target`` each, all of the batch in one call, as redrock is run on
   a file of targets). When that call raises, the batch is fitted again one spectrum a
   call to find the failing ones, which are counted and listed, never fatal;
4. per-machine throughput on ``--procs`` cores (2: this machine's size): lamostdb's
   ``classify_arrays`` in batches spread over ``--procs`` worker processes (one BLAS thread
   each), the sample cycled until ``--throughput-s`` seconds have passed (workers started
   and warmed before the clock starts). Redrock's figure is computed, not measured:
   ``procs / (its one-core s/spectrum)``, i.e. perfect scaling, which favours redrock
   (its targets are independent; its own multiprocessing adds overhead);
5. prints s/spectrum of each (wall and CPU), their ratio, the throughputs, and the quality
   of each against LAMOST's labels: class agreement (labels Unknown/empty left out),
   stars' spectral letter, stars' median |dv| against LAMOST's Z, and for galaxies and
   QSOs |dz|/(1+z) < 3e-3 when the sample has any.

The resolution matrix given to redrock: a Gaussian line-spread function of constant
R = lambda/FWHM = 1800 (LAMOST low resolution), which on a log-lambda grid is a constant
width in pixels: FWHM = 1 / (R ln(10) 1e-4) = 2.41 px, sigma = 1.02 px; 11 diagonals
(+-5 px), each row normalised to 1 over the pixels that exist (edge rows too, so redrock's
``min_resolution_integral`` check keeps every pixel).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import multiprocessing as mp
import os
import statistics
import sys
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

C_KMS = 299792.458
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LAMOST_ROOT = SHARED_DATA / "spectra" / "lamost"
TEMPLATE_DIR = SHARED_DATA / "templates" / "redrock"
SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz", ".fts")
CLASSES = ("STAR", "GALAXY", "QSO")
RESOLUTION = 1800.0
NDIAG = 11
DZ_TOL = 3e-3
PEER_MESSAGE = (
    "bench_vs_redrock.py needs redrock, which is not installed: "
    "pip install 'lamostdb[peer]' (redrock 0.21.0, numba, fitsio, h5py)"
)
F64 = npt.NDArray[np.float64]


def require_redrock() -> ModuleType:
    """Import redrock, or stop with a message naming the ``peer`` extra."""
    try:
        import redrock
        import redrock.targets
        import redrock.templates
        import redrock.zfind
    except ImportError as exc:
        raise SystemExit(f"{PEER_MESSAGE}\n({type(exc).__name__}: {exc})") from None
    return redrock


# ----------------------------------------------------------------------------- reading


def list_files(root: Path) -> list[Path]:
    """Every FITS file under ``root`` (all subfolders), sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(SUFFIXES))


def label_of(record: Any) -> str:
    """LAMOST's CLASS of a record, upper case; ``NONE`` when absent."""
    return (record.lasp_class or "").strip().upper() or "NONE"


def choose(labels: Sequence[str], n: int, seed: int) -> npt.NDArray[np.int64]:
    """Indices of ``n`` spectra: every one not labelled STAR, then random STARs to fill ``n``.

    The real set is ~99 % stars, so a plain random draw would seldom hold its few galaxies
    and QSOs (the only ones whose redshifts can be compared). Returned in a random order
    (``seed``), so that batches mix the kinds.
    """
    lab = np.asarray(labels, dtype=str)
    rng = np.random.default_rng(seed)
    rare = np.flatnonzero(lab != "STAR")
    stars = rng.permutation(np.flatnonzero(lab == "STAR"))
    take = np.concatenate([rare, stars])[: max(0, n)]
    return rng.permutation(take).astype(np.int64)


@dataclasses.dataclass
class Sample:
    """Spectra on the engine's grid and LAMOST's labels of them (for scoring only)."""

    files: list[str]
    flux: F64
    ivar: F64
    fibertype: npt.NDArray[np.object_]
    label: npt.NDArray[np.str_]  # CLASS, upper case; "NONE" when absent
    label_subclass: npt.NDArray[np.str_]
    label_z: F64  # NaN when absent
    unreadable: list[tuple[str, str]]


def read_sample(files: Sequence[Path], n: int, seed: int, grid: Any) -> Sample:
    """``n`` readable ``files`` chosen by :func:`choose`; unreadable ones are listed, not fatal."""
    import polars as pl

    from lamostdb.ingest.table import records_to_table
    from lamostdb.io import read_spectrum
    from lamostdb.match.batch import batch_to_matrices

    records, paths, unreadable = [], [], []
    for f in files:
        try:
            records.append(read_spectrum(f))
        except Exception as exc:  # noqa: BLE001 - a damaged file is listed, never fatal
            unreadable.append((str(f), f"{type(exc).__name__}: {exc}"[:200]))
            continue
        paths.append(str(f))
    idx = choose([label_of(r) for r in records], n, seed)
    good = [records[i] for i in idx]
    names = [paths[i] for i in idx]
    flux = np.zeros((len(good), grid.npix))
    ivar = np.zeros_like(flux)
    for a in range(0, len(good), 256):
        # the engine's own path from records to matrices (as ingest + classify do)
        table = records_to_table(
            good[a : a + 256], ingest_run="bench", hp=np.zeros(len(good[a : a + 256]), np.int64)
        )
        df = pl.from_arrow(table.select(["coeff0", "coeff1", "flux", "ivar", "andmask"]))
        assert isinstance(df, pl.DataFrame)
        flux[a : a + 256], ivar[a : a + 256] = batch_to_matrices(df, grid)
    return Sample(
        files=names,
        flux=flux,
        ivar=ivar,
        fibertype=np.array([r.fibertype or "" for r in good], dtype=object),
        label=np.array([label_of(r) for r in good], dtype=str),
        label_subclass=np.array([(r.lasp_subclass or "").strip() for r in good], dtype=str),
        label_z=np.array([np.nan if r.lasp_z is None else float(r.lasp_z) for r in good]),
        unreadable=unreadable,
    )


# ----------------------------------------------------------------------------- lamostdb


@dataclasses.dataclass
class Answers:
    """Best answer per spectrum of one code, and what it cost."""

    cls: npt.NDArray[np.str_]
    subclass: npt.NDArray[np.str_]
    z: F64
    wall_s: float = 0.0
    cpu_s: float = 0.0


def lamostdb_batch(
    flux: F64, ivar: F64, fibertype: npt.NDArray[np.object_], engine: Any
) -> tuple[Answers, float, float]:
    """``classify_arrays`` on one batch: answers, wall seconds, CPU seconds of this process."""
    from lamostdb.match.fit import CLASS_CODES
    from lamostdb.match.pipeline import classify_arrays

    t0, c0 = time.perf_counter(), time.process_time()
    out = classify_arrays(flux, ivar, engine=engine, fibertype=fibertype)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ans = Answers(
        cls=np.array(list(CLASS_CODES))[out.fit.objclass[:, 0]].astype(str),
        subclass=np.asarray(out.subclass[:, 0]).astype(str),
        z=np.asarray(out.fit.z[:, 0], dtype=np.float64),
    )
    return ans, wall, cpu


_WORKER: dict[str, Any] = {}


def _worker_init() -> None:
    from threadpoolctl import threadpool_limits

    from lamostdb.match.engine import get_engine

    _WORKER["limits"] = threadpool_limits(limits=1)  # kept alive: one BLAS thread per worker
    _WORKER["engine"] = get_engine()


def _worker_batch(args: tuple[F64, F64, npt.NDArray[np.object_]]) -> tuple[int, float]:
    from lamostdb.match.pipeline import classify_arrays

    flux, ivar, ft = args
    c0 = time.process_time()
    classify_arrays(flux, ivar, engine=_WORKER["engine"], fibertype=ft)
    return int(flux.shape[0]), time.process_time() - c0


@dataclasses.dataclass(frozen=True)
class Throughput:
    """Spectra classified by the workers, the wall seconds it took, their CPU seconds."""

    spectra: int
    wall_s: float
    cpu_s: float
    procs: int

    @property
    def rate(self) -> float:
        """Measured spectra/s (wall clock: slowed by whatever else runs on the machine)."""
        return self.spectra / self.wall_s

    @property
    def cpu_rate(self) -> float:
        """Spectra/s if each worker had its core to itself: procs / (CPU s per spectrum)."""
        return self.procs * self.spectra / self.cpu_s


def lamostdb_throughput(sample: Sample, batch: int, procs: int, min_seconds: float) -> Throughput:
    """``classify_arrays`` over ``procs`` worker processes (one BLAS thread each).

    Batches of the sample are handed out (cycling over it) until ``min_seconds`` have passed;
    the clock stops when the last one is done. The workers are started and given one batch
    each before the clock starts.
    """
    n = sample.flux.shape[0]
    chunks = [
        (sample.flux[a : a + batch], sample.ivar[a : a + batch], sample.fibertype[a : a + batch])
        for a in range(0, n, batch)
    ]
    ctx = mp.get_context("fork")  # workers inherit the loaded engine and the read sample
    with warnings.catch_warnings():
        # Python >= 3.12 warns about fork() in a process with threads; the parent's only
        # other threads are BLAS's, held to one, and the workers start no others.
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        pool = ctx.Pool(procs, initializer=_worker_init)
    with pool:
        pool.map(_worker_batch, [chunks[0]] * procs, chunksize=1)  # warm both workers
        t0 = time.perf_counter()

        def feed() -> Any:
            k = 0
            while k < len(chunks) or time.perf_counter() - t0 < min_seconds:
                yield chunks[k % len(chunks)]
                k += 1

        done = list(pool.imap_unordered(_worker_batch, feed(), chunksize=1))
        wall = time.perf_counter() - t0
    return Throughput(sum(d[0] for d in done), wall, sum(d[1] for d in done), procs)


# ----------------------------------------------------------------------------- redrock


def lamost_sigma_px(resolution: float, dloglam: float) -> float:
    """Gaussian sigma in pixels of a line-spread function R = lambda/FWHM on a log grid."""
    fwhm_px = 1.0 / (resolution * np.log(10.0) * dloglam)
    return float(fwhm_px / (2.0 * np.sqrt(2.0 * np.log(2.0))))


def resolution_matrix(npix: int, sigma_px: float, ndiag: int = NDIAG) -> Any:
    """Banded (``scipy.sparse.dia_matrix``) Gaussian resolution matrix, rows summing to 1.

    ``R[i, i + d] = g(d) / sum of g over the d with 0 <= i + d < npix``, ``|d| <= ndiag // 2``.
    """
    import scipy.sparse

    half = ndiag // 2
    d = np.arange(-half, half + 1)
    g = np.exp(-0.5 * (d / sigma_px) ** 2)
    i = np.arange(npix)[:, None]
    inside = (i + d[None, :] >= 0) & (i + d[None, :] < npix)
    rows = np.where(inside, g[None, :], 0.0)
    rows /= rows.sum(axis=1, keepdims=True)  # (npix, ndiag): R[i, i + d]
    # dia storage is by column: data[k, j] = R[j - d_k, j]
    data = np.zeros((ndiag, npix))
    for k, dk in enumerate(d):
        j = np.arange(npix)
        src = j - dk
        ok = (src >= 0) & (src < npix)
        data[k, j[ok]] = rows[src[ok], k]
    return scipy.sparse.dia_matrix((data, d), shape=(npix, npix))


def load_templates(paths: Sequence[Path]) -> list[Any]:
    """redrock ``Template`` objects from these files (see the module note on the galaxy file)."""
    from astropy.io import fits
    from redrock.templates import Template

    out = []
    for p in paths:
        try:
            out.append(Template(str(p)))
        except ValueError as exc:
            if "RRIGM" not in str(exc):
                raise
            with fits.open(p, memmap=False) as hdul:
                hdr = hdul["BASIS_VECTORS"].header
                flux = np.asarray(hdul["BASIS_VECTORS"].data, dtype=np.float64)
                wave = hdr["CRVAL1"] + hdr["CDELT1"] * np.arange(hdr["NAXIS1"], dtype=np.float64)
                if hdr.get("LOGLAM", 0):
                    wave = 10.0**wave
                rrtype = str(hdr["RRTYPE"]).strip().upper()
            if rrtype != "GALAXY":
                raise
            # redrock 0.21.0's own grid for a galaxy file without REDSHIFTS (templates.py)
            z = 10 ** np.arange(np.log10(1 - 0.005), np.log10(1 + 1.7), 3e-4) - 1
            out.append(
                Template(
                    spectype="GALAXY",
                    subtype="",
                    redshifts=z,
                    wave=wave,
                    flux=flux,
                    method="PCA",
                    igm_model="Calura12",
                    version=p.stem,
                )
            )
    return out


class Redrock:
    """redrock's ``zfind`` on one spectrum at a time, templates rebinned once to the grid."""

    def __init__(self, template_paths: Sequence[Path], wave: F64, sigma_px: float) -> None:
        from redrock.templates import DistTemplate

        self.wave = wave
        self.R = resolution_matrix(wave.size, sigma_px)
        self.Rcsr = self.R.tocsr()
        with contextlib.redirect_stdout(io.StringIO()):
            self.templates = load_templates(template_paths)
            probe = self._spectrum(np.ones(wave.size), np.ones(wave.size))
            dwave = {probe.wavehash: wave}
            self.dtemplates = [DistTemplate(t, dwave, mp_procs=1) for t in self.templates]

    def _spectrum(self, flux: F64, ivar: F64) -> Any:
        from redrock.targets import Spectrum

        return Spectrum(self.wave, flux.copy(), ivar.copy(), self.R, Rcsr=self.Rcsr)

    def fit(self, flux: F64, ivar: F64, targetids: Sequence[int]) -> list[dict[str, Any]]:
        """Best redshift of each spectrum (rows of ``flux``/``ivar``) in one ``zfind`` call.

        One dict per row: spectype, subtype, z, zerr, zwarn, deltachi2.
        """
        from redrock.targets import DistTargetsCopy, Target
        from redrock.zfind import zfind

        targets = [
            Target(int(t), [self._spectrum(f, w)])
            for t, f, w in zip(targetids, flux, ivar, strict=True)
        ]
        with contextlib.redirect_stdout(io.StringIO()):
            _, zfit = zfind(DistTargetsCopy(targets), self.dtemplates, mp_procs=1)
        best = zfit[zfit["znum"] == 0]
        row = {int(t): k for k, t in enumerate(best["targetid"])}
        out = []
        for t in targetids:
            r = best[row[int(t)]]
            out.append(
                {
                    "spectype": str(r["spectype"]).strip().upper(),
                    "subtype": str(r["subtype"]).strip(),
                    "z": float(r["z"]),
                    "zerr": float(r["zerr"]),
                    "zwarn": int(r["zwarn"]),
                    "deltachi2": float(r["deltachi2"]),
                }
            )
        return out


def redrock_answers(
    rr: Redrock, flux: F64, ivar: F64, first_id: int
) -> tuple[list[dict[str, Any] | None], list[tuple[int, str]]]:
    """redrock on a batch in one call; when that raises, one call per spectrum.

    Returns one answer per row (None where redrock failed) and (row id, message) of each
    failure; a failure is never fatal.
    """
    ids = list(range(first_id, first_id + flux.shape[0]))
    try:
        return list(rr.fit(flux, ivar, ids)), []
    except Exception:  # noqa: BLE001 - find the spectra that fail, one at a time
        pass
    answers: list[dict[str, Any] | None] = []
    failures: list[tuple[int, str]] = []
    for k, t in enumerate(ids):
        try:
            answers.append(rr.fit(flux[k : k + 1], ivar[k : k + 1], [t])[0])
        except Exception as exc:  # noqa: BLE001 - counted and listed, never fatal
            answers.append(None)
            failures.append((t, f"{type(exc).__name__}: {exc}"[:300]))
    return answers, failures


# ----------------------------------------------------------------------------- scoring


def redrock_letter(spectype: str, subtype: str) -> str:
    """Spectral letter of a redrock STAR answer ('' for WD, CV, Carbon, Ldwarf or non-stars)."""
    s = subtype.strip().upper()
    return s if spectype == "STAR" and s in {"O", "B", "A", "F", "G", "K", "M"} else ""


def agreement(
    label: npt.ArrayLike,
    label_z: npt.ArrayLike,
    cls: npt.ArrayLike,
    z: npt.ArrayLike,
    *,
    label_letter: npt.ArrayLike | None = None,
    letter: npt.ArrayLike | None = None,
    answered: npt.ArrayLike | None = None,
) -> dict[str, Any]:
    """Quality of one code's answers against LAMOST's labels.

    Spectra whose label is not STAR/GALAXY/QSO (Unknown, empty) are left out of every figure;
    so are spectra with ``answered`` False (a failed fit), which are counted as ``failed``.

    Returns
    -------
    dict
        ``class`` (k, n), ``per_class`` {label: (k, n)}, ``letter`` (k, n) over stars both call
        STAR whose letters are both known, ``star_dv_median_kms`` (median |dz| c over stars
        both call STAR with a finite Z), ``z_ok`` {GALAXY/QSO: (k, n)}: same class and
        |dz|/(1+z) < 3e-3 over spectra with that label, ``failed`` and ``unlabelled`` counts.
    """
    lab = np.asarray(label, dtype=str)
    lz = np.asarray(label_z, dtype=np.float64)
    ours = np.asarray(cls, dtype=str)
    zz = np.asarray(z, dtype=np.float64)
    ok = np.ones(lab.size, dtype=bool) if answered is None else np.asarray(answered, dtype=bool)
    known = np.isin(lab, CLASSES)
    scored = known & ok
    same = ours == lab
    out: dict[str, Any] = {
        "class": (int((scored & same).sum()), int(scored.sum())),
        "per_class": {
            c: (int((scored & same & (lab == c)).sum()), int((scored & (lab == c)).sum()))
            for c in CLASSES
        },
        "failed": int((known & ~ok).sum()),
        "unlabelled": int((~known).sum()),
    }
    stars = scored & (lab == "STAR") & (ours == "STAR")
    if label_letter is not None and letter is not None:
        ll, ol = np.asarray(label_letter, dtype=str), np.asarray(letter, dtype=str)
        both = stars & (ll != "") & (ol != "")
        out["letter"] = (int((both & (ll == ol)).sum()), int(both.sum()))
    with np.errstate(invalid="ignore"):
        dv = np.abs(zz - lz) * C_KMS
        finite = stars & np.isfinite(dv)
        out["star_dv_median_kms"] = float(np.median(dv[finite])) if finite.any() else None
        dz = np.abs(zz - lz) / (1.0 + lz)
        out["z_ok"] = {
            c: (
                int((scored & (lab == c) & same & (dz < DZ_TOL)).sum()),
                int((scored & (lab == c)).sum()),
            )
            for c in ("GALAXY", "QSO")
        }
    return out


def _frac(kn: tuple[int, int]) -> str:
    k, n = kn
    return f"{k}/{n} = {100.0 * k / n:.1f} %" if n else "0/0"


def format_quality(name: str, q: dict[str, Any]) -> list[str]:
    """Report lines of :func:`agreement`."""
    lines = [f"{name}: class agrees with LAMOST CLASS: {_frac(q['class'])}"]
    lines.append(
        "    per LAMOST class: "
        + ", ".join(f"{c} {_frac(q['per_class'][c])}" for c in CLASSES if q["per_class"][c][1])
    )
    if "letter" in q:
        lines.append(f"    stars (both STAR): same spectral letter {_frac(q['letter'])}")
    dv = q["star_dv_median_kms"]
    lines.append(
        "    stars (both STAR): median |dv| vs LAMOST Z "
        + ("n/a" if dv is None else f"{dv:.1f} km/s")
    )
    for c in ("GALAXY", "QSO"):
        if q["z_ok"][c][1]:
            lines.append(f"    {c}: same class and |dz|/(1+z) < {DZ_TOL:g}: {_frac(q['z_ok'][c])}")
    if q["failed"]:
        lines.append(f"    failed fits (left out above): {q['failed']}")
    return lines


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="spectra (default 200: a few minutes)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--root", type=Path, default=LAMOST_ROOT, help="real LAMOST spectra")
    ap.add_argument("--templates", type=Path, default=TEMPLATE_DIR, help="rrtemplate-*.fits")
    ap.add_argument("--batch", type=int, default=32, help="lamostdb batch size")
    ap.add_argument("--procs", type=int, default=2, help="cores for the throughput figure")
    ap.add_argument(
        "--throughput-s", type=float, default=10.0, help="least seconds of the throughput run"
    )
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_redrock()
    import numba
    from threadpoolctl import threadpool_info, threadpool_limits

    from lamostdb.match.engine import get_engine
    from lamostdb.templates.subclass import spectral_letter

    paths = sorted(args.templates.glob("rrtemplate-*.fits"))
    if not paths:
        raise SystemExit(f"no rrtemplate-*.fits under {args.templates}")
    files = list_files(args.root)
    if not files:
        raise SystemExit(f"no FITS files under {args.root}")

    numba.set_num_threads(1)
    with threadpool_limits(limits=1):
        blas = ", ".join(
            f"{i['internal_api']} {i['num_threads']} thread" for i in threadpool_info()
        )
        t0 = time.perf_counter()
        engine = get_engine()
        t_engine = time.perf_counter() - t0
        sample = read_sample(files, args.n, args.seed, engine.grid)
        n = sample.flux.shape[0]
        wave = np.asarray(engine.grid.wave_angstrom, dtype=np.float64)
        sigma = lamost_sigma_px(RESOLUTION, engine.grid.dloglam)
        t0 = time.perf_counter()
        rr = Redrock(paths, wave, sigma)
        t_rr_setup = time.perf_counter() - t0
        # warm-up (numba compiles on first call; the engine's first batch fills caches)
        t0 = time.perf_counter()
        rr.fit(sample.flux[:1], sample.ivar[:1], [-1])
        t_rr_warm = time.perf_counter() - t0
        lamostdb_batch(sample.flux[:2], sample.ivar[:2], sample.fibertype[:2], engine)

        lam = Answers(np.full(n, "", dtype=object), np.full(n, "", dtype=object), np.zeros(n))
        rrc = np.full(n, "", dtype=object)
        rrsub = np.full(n, "", dtype=object)
        rrz = np.full(n, np.nan)
        rrzwarn = np.zeros(n, dtype=np.int64)
        ok = np.zeros(n, dtype=bool)
        failures: list[str] = []
        lam_wall, lam_cpu, rr_wall, rr_cpu = [], [], [], []
        for a in range(0, n, args.batch):
            b = min(n, a + args.batch)
            ans, w, c = lamostdb_batch(
                sample.flux[a:b], sample.ivar[a:b], sample.fibertype[a:b], engine
            )
            lam.cls[a:b], lam.subclass[a:b], lam.z[a:b] = ans.cls, ans.subclass, ans.z
            lam_wall.append(w)
            lam_cpu.append(c)
            t0, c0 = time.perf_counter(), time.process_time()
            answers, failed = redrock_answers(rr, sample.flux[a:b], sample.ivar[a:b], a)
            rr_wall.append(time.perf_counter() - t0)
            rr_cpu.append(time.process_time() - c0)
            failures += [f"{sample.files[i]}: {msg}" for i, msg in failed]
            for i, res in enumerate(answers, start=a):
                if res is not None:
                    rrc[i], rrsub[i], rrz[i] = res["spectype"], res["subtype"], res["z"]
                    rrzwarn[i] = res["zwarn"]
                    ok[i] = True
            print(f"  ... {b}/{n} spectra", file=sys.stderr, flush=True)

    tput = lamostdb_throughput(sample, args.batch, args.procs, args.throughput_s)

    lam_s = sum(lam_wall) / n
    lam_cpu_s = sum(lam_cpu) / n
    rr_s = sum(rr_wall) / n
    rr_cpu_s = sum(rr_cpu) / n
    label_letter = np.array([spectral_letter(s) or "" for s in sample.label_subclass])
    q_lam = agreement(
        sample.label,
        sample.label_z,
        lam.cls,
        lam.z,
        label_letter=label_letter,
        letter=np.array([spectral_letter(s) or "" for s in lam.subclass]),
    )
    q_rr = agreement(
        sample.label,
        sample.label_z,
        rrc,
        rrz,
        label_letter=label_letter,
        letter=np.array([redrock_letter(c, s) for c, s in zip(rrc, rrsub, strict=True)]),
        answered=ok,
    )

    cmd = " ".join(["python", "benchmarks/bench_vs_redrock.py", *(argv or sys.argv[1:])])
    import redrock

    labels = dict(Counter(str(x) for x in sample.label).most_common())
    print(f"== lamostdb vs redrock {redrock.__version__} on {n} real LAMOST spectra ({cmd})")
    print(
        f"files: {args.root} ({len(files)} files, seed {args.seed}); unreadable skipped: "
        f"{len(sample.unreadable)}; LAMOST CLASS: {labels}"
    )
    print(
        f"threads: one core each, BLAS limited to 1 thread ({blas}); numba threads "
        f"{numba.get_num_threads()}"
    )
    print(
        f"redrock: {len(paths)} template files from {args.templates}; resolution matrix "
        f"Gaussian R={RESOLUTION:.0f} (sigma {sigma:.2f} px, {NDIAG} diagonals)"
    )
    print(
        f"set-up (not in the per-spectrum figures): lamostdb engine {t_engine:.1f} s; "
        f"redrock templates read + rebinned {t_rr_setup:.1f} s, first fit (numba JIT) "
        f"{t_rr_warm:.1f} s"
    )
    print("\n-- speed, one core each (interleaved batch by batch)")
    print(
        f"lamostdb classify_arrays (batches of {args.batch}): {lam_s * 1e3:8.2f} ms/spectrum "
        f"wall, {lam_cpu_s * 1e3:8.2f} ms CPU; median batch "
        f"{statistics.median(lam_wall) * 1e3:.0f} ms"
    )
    print(
        f"redrock zfind (the batch in one call): {rr_s * 1e3:8.2f} ms/spectrum wall, "
        f"{rr_cpu_s * 1e3:8.2f} ms CPU; median batch "
        f"{statistics.median(rr_wall) * 1e3:.0f} ms"
    )
    print(f"ratio redrock / lamostdb: {rr_s / lam_s:.0f}x wall, {rr_cpu_s / lam_cpu_s:.0f}x CPU")
    print(f"\n-- throughput on {args.procs} cores")
    print(
        f"lamostdb: {tput.rate:.1f} spectra/s measured ({tput.spectra} spectra in "
        f"{tput.wall_s:.1f} s wall, {args.procs} worker processes, batches of {args.batch}, "
        f"1 BLAS thread each); {tput.cpu_rate:.1f} spectra/s from the workers' CPU time "
        f"({args.procs} x spectra / CPU s: each worker alone on its core)"
    )
    print(
        f"redrock:  {args.procs / rr_s:.2f} spectra/s computed as {args.procs} / {rr_s:.3f} s "
        f"wall; {args.procs / rr_cpu_s:.2f} spectra/s as {args.procs} / {rr_cpu_s:.3f} CPU s "
        "(perfect scaling assumed, not measured)"
    )
    print(
        f"ratio lamostdb / redrock per machine: {tput.rate * rr_s / args.procs:.0f}x "
        f"(measured wall vs computed wall), {tput.cpu_rate * rr_cpu_s / args.procs:.0f}x (CPU)"
    )
    load = os.getloadavg()
    print(f"load average at the end (1, 5, 15 min): {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print("\n-- quality against LAMOST's labels (CLASS, SUBCLASS letter, Z)")
    for line in format_quality("lamostdb", q_lam):
        print(line)
    for line in format_quality("redrock ", q_rr):
        print(line)
    print(f"    redrock ZWARN == 0: {int((ok & (rrzwarn == 0)).sum())}/{int(ok.sum())}")
    pairs = Counter(
        f"{ll or '?'}->{rs or '?'}"
        for ll, c, rs, lab in zip(label_letter, rrc, rrsub, sample.label, strict=True)
        if c == "STAR" and lab == "STAR"
    )
    print(f"    LAMOST letter -> redrock STAR subtype: {dict(pairs.most_common())}")
    known = np.isin(sample.label, CLASSES)
    for name, cls, zz in (("lamostdb", lam.cls, lam.z), ("redrock", rrc, rrz)):
        wrong = np.flatnonzero(known & (cls != sample.label) & ((name != "redrock") | ok))
        print(f"{name}: {wrong.size} wrong-class spectra (file | LAMOST class subclass z | its z)")
        for i in wrong[:30]:
            print(
                f"    {Path(sample.files[i]).name} | {sample.label[i]} "
                f"{sample.label_subclass[i]} {sample.label_z[i]:.5f} | {cls[i]} {zz[i]:.5f}"
            )
    unk = np.flatnonzero(~known)
    if unk.size:
        print(
            "LAMOST Unknown/unlabelled: "
            + "; ".join(
                f"{Path(sample.files[i]).name}: lamostdb {lam.cls[i]} z={lam.z[i]:.4f}, redrock "
                f"{rrc[i] or 'failed'} z={rrz[i]:.4f}"
                for i in unk
            )
        )
    print(f"redrock failures: {len(failures)}")
    for f in failures:
        print(f"    {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
