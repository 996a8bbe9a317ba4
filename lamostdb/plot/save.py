"""Writing spectrum figures to PNG files (through the I/O layer's atomic write)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lamostdb.catalog.store import Catalog
from lamostdb.io.parquet import atomic_write_bytes
from lamostdb.match.engine import Engine
from lamostdb.plot.data import SpectrumPlotData, spectrum_plot_data
from lamostdb.plot.figure import draw_spectrum, figure_png, require_matplotlib


@dataclass(frozen=True)
class WrittenPlot:
    """A PNG written by :func:`write_spectrum_png` and what it shows."""

    path: Path
    data: SpectrumPlotData


def default_png_name(data: SpectrumPlotData) -> str:
    """``<obsid>.png``, or ``<specid>.png`` for a spectrum without an obsid."""
    rec = data.record
    return f"{rec.obsid if rec.obsid is not None else rec.specid}.png"


def write_spectrum_png(
    catalog: Catalog | str | Path,
    obsid: int | None = None,
    *,
    specid: str | None = None,
    out: str | Path | None = None,
    n_candidates: int = 0,
    engine: Engine | None = None,
) -> WrittenPlot:
    """Draw one spectrum (see :func:`lamostdb.plot.spectrum_figure`) and write it as PNG.

    ``out`` defaults to ``<obsid>.png`` in the working directory. ``WrittenPlot.data.note``
    is None when the model drawn is the catalogue's result, else the reason it is a re-fit.
    """
    require_matplotlib()  # before the fit: fail fast
    data = spectrum_plot_data(
        catalog, obsid, specid=specid, n_candidates=n_candidates, engine=engine
    )
    path = Path(out) if out is not None else Path(default_png_name(data))
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: the output is a PNG file; give a name ending in .png")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent} is not a folder; create it first")
    atomic_write_bytes(path, figure_png(draw_spectrum(data)))
    return WrittenPlot(path, data)
