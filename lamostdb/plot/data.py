"""What a spectrum plot shows, gathered without matplotlib.

:func:`spectrum_plot_data` finds one spectrum in a catalogue, puts it on the engine's working
grid, re-fits it (``classify_arrays``: the model itself is not stored, and the engine is
deterministic, so the re-fit rebuilds it) and reads the catalogue's result for it. When the
re-fit does not reproduce that result (another engine version or continuum, other templates,
no result yet), ``note`` says so and the re-fit's values are the ones shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from lamostdb.catalog.store import Catalog, open_catalog
from lamostdb.constants import C_KMS
from lamostdb.io.record import SpectrumRecord
from lamostdb.io.sqlfiles import statement
from lamostdb.match.confidence import BLUE_WINDOW, RED_WINDOW
from lamostdb.match.engine import SKY_TELLURIC_MASK_ANGSTROM, Engine, get_engine
from lamostdb.match.fit import CLASS_CODES, weighted_inputs
from lamostdb.match.models import fit_models
from lamostdb.match.pipeline import Classified, classify_arrays
from lamostdb.templates.grid import to_working_grid

F64 = npt.NDArray[np.float64]
#: A re-fit reproduces the catalogue's result when class and subclass are the same and the
#: redshifts agree within this velocity. Re-fitting one spectrum instead of a batch of 32
#: changes z by ~1e-7 (0.03 km/s: float32 BLAS sums in another order), far below this.
Z_AGREE_KMS = 1.0
#: classify keeps 10 candidates: the best and at most 9 more to overlay.
MAX_EXTRA_CANDIDATES = 9


class SpectrumLookupError(KeyError):
    """No spectrum, or more than one, matches the request; the message says what to do."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class FitSummary:
    """The figures of one fit that the plot's title shows."""

    objclass: str
    subclass: str
    template: str
    z: float
    z_err: float | None
    rchi2: float
    conf: float | None
    conf_blue: float | None
    conf_red: float | None
    zwarning: int | None
    refined: bool | None
    engine_version: str
    continuum: str

    @property
    def rv_kms(self) -> float | None:
        """Radial velocity c*z for a star, else None."""
        return self.z * C_KMS if self.objclass == "STAR" else None

    def label(self) -> str:
        """Short description, e.g. ``STAR G8, z = 0.000123``."""
        return f"{self.objclass} {self.subclass}, z = {self.z:.6f}"


@dataclass(frozen=True)
class CandidateModel:
    """A lower-ranked candidate of the re-fit with its model on the working grid."""

    rank: int
    objclass: str
    subclass: str
    template: str
    z: float
    rchi2: float
    model: F64


@dataclass(frozen=True)
class SpectrumPlotData:
    """Everything :func:`lamostdb.plot.draw_spectrum` draws.

    Native arrays are the spectrum as stored; ``grid_*`` arrays are on the engine's working
    grid, where the model, the residuals and the masks of the fit live.
    """

    record: SpectrumRecord
    wave_angstrom: F64  # native pixel centres
    flux: F64  # native flux
    ivar: F64  # native ivar
    masked: npt.NDArray[np.bool_]  # native: ivar <= 0 or not finite, flux not finite, andmask
    grid_wave_angstrom: F64
    grid_flux: F64  # 0 where grid_ivar is 0
    grid_ivar: F64  # 0 at masked and uncovered pixels
    model: F64  # best-fit model of the re-fit on the working grid
    pixel_weight: F64  # engine weight: 0 in the sky/telluric ranges
    sky_telluric_angstrom: tuple[tuple[float, float], ...]
    blue_window: tuple[float, float]
    red_window: tuple[float, float]
    shown: FitSummary  # the catalogue's result when the re-fit reproduces it, else the re-fit
    catalogue: FitSummary | None
    refit: FitSummary
    note: str | None  # None when the re-fit reproduces the catalogue's result
    candidates: tuple[CandidateModel, ...]

    @property
    def is_catalogue_result(self) -> bool:
        """Whether the model drawn is the catalogue's result."""
        return self.note is None


def masked_pixels(
    flux: npt.ArrayLike, ivar: npt.ArrayLike, andmask: npt.ArrayLike | None
) -> npt.NDArray[np.bool_]:
    """Pixels the fit gives no weight: ivar <= 0, non-finite values, or andmask != 0.

    >>> masked_pixels([1.0, 2.0, np.nan, 4.0], [1.0, 0.0, 1.0, 1.0], [0, 0, 0, 8]).tolist()
    [False, True, True, True]
    """
    f = np.asarray(flux, dtype=np.float64)
    iv = np.asarray(ivar, dtype=np.float64)
    good = np.isfinite(f) & np.isfinite(iv) & (iv > 0)
    if andmask is not None:
        good &= np.asarray(andmask) == 0
    return ~good


