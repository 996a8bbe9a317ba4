"""Plots of single spectra: the data, the best-fit model, residuals, masks, windows.

::

    from lamostdb.plot import spectrum_figure
    fig = spectrum_figure("cat", 101001)     # a catalogue folder (or an open Catalog), an obsid
    fig.savefig("101001.png")

The model is not stored in the catalogue: it is rebuilt by re-fitting the stored spectrum
with the engine, which reproduces the catalogue's result when the engine version (and
continuum vectors and templates) are the same; otherwise the figure says it shows a re-fit.
Modules: ``data`` (look-up and re-fit, no matplotlib), ``figure`` (drawing), ``save``
(PNG files). matplotlib is optional: ``pip install 'lamostdb[plot]'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lamostdb.plot.data import (
    FitSummary,
    SpectrumLookupError,
    SpectrumPlotData,
    spectrum_plot_data,
)
from lamostdb.plot.figure import (
    PLOT_HINT,
    MatplotlibMissingError,
    draw_spectrum,
    figure_png,
    require_matplotlib,
)
from lamostdb.plot.save import WrittenPlot, write_spectrum_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lamostdb.catalog.store import Catalog
    from lamostdb.match.engine import Engine

__all__ = [
    "PLOT_HINT",
    "FitSummary",
    "MatplotlibMissingError",
    "SpectrumLookupError",
    "SpectrumPlotData",
    "WrittenPlot",
    "draw_spectrum",
    "figure_png",
    "spectrum_figure",
    "spectrum_plot_data",
    "write_spectrum_png",
]


def spectrum_figure(
    catalog: Catalog | str | Path,
    obsid: int | None = None,
    *,
    specid: str | None = None,
    n_candidates: int = 0,
    engine: Engine | None = None,
) -> Figure:
    """A figure of one spectrum with its best-fit model.

    Upper panel: the flux (masked pixels grey and shaded), its 1-sigma noise, the best-fit
    model and optionally the next ``n_candidates`` candidates' models, the sky/telluric
    ranges the fit ignores (hatched) and the blue and red windows of the confidence estimate
    with their scores f(B), f(R). Lower panel: (flux - model) * sqrt(ivar) with +-5 sigma
    lines. Title: obsid, class/subclass, z +- z_err (and v for stars), Conf, ZWARNING
    names, template, engine version, the survey pipeline's own label.

    Parameters
    ----------
    catalog
        An open catalogue or a catalogue folder.
    obsid, specid
        Which spectrum; ``specid`` picks one of several spectra that share an obsid.
    n_candidates
        Next-best candidates to overlay (0-9).
    engine
        Engine for the re-fit (default ``lamostdb.match.engine.get_engine()``).

    Returns
    -------
    matplotlib.figure.Figure
        On an Agg canvas (no pyplot): ``fig.savefig("x.png")`` works anywhere.

    Raises
    ------
    MatplotlibMissingError
        matplotlib is not installed.
    SpectrumLookupError
        No spectrum with that obsid/specid, or several share the obsid.
    """
    require_matplotlib()
    return draw_spectrum(
        spectrum_plot_data(catalog, obsid, specid=specid, n_candidates=n_candidates, engine=engine)
    )
