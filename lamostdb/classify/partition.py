"""The classify partition function: one partition's spectra in, results and candidates out.

:func:`classify_partition` is pure (no file, no store): it takes the partition's spectra as
an Arrow table (the :data:`~lamostdb.match.batch.ENGINE_COLUMNS`) and an
:class:`~lamostdb.match.config.EngineConfig`, and drives the engine as a Polars UDF:
``map_batches`` on the spectra frame calls :func:`fit_frame`, which fits record batches of
:data:`FIT_BATCH` spectra (matrices through :mod:`lamostdb.match.batch`, arrays through
:func:`lamostdb.match.pipeline.classify_arrays`) and returns one row per spectrum: the
``results`` columns, its ranked candidates nested in ``_candidates``, and ``_unusable``,
the reason a spectrum was fitted as having no usable pixel (null for the others).

One spectrum never stops the partition: a row whose pixel arrays cannot be used (a null
array, flux/ivar/andmask/wavelength of different lengths or not NPIX long) is fitted as a
spectrum with no usable pixel (zwarning ``UNPLUGGED``) and named with the reason. A batch
the engine fails on is fitted again one spectrum at a time, and a spectrum that still
fails is treated the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import polars as pl
import pyarrow as pa

from lamostdb.catalog.schema import empty_table, load_schema
from lamostdb.constants import C_KMS
from lamostdb.match.batch import batch_to_matrices
from lamostdb.match.config import DEFAULT_CONFIG, EngineConfig
from lamostdb.match.engine import Engine, get_engine
from lamostdb.match.fit import CLASS_CODES
from lamostdb.match.models import shifted_stars
from lamostdb.match.pipeline import Classified, classify_arrays
from lamostdb.templates.grid import LogGrid

#: Spectra per engine call: measured by benchmarks/bench_classify.py (the kernels' matrices
#: stay in cache; larger batches do not run faster).
FIT_BATCH = 32
_CANDIDATES = "_candidates"
_UNUSABLE = "_unusable"


@dataclass(frozen=True)
class ClassifiedPartition:
    """What :func:`classify_partition` returns."""

    results: pa.Table
    candidates: pa.Table
    #: (specid, reason) of spectra fitted as having no usable pixel (zwarning UNPLUGGED)
    unusable: list[tuple[str, str]]


def classify_partition(
    spectra: pa.Table, config: EngineConfig = DEFAULT_CONFIG, *, run_id: str
) -> ClassifiedPartition:
    """Classify every row of ``spectra``; rows come back in ``_healpix_29`` order.

    Parameters
    ----------
    spectra
        The rows to fit, with the :data:`~lamostdb.match.batch.ENGINE_COLUMNS`.
    config
        The engine to fit with (built once per process and configuration).
    run_id
        Written into every row.
    """
    engine = get_engine(config)
    res_schema = load_schema("results").arrow_schema()
    cand_schema = load_schema("candidates").arrow_schema()
    frame = pl.from_arrow(spectra)
    assert isinstance(frame, pl.DataFrame)
    out_schema = _frame_schema(res_schema, cand_schema)
    # not streamable: the streaming engine would cut the frame into morsels whose sizes
    # depend on the thread count, and the engine's float sums depend (at rounding level, which
    # can flip a near-tie) on which spectra share a batch; fit_frame cuts FIT_BATCH slices
    fitted = (
        frame.rechunk()
        .lazy()
        .map_batches(
            partial(fit_frame, engine=engine, run_id=run_id), schema=out_schema, streamable=False
        )
        .collect()
    )
    fitted = fitted.sort("_healpix_29", maintain_order=True)
    results = fitted.drop(_CANDIDATES, _UNUSABLE).to_arrow().cast(res_schema)
    cands = fitted.select(pl.col(_CANDIDATES).explode()).unnest(_CANDIDATES)
    candidates = cands.to_arrow().cast(cand_schema) if cands.height else empty_table(cand_schema)
    bad = fitted.filter(pl.col(_UNUSABLE).is_not_null()).select("specid", _UNUSABLE)
    return ClassifiedPartition(results, candidates, [tuple(r) for r in bad.iter_rows()])


def warm_engine(config: EngineConfig = DEFAULT_CONFIG) -> Engine:
    """Build ``config``'s engine and every array it builds on first use, by fitting two
    made-up spectra (a star template at rest with a little noise, and pure noise).

    The classify workers' fork server calls it once (:mod:`lamostdb.classify.warm`): the
    workers it forks then share the engine instead of each building its own at the same
    time (two workers building ~300 MB at once took 0.2 to 0.8 s each, one alone 0.2 s).
    """
    engine = get_engine(config)
    rng = np.random.default_rng(0)
    star = shifted_stars(engine, np.zeros(1, dtype=np.int64), np.zeros(1))[0]
    scale = float(np.nanmedian(np.abs(star))) or 1.0
    flux = np.stack([star / scale, np.zeros_like(star)])
    flux += 0.02 * rng.standard_normal(flux.shape)
    classify_arrays(flux, np.full(flux.shape, 2500.0), engine=engine)
    return engine


def _frame_schema(res_schema: pa.Schema, cand_schema: pa.Schema) -> pl.Schema:
    """Polars schema of :func:`fit_frame`'s output."""
    res = pl.from_arrow(empty_table(res_schema))
    cand = pl.from_arrow(empty_table(cand_schema))
    assert isinstance(res, pl.DataFrame) and isinstance(cand, pl.DataFrame)
    schema = pl.Schema(res.schema)
    schema[_CANDIDATES] = pl.List(pl.Struct(cand.schema))
    schema[_UNUSABLE] = pl.String()
    return schema