def find_record(
    catalog: Catalog, obsid: int | None = None, *, specid: str | None = None
) -> SpectrumRecord:
    """The current version of the spectrum with this obsid (or specid).

    Raises :class:`SpectrumLookupError` when none matches, or when several spectra share
    the obsid and no specid picks one.
    """
    hint = (
        f'list some with: lamostdb sql {catalog.root} "SELECT obsid, specid FROM spectra LIMIT 5"'
    )
    if specid is not None:
        specids = [specid]
    elif obsid is None:
        raise ValueError("give an obsid or a specid")
    else:
        specids = catalog.sql(statement("plot.sql", "specids_by_obsid"), {"obsid": int(obsid)})[
            "specid"
        ].to_list()
        if not specids:
            raise SpectrumLookupError(f"no spectrum with obsid {obsid} in {catalog.root}; {hint}")
        if len(specids) > 1:
            raise SpectrumLookupError(
                f"obsid {obsid} matches {len(specids)} spectra ({', '.join(specids)}); "
                "choose one with --specid (Python: specid=)"
            )
    try:
        record = catalog.spectrum(specid=specids[0])
    except KeyError:
        raise SpectrumLookupError(
            f"no spectrum with specid {specids[0]!r} in {catalog.root}; {hint}"
        ) from None
    if obsid is not None and record.obsid != obsid:
        raise SpectrumLookupError(
            f"spectrum {record.specid} has obsid {record.obsid}, not "
            f"{obsid}; give the obsid or the specid alone"
        )
    return record


def _opt_float(v: Any) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def catalogue_fit(catalog: Catalog, record: SpectrumRecord) -> FitSummary | None:
    """The catalogue's current result for this version of the spectrum, or None."""
    rows = catalog.sql(
        statement("plot.sql", "result_of_spectrum"),
        {"specid": record.specid, "source_sha256": record.source_sha256},
    )
    if rows.height == 0:
        return None
    r = rows.row(0, named=True)
    return FitSummary(
        objclass=r["class"],
        subclass=r["subclass"],
        template=r["template"],
        z=float(r["z"]),
        z_err=_opt_float(r["z_err"]),
        rchi2=float(r["rchi2"]),
        conf=_opt_float(r["conf"]),
        conf_blue=_opt_float(r["conf_blue"]),
        conf_red=_opt_float(r["conf_red"]),
        zwarning=None if r["zwarning"] is None else int(r["zwarning"]),
        refined=r["refined"],
        engine_version=r["engine_version"],
        continuum=r["continuum"],
    )


def _template_name(engine: Engine, objclass: str, template: int) -> str:
    # the names classify writes into results.template
    return engine.star.names[template] if template >= 0 else f"eigen:{objclass}"


def _refit_summary(engine: Engine, out: Classified) -> FitSummary:
    fit = out.fit
    cls = CLASS_CODES[int(fit.objclass[0, 0])]
    return FitSummary(
        objclass=cls,
        subclass=str(out.subclass[0, 0]),
        template=_template_name(engine, cls, int(fit.template[0, 0])),
        z=float(fit.z[0, 0]),
        z_err=_opt_float(fit.z_err[0, 0]),
        rchi2=float(fit.rchi2[0, 0]),
        conf=_opt_float(out.conf[0]),
        conf_blue=_opt_float(out.conf_blue[0]),
        conf_red=_opt_float(out.conf_red[0]),
        zwarning=int(out.zwarning[0]),
        refined=bool(out.refined[0]),
        engine_version=engine.version,
        continuum=engine.basis.source,
    )


def _candidates(
    engine: Engine, out: Classified, flux: F64, ivar: F64, n: int
) -> tuple[CandidateModel, ...]:
    """Models of candidates 2..n+1 of a one-spectrum fit (one batched least-squares solve)."""
    fit = out.fit
    ranks = [
        k
        for k in range(1, min(n + 1, fit.z.shape[1]))
        if np.isfinite(fit.z[0, k]) and np.isfinite(fit.rchi2[0, k])
    ]
    if not ranks:
        return ()
    cls = np.array([CLASS_CODES[int(fit.objclass[0, k])] for k in ranks])
    tpl = fit.template[0, ranks].astype(np.int64)
    f, w = weighted_inputs(
        engine, np.repeat(flux[None], len(ranks), 0), np.repeat(ivar[None], len(ranks), 0)
    )
    models = fit_models(engine, f, w, cls, tpl, fit.z[0, ranks]).model
    return tuple(
        CandidateModel(
            k,
            str(c),
            str(out.subclass[0, k]),
            _template_name(engine, str(c), int(t)),
            float(fit.z[0, k]),
            float(fit.rchi2[0, k]),
            models[i],
        )
        for i, (k, c, t) in enumerate(zip(ranks, cls, tpl, strict=True))
    )


