"""The classify stage: ``spectra`` in, ``results`` and ``candidates`` out.

Only spectra without a result of the current engine version are fitted (``rerun=True``
fits all current spectra again). Work is split by ``spectra`` file; each worker streams its
file in record batches (pyarrow row groups -> Polars), turns them into matrices
(``lamostdb.match.batch``) and calls the engine (``lamostdb.match.fit``), then writes one
``results`` and one ``candidates`` Parquet file for the partition. The files are committed
atomically with the run record, like ingest.

One spectrum never stops the stage: a row whose pixel arrays cannot be used (a null array,
flux/ivar/andmask/wavelength of different lengths or not NPIX long) is fitted as a spectrum
with no usable pixel, so it gets a result row with the ``UNPLUGGED`` zwarning bit, and is
named with the reason in the report (``unusable``) and the run's summary. A batch the
engine fails on is fitted again one spectrum at a time, and a spectrum that still fails is
treated the same way.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from lamostdb.catalog.commit import STAGING, StagedFile, commit_run, new_run_id
from lamostdb.catalog.hats import leaf_relpath
from lamostdb.catalog.schema import load_schema
from lamostdb.catalog.store import Catalog
from lamostdb.catalog.workers import worker_pool
from lamostdb.constants import C_KMS
from lamostdb.io.parquet import write_parquet
from lamostdb.io.sqlfiles import statement
from lamostdb.match.batch import ENGINE_COLUMNS, batch_to_matrices
from lamostdb.match.engine import ENGINE_VERSION, Engine, get_engine
from lamostdb.match.fit import CLASS_CODES
from lamostdb.match.pipeline import Classified, classify_arrays
from lamostdb.templates.grid import LogGrid

FIT_BATCH = 32


@dataclass
class ClassifyReport:
    run_id: str
    n_todo: int = 0
    n_fitted: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    spectra_per_s: float = 0.0
    peak_worker_rss_mb: float = 0.0
    #: (specid, reason) of spectra fitted as having no usable pixel (zwarning UNPLUGGED)
    unusable: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        d["unusable"] = [list(u) for u in self.unusable]
        return d


@dataclass(frozen=True)
class _Task:
    index: int
    spectra_file: str
    specids: tuple[str, ...]
    root: str
    run_id: str
    norder: int
    npix: int
    single_thread: bool = False


def _tables(df: pl.DataFrame, out: Classified, engine: Engine, run_id: str
            ) -> tuple[pa.Table, pa.Table]:
    fit = out.fit
    n_s, n_c = fit.z.shape
    cls = np.array(CLASS_CODES)[fit.objclass]
    names = np.array(list(engine.star.names) + [""], dtype=object)
    tpl_idx = np.where(fit.template >= 0, fit.template, len(engine.star.names))
    eigen_name = {b.objclass: f"eigen:{b.objclass}" for b in engine.eigen}
    template = np.where(fit.template >= 0, names[tpl_idx],
                        np.vectorize(eigen_name.get, otypes=[object])(cls))
    subclass = out.subclass
    q = out.quality
    nan = np.full(n_s, np.nan)
    base = {c: df[c].to_numpy() for c in ("specid", "source_sha256", "obsid", "ra", "dec",
                                           "_healpix_29")}
    is_star = cls[:, 0] == "STAR"
    best_rv = np.where(is_star, fit.z[:, 0] * C_KMS, np.nan)
    best_rv_err = np.where(is_star, fit.z_err[:, 0] * C_KMS, np.nan)
    coeffs = [row[np.isfinite(row)] for row in fit.coeffs[:, 0, :]]
    res_schema = load_schema("results").arrow_schema()
    results = {
        **{k: base[k] for k in ("specid", "source_sha256")},
        "obsid": df["obsid"].to_arrow(),
        "class": cls[:, 0], "subclass": subclass[:, 0], "template": template[:, 0],
        "z": fit.z[:, 0], "z_err": _nullable(fit.z_err[:, 0]), "rv_kms": _nullable(best_rv),
        "rv_err_kms": _nullable(best_rv_err),
        "chi2": fit.chi2[:, 0], "dof": fit.dof[:, 0], "rchi2": fit.rchi2[:, 0],
        "delta_rchi2": _nullable(fit.delta_rchi2[:, 0]), "n_good": fit.n_good,
        "z_edge": fit.z_edge[:, 0],
        "coeffs": pa.array(coeffs, type=pa.list_(pa.float64())),
        "conf": np.nan_to_num(out.conf, nan=0.0), "conf_blue": _nullable(out.conf_blue),
        "conf_red": _nullable(out.conf_red),
        "resid_blue_mu": _nullable(q.blue.mu if q else nan),
        "resid_blue_sigma": _nullable(q.blue.sigma if q else nan),
        "resid_red_mu": _nullable(q.red.mu if q else nan),
        "resid_red_sigma": _nullable(q.red.sigma if q else nan),
        "conf_group": out.groups, "refined": out.refined, "zwarning": out.zwarning,
        "snrg": df["snrg"].to_arrow(),
        "engine_version": [engine.version] * n_s, "continuum": [engine.basis.source] * n_s,
        "run_id": [run_id] * n_s,
        **{k: base[k] for k in ("ra", "dec", "_healpix_29")},
    }
    res = pa.Table.from_pydict({f.name: _arr(results[f.name], f.type) for f in res_schema},
                               schema=res_schema)
    cand_schema = load_schema("candidates").arrow_schema()
    rep = lambda a: np.repeat(a, n_c)  # noqa: E731
    cands = {
        "specid": rep(base["specid"]), "source_sha256": rep(base["source_sha256"]),
        "obsid": pa.array(rep(df["obsid"].fill_null(-1).to_numpy()), type=pa.int64()),
        "rank": np.tile(np.arange(n_c, dtype=np.int16), n_s),
        "class": cls.ravel(), "subclass": subclass.ravel(), "template": template.ravel(),
        "z": fit.z.ravel(), "z_err": _nullable(fit.z_err.ravel()), "chi2": fit.chi2.ravel(),
        "dof": fit.dof.ravel(), "rchi2": fit.rchi2.ravel(),
        "delta_rchi2": _nullable(fit.delta_rchi2.ravel()), "z_edge": fit.z_edge.ravel(),
        "degenerate": out.degenerate.ravel(),
        "engine_version": [engine.version] * (n_s * n_c), "run_id": [run_id] * (n_s * n_c),
        "ra": rep(base["ra"]), "dec": rep(base["dec"]), "_healpix_29": rep(base["_healpix_29"]),
    }
    obsid_null = rep(df["obsid"].is_null().to_numpy())
    cands["obsid"] = pa.array(np.where(obsid_null, 0, rep(df["obsid"].fill_null(0).to_numpy())),
                              type=pa.int64(), mask=obsid_null)
    cand = pa.Table.from_pydict({f.name: _arr(cands[f.name], f.type) for f in cand_schema},
                                schema=cand_schema)
    return res, cand


def _nullable(x: np.ndarray) -> pa.Array:
    x = np.asarray(x, dtype=np.float64)
    return pa.array(np.where(np.isfinite(x), x, 0.0), mask=~np.isfinite(x))


def _arr(v: object, t: pa.DataType) -> pa.Array:
    if isinstance(v, pa.Array | pa.ChunkedArray):
        return v.cast(t)
    return pa.array(v, type=t)


_Outcome = tuple[list[StagedFile], dict[str, int], int, float, list[tuple[str, str]]]


def _fit(sub: pl.DataFrame, engine: Engine, run_id: str) -> tuple[pa.Table, pa.Table]:
    flux, ivar = batch_to_matrices(sub, engine.grid)
    out = classify_arrays(flux, ivar, engine=engine, fibertype=sub["fibertype"].to_numpy())
    return _tables(sub, out, engine, run_id)


def _blank(df: pl.DataFrame, grid: LogGrid) -> pl.DataFrame:
    """The rows with no pixel at all, on the working grid: the engine fits them as unplugged."""
    t = df.schema
    return df.with_columns(flux=pl.lit([], dtype=t["flux"]), ivar=pl.lit([], dtype=t["ivar"]),
                           andmask=pl.lit([], dtype=t["andmask"]),
                           wavelength=pl.lit(None, dtype=df.schema["wavelength"]),
                           coeff0=pl.lit(grid.loglam0, dtype=df.schema["coeff0"]),
                           coeff1=pl.lit(grid.dloglam, dtype=df.schema["coeff1"]))


def usable_rows(df: pl.DataFrame, grid: LogGrid) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """``df`` with every row whose pixel arrays cannot be used blanked (see :func:`_blank`).

    Returns the rows and, for each blanked one, ``(specid, reason)``.
    """
    n_flux = df["flux"].list.len()
    checks = []
    for name in ("flux", "ivar", "andmask"):
        checks.append((df[name].is_null(), f"no {name.upper()} array"))
    checks.append((df["npix"].is_null() | (n_flux != df["npix"]),
                   "FLUX does not have NPIX values"))
    for name in ("ivar", "andmask", "wavelength"):
        checks.append((df[name].list.len() != n_flux, f"{name.upper()} is not as long as FLUX"))
    checks.append((df["wavelength"].is_null() & (df["coeff0"].is_null() | df["coeff1"].is_null()),
                   "no WAVELENGTH array and no COEFF0/COEFF1"))
    reasons: list[str | None] = [None] * df.height
    for mask, why in checks:
        for i in np.flatnonzero(mask.fill_null(False).to_numpy()):
            reasons[i] = reasons[i] or why
    bad = [i for i, r in enumerate(reasons) if r]
    if not bad:
        return df, []
    keep = pl.Series(np.array([r is None for r in reasons]))
    blanked = _blank(df, grid)
    out = df.with_columns([df[c].zip_with(keep, blanked[c]) for c in
                           ("flux", "ivar", "andmask", "wavelength", "coeff0", "coeff1")])
    specids = df["specid"].to_list()
    return out, [(specids[i], f"{reasons[i]}; fitted as a spectrum with no usable pixel")
                 for i in bad]


def _classify_file(task: _Task) -> _Outcome:
    if task.single_thread:  # one BLAS thread per worker: the workers already use every core
        with threadpool_limits(limits=1):
            return _classify_file_inner(task)
    return _classify_file_inner(task)


def _classify_file_inner(task: _Task) -> _Outcome:
    engine = get_engine()
    wanted = pl.Series("key", task.specids)  # "specid|source_sha256" of the spectra to fit
    pf = pq.ParquetFile(task.spectra_file)
    res_parts: list[pa.Table] = []
    cand_parts: list[pa.Table] = []
    unusable: list[tuple[str, str]] = []
    for batch in pf.iter_batches(batch_size=256, columns=list(ENGINE_COLUMNS)):
        df = pl.from_arrow(batch)
        assert isinstance(df, pl.DataFrame)
        df = df.filter((pl.col("specid") + "|" + pl.col("source_sha256")).is_in(wanted.implode()))
        for start in range(0, df.height, FIT_BATCH):
            sub, bad = usable_rows(df.slice(start, FIT_BATCH), engine.grid)
            unusable += bad
            try:
                parts = [_fit(sub, engine, task.run_id)]
            except Exception:  # noqa: BLE001 - one spectrum must not stop the others
                parts = []
                for i in range(sub.height):
                    one = sub.slice(i, 1)
                    try:
                        parts.append(_fit(one, engine, task.run_id))
                    except Exception as exc:  # noqa: BLE001
                        unusable.append((str(one["specid"][0]),
                                         f"the fit failed ({type(exc).__name__}: {exc})"))
                        parts.append(_fit(_blank(one, engine.grid), engine, task.run_id))
            for r, c in parts:
                res_parts.append(r)
                cand_parts.append(c)
    staged = []
    counts: dict[str, int] = defaultdict(int)
    n = 0
    for table_name, parts in (("results", res_parts), ("candidates", cand_parts)):
        if not parts:
            continue
        table = pa.concat_tables(parts)
        table = table.sort_by("_healpix_29")
        leaf = leaf_relpath(table_name, task.norder, task.npix)
        name = f"part-{task.run_id}-{task.index:05d}.parquet"
        rel = f"{STAGING}/{task.run_id}/{leaf}/{name}"
        nbytes = write_parquet(table, Path(task.root) / rel)
        staged.append(StagedFile(table_name, rel, f"{leaf}/{name}", task.norder, task.npix,
                                 table.num_rows, nbytes))
        if table_name == "results":
            n = table.num_rows
            for k, v in zip(*np.unique(table.column("class").to_numpy(zero_copy_only=False),
                                       return_counts=True), strict=True):
                counts[str(k)] += int(v)
    return (staged, dict(counts), n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            unusable)


def classify(catalog: Catalog, *, rerun: bool = False, workers: int | None = None,
             progress: bool = True) -> ClassifyReport:
    """Classify every current spectrum that has no result of this engine version."""
    t0 = time.perf_counter()
    run_id = new_run_id()
    report = ClassifyReport(run_id)
    with catalog.write_lock():
        files = catalog.table_files("spectra")
        paths = [str(catalog.root / f.path) for f in files]
        if not paths:
            return report
        if rerun:
            rows = catalog.con.execute(statement("classify.sql", "all_current"),
                                       {"files": paths}).fetchall()
        else:
            rows = catalog.con.execute(statement("classify.sql", "unclassified"),
                                       {"files": paths, "engine_version": ENGINE_VERSION}
                                       ).fetchall()
        by_file: dict[str, list[str]] = defaultdict(list)
        for fname, specid, sha in rows:
            by_file[str(fname)].append(f"{specid}|{sha}")
        meta = {str(catalog.root / f.path): f for f in files}
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(by_file)))
        tasks = [_Task(i, fname, tuple(ids), str(catalog.root), run_id, meta[fname].norder,
                       meta[fname].npix, n_workers > 1)
                 # largest files first, so that no worker starts a big file while the
                 # others run out of work (the batches inside each file are unchanged)
                 for i, (fname, ids) in enumerate(sorted(by_file.items(),
                                                         key=lambda kv: (-len(kv[1]), kv[0])))]
        report.n_todo = len(rows)
        staged: list[StagedFile] = []
        counts: dict[str, int] = defaultdict(int)
        bar = tqdm(total=report.n_todo, unit="spectrum", desc="classify",
                   disable=not progress or not tasks)
        with contextlib.ExitStack() as stack:
            stack.callback(bar.close)
            if n_workers == 1:
                results: Iterator[_Outcome] = map(_classify_file, tasks)
            else:
                pool = stack.enter_context(worker_pool(n_workers, catalog.root, STAGING, run_id,
                                                       "lamostdb.catalog.classify"))
                results = pool.imap_unordered(_classify_file, tasks)
            for st, cnt, n, rss, bad in results:
                staged += st
                report.unusable += bad
                for k, v in cnt.items():
                    counts[k] += v
                report.n_fitted += n
                report.peak_worker_rss_mb = max(report.peak_worker_rss_mb, rss)
                bar.update(n)
        report.counts = dict(counts)
        report.elapsed_s = round(time.perf_counter() - t0, 3)
        report.spectra_per_s = round(report.n_fitted / max(report.elapsed_s, 1e-9), 1)
        if staged:
            staged.sort(key=lambda s: s.final)
            commit_run(catalog, run_id, "classify", staged, lambda: None, report.as_dict())
    return report