def fit_frame(df: pl.DataFrame, *, engine: Engine, run_id: str) -> pl.DataFrame:
    """The Polars UDF: fit ``df`` in batches of :data:`FIT_BATCH`; see the module docstring."""
    res_schema = load_schema("results").arrow_schema()
    cand_schema = load_schema("candidates").arrow_schema()
    out = []
    for start in range(0, df.height, FIT_BATCH):
        sub, bad = usable_rows(df.slice(start, FIT_BATCH), engine.grid)
        try:
            parts = [_fit(sub, engine, run_id)]
        except Exception:  # noqa: BLE001 - one spectrum must not stop the others
            parts = []
            for i in range(sub.height):
                one = sub.slice(i, 1)
                try:
                    parts.append(_fit(one, engine, run_id))
                except Exception as exc:  # noqa: BLE001
                    bad.append(
                        (str(one["specid"][0]), f"the fit failed ({type(exc).__name__}: {exc})")
                    )
                    parts.append(_fit(_blank(one, engine.grid), engine, run_id))
        reasons = dict(bad)
        for res, cand in parts:
            out.append(_nest(res, cand, reasons))
    if not out:
        return pl.DataFrame(schema=_frame_schema(res_schema, cand_schema))
    return pl.concat(out)


def _nest(res: pa.Table, cand: pa.Table, reasons: dict[str, str]) -> pl.DataFrame:
    """One row per result with its candidates (``cand`` holds the same number per spectrum,
    in the same spectrum order) nested in ``_candidates``."""
    n_s = res.num_rows
    rf = pl.from_arrow(res)
    cf = pl.from_arrow(cand)
    assert isinstance(rf, pl.DataFrame) and isinstance(cf, pl.DataFrame)
    n_c = cf.height // max(n_s, 1)
    nested = (
        cf.with_columns(_row=pl.int_range(cf.height) // n_c)
        .group_by("_row", maintain_order=True)
        .agg(pl.struct(pl.exclude("_row")).alias(_CANDIDATES))[_CANDIDATES]
    )
    specids = rf["specid"].to_list()
    return rf.with_columns(
        nested, pl.Series(_UNUSABLE, [reasons.get(s) for s in specids], dtype=pl.String)
    )


def _tables(
    df: pl.DataFrame, out: Classified, engine: Engine, run_id: str
) -> tuple[pa.Table, pa.Table]:
    fit = out.fit
    n_s, n_c = fit.z.shape
    cls = np.array(CLASS_CODES)[fit.objclass]
    names = np.array(list(engine.star.names) + [""], dtype=object)
    tpl_idx = np.where(fit.template >= 0, fit.template, len(engine.star.names))
    eigen_name = {b.objclass: f"eigen:{b.objclass}" for b in engine.eigen}
    template = np.where(
        fit.template >= 0, names[tpl_idx], np.vectorize(eigen_name.get, otypes=[object])(cls)
    )
    subclass = out.subclass
    q = out.quality
    nan = np.full(n_s, np.nan)
    base = {
        c: df[c].to_numpy()
        for c in ("specid", "source_sha256", "obsid", "ra", "dec", "_healpix_29")
    }
    is_star = cls[:, 0] == "STAR"
    best_rv = np.where(is_star, fit.z[:, 0] * C_KMS, np.nan)
    best_rv_err = np.where(is_star, fit.z_err[:, 0] * C_KMS, np.nan)
    coeffs = [row[np.isfinite(row)] for row in fit.coeffs[:, 0, :]]
    res_schema = load_schema("results").arrow_schema()
    results = {
        **{k: base[k] for k in ("specid", "source_sha256")},
        "obsid": df["obsid"].to_arrow(),
        "class": cls[:, 0],
        "subclass": subclass[:, 0],
        "template": template[:, 0],
        "z": fit.z[:, 0],
        "z_err": _nullable(fit.z_err[:, 0]),
        "rv_kms": _nullable(best_rv),
        "rv_err_kms": _nullable(best_rv_err),
        "chi2": fit.chi2[:, 0],
        "dof": fit.dof[:, 0],
        "rchi2": fit.rchi2[:, 0],
        "delta_rchi2": _nullable(fit.delta_rchi2[:, 0]),
        "n_good": fit.n_good,
        "z_edge": fit.z_edge[:, 0],
        "coeffs": pa.array(coeffs, type=pa.list_(pa.float64())),
        "conf": np.nan_to_num(out.conf, nan=0.0),
        "conf_blue": _nullable(out.conf_blue),
        "conf_red": _nullable(out.conf_red),
        "resid_blue_mu": _nullable(q.blue.mu if q else nan),
        "resid_blue_sigma": _nullable(q.blue.sigma if q else nan),
        "resid_red_mu": _nullable(q.red.mu if q else nan),
        "resid_red_sigma": _nullable(q.red.sigma if q else nan),
        "conf_group": out.groups,
        "refined": out.refined,
        "zwarning": out.zwarning,
        "snrg": df["snrg"].to_arrow(),
        "engine_version": [engine.version] * n_s,
        "continuum": [engine.basis.source] * n_s,
        "run_id": [run_id] * n_s,
        **{k: base[k] for k in ("ra", "dec", "_healpix_29")},
    }
    res = pa.Table.from_pydict(
        {f.name: _arr(results[f.name], f.type) for f in res_schema}, schema=res_schema
    )
    cand_schema = load_schema("candidates").arrow_schema()
    rep = lambda a: np.repeat(a, n_c)  # noqa: E731
    cands = {
        "specid": rep(base["specid"]),
        "source_sha256": rep(base["source_sha256"]),
        "obsid": pa.array(rep(df["obsid"].fill_null(-1).to_numpy()), type=pa.int64()),
        "rank": np.tile(np.arange(n_c, dtype=np.int16), n_s),
        "class": cls.ravel(),
        "subclass": subclass.ravel(),
        "template": template.ravel(),
        "z": fit.z.ravel(),
        "z_err": _nullable(fit.z_err.ravel()),
        "chi2": fit.chi2.ravel(),
        "dof": fit.dof.ravel(),
        "rchi2": fit.rchi2.ravel(),
        "delta_rchi2": _nullable(fit.delta_rchi2.ravel()),
        "z_edge": fit.z_edge.ravel(),
        "degenerate": out.degenerate.ravel(),
        "engine_version": [engine.version] * (n_s * n_c),
        "run_id": [run_id] * (n_s * n_c),
        "ra": rep(base["ra"]),
        "dec": rep(base["dec"]),
        "_healpix_29": rep(base["_healpix_29"]),
    }
    obsid_null = rep(df["obsid"].is_null().to_numpy())
    cands["obsid"] = pa.array(
        np.where(obsid_null, 0, rep(df["obsid"].fill_null(0).to_numpy())),
        type=pa.int64(),
        mask=obsid_null,
    )
    cand = pa.Table.from_pydict(
        {f.name: _arr(cands[f.name], f.type) for f in cand_schema}, schema=cand_schema
    )
    return res, cand


def _nullable(x: np.ndarray) -> pa.Array:
    x = np.asarray(x, dtype=np.float64)
    return pa.array(np.where(np.isfinite(x), x, 0.0), mask=~np.isfinite(x))


def _arr(v: object, t: pa.DataType) -> pa.Array:
    if isinstance(v, pa.Array | pa.ChunkedArray):
        return v.cast(t)
    return pa.array(v, type=t)


def _fit(sub: pl.DataFrame, engine: Engine, run_id: str) -> tuple[pa.Table, pa.Table]:
    flux, ivar = batch_to_matrices(sub, engine.grid)
    out = classify_arrays(flux, ivar, engine=engine, fibertype=sub["fibertype"].to_numpy())
    return _tables(sub, out, engine, run_id)


def _blank(df: pl.DataFrame, grid: LogGrid) -> pl.DataFrame:
    """The rows with no pixel at all, on the working grid: the engine fits them as unplugged."""
    t = df.schema
    return df.with_columns(
        flux=pl.lit([], dtype=t["flux"]),
        ivar=pl.lit([], dtype=t["ivar"]),
        andmask=pl.lit([], dtype=t["andmask"]),
        wavelength=pl.lit(None, dtype=df.schema["wavelength"]),
        coeff0=pl.lit(grid.loglam0, dtype=df.schema["coeff0"]),
        coeff1=pl.lit(grid.dloglam, dtype=df.schema["coeff1"]),
    )


def usable_rows(df: pl.DataFrame, grid: LogGrid) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """``df`` with every row whose pixel arrays cannot be used blanked (see :func:`_blank`).

    Returns the rows and, for each blanked one, ``(specid, reason)``.
    """
    n_flux = df["flux"].list.len()
    checks = []
    for name in ("flux", "ivar", "andmask"):
        checks.append((df[name].is_null(), f"no {name.upper()} array"))
    checks.append((df["npix"].is_null() | (n_flux != df["npix"]), "FLUX does not have NPIX values"))
    for name in ("ivar", "andmask", "wavelength"):
        checks.append((df[name].list.len() != n_flux, f"{name.upper()} is not as long as FLUX"))
    checks.append(
        (
            df["wavelength"].is_null() & (df["coeff0"].is_null() | df["coeff1"].is_null()),
            "no WAVELENGTH array and no COEFF0/COEFF1",
        )
    )
    reasons: list[str | None] = [None] * df.height
    for mask, why in checks:
        for i in np.flatnonzero(mask.fill_null(False).to_numpy()):
            reasons[i] = reasons[i] or why
    bad = [i for i, r in enumerate(reasons) if r]
    if not bad:
        return df, []
    keep = pl.Series(np.array([r is None for r in reasons]))
    blanked = _blank(df, grid)
    out = df.with_columns(
        [
            df[c].zip_with(keep, blanked[c])
            for c in ("flux", "ivar", "andmask", "wavelength", "coeff0", "coeff1")
        ]
    )
    specids = df["specid"].to_list()
    return out, [
        (specids[i], f"{reasons[i]}; fitted as a spectrum with no usable pixel") for i in bad
    ]