def compare_fits(catalogue: FitSummary | None, refit: FitSummary) -> str | None:
    """None when the re-fit reproduces the catalogue's result, else why it does not.

    Examples
    --------
    >>> a = FitSummary("STAR", "G8", "t", 1e-4, 1e-5, 1.0, 0.9, 0.9, 0.9, 0, False, "0.2.0", "c")
    >>> compare_fits(a, a) is None
    True
    >>> from dataclasses import replace
    >>> compare_fits(replace(a, engine_version="0.1.0"), a).split(": ")[0]
    "the catalogue's result (STAR G8, z = 0.000100) is from engine 0.1.0"
    """
    shown = (
        f"the fit shown is a re-fit with engine {refit.engine_version}, not the catalogue's result"
    )
    if catalogue is None:
        return f"no result in the catalogue for this spectrum yet (run lamostdb classify): {shown}"
    if catalogue.engine_version != refit.engine_version:
        return (
            f"the catalogue's result ({catalogue.label()}) is from engine "
            f"{catalogue.engine_version}: {shown}"
        )
    dv_kms = abs(catalogue.z - refit.z) / (1.0 + catalogue.z) * C_KMS
    if (catalogue.objclass, catalogue.subclass) != (
        refit.objclass,
        refit.subclass,
    ) or dv_kms > Z_AGREE_KMS:
        return (
            f"the re-fit gives {refit.label()} but the catalogue has {catalogue.label()} "
            f"(other templates or continuum vectors: re-fit with the --templates and "
            f"--continuum the catalogue was classified with): {shown}"
        )
    if catalogue.continuum != refit.continuum:
        return (
            "the catalogue's result used other star continuum vectors "
            f"({catalogue.continuum!r}; re-fit with --continuum FILE): {shown}"
        )
    return None


def spectrum_plot_data(
    catalog: Catalog | str | Path,
    obsid: int | None = None,
    *,
    specid: str | None = None,
    n_candidates: int = 0,
    engine: Engine | None = None,
) -> SpectrumPlotData:
    """Find one spectrum, re-fit it and read the catalogue's result for it.

    Parameters
    ----------
    catalog
        An open :class:`~lamostdb.catalog.store.Catalog` or a catalogue folder.
    obsid, specid
        Which spectrum: an obsid, a specid, or both (the specid picks one of several
        spectra sharing an obsid).
    n_candidates
        Models of this many next-best candidates to add (0 to 9).
    engine
        The engine to re-fit with (default: ``get_engine()``, the shipped configuration;
        pass ``get_engine(EngineConfig(...))`` for the one the catalogue was classified with).
    """
    if not 0 <= n_candidates <= MAX_EXTRA_CANDIDATES:
        raise ValueError(
            f"n_candidates must be in 0..{MAX_EXTRA_CANDIDATES} (classify keeps "
            f"10 candidates), got {n_candidates}"
        )
    if not isinstance(catalog, Catalog):
        with open_catalog(catalog) as cat:
            return spectrum_plot_data(
                cat, obsid, specid=specid, n_candidates=n_candidates, engine=engine
            )
    record = find_record(catalog, obsid, specid=specid)
    stored = catalogue_fit(catalog, record)
    engine = engine or get_engine()
    wave = np.asarray(record.wave_angstrom(), dtype=np.float64)
    gf, gi = to_working_grid(
        wave,
        record.flux,
        record.ivar,
        record.andmask,
        coeff0=record.coeff0,
        coeff1=record.coeff1,
        grid=engine.grid,
    )
    flux, ivar = gf.astype(np.float64), gi.astype(np.float64)
    out = classify_arrays(
        flux[None], ivar[None], engine=engine, fibertype=np.array([record.fibertype], dtype=object)
    )
    refit = _refit_summary(engine, out)
    note = compare_fits(stored, refit)
    return SpectrumPlotData(
        record=record,
        wave_angstrom=wave,
        flux=record.flux.astype(np.float64),
        ivar=record.ivar.astype(np.float64),
        masked=masked_pixels(record.flux, record.ivar, record.andmask),
        grid_wave_angstrom=np.asarray(engine.grid.wave_angstrom),
        grid_flux=flux,
        grid_ivar=ivar,
        model=out.model[0],
        pixel_weight=engine.pixel_weight,
        sky_telluric_angstrom=SKY_TELLURIC_MASK_ANGSTROM,
        blue_window=BLUE_WINDOW,
        red_window=RED_WINDOW,
        shown=stored if note is None and stored is not None else refit,
        catalogue=stored,
        refit=refit,
        note=note,
        candidates=_candidates(engine, out, flux, ivar, n_candidates),
    )
