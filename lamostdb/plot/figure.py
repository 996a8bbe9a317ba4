"""The spectrum figure: flux and best-fit model, residuals, masks and confidence windows.

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot state, so
it works in scripts, servers and notebooks alike). matplotlib is optional
(``pip install 'lamostdb[plot]'``) and imported only when a figure is drawn.

Artists the tests (and users) can find by ``gid``: ``flux``, ``flux_all``, ``noise``,
``model`` (all pixels), ``model_fitted`` (pixels with weight), ``candidate-<rank>``,
``masked_pixels``, ``sky_telluric``, ``window_blue``, ``window_red`` (upper panel);
``residual`` (lower panel).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from lamostdb.match.zwarning import describe
from lamostdb.plot.data import C_KMS, SpectrumPlotData
from lamostdb.templates.rebin import edges_from_centers_log

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

#: Figure size (inches) and resolution: the PNG is 1300 x 720 pixels.
FIGSIZE_IN = (13.0, 7.2)
DPI = 100
#: Median filter width (pixels) of the flux used for the y-limits.
SMOOTH_PIXELS = 15
#: ... counted only where its standard error is below this fraction of the typical flux.
SMOOTH_REL_NOISE = 0.2
#: Residual lines drawn at +-this many sigma.
RESID_SIGMA = 5.0
PLOT_HINT = "plotting needs matplotlib: pip install 'lamostdb[plot]'"
_CANDIDATE_COLOURS = (
    "tab:blue",
    "tab:green",
    "tab:purple",
    "tab:brown",
    "tab:olive",
    "tab:cyan",
    "tab:pink",
    "tab:gray",
    "goldenrod",
)
_MODEL_COLOUR = "crimson"
_WINDOW_COLOURS = {"blue": ("#1f5fbf", "navy"), "red": ("#d0342c", "darkred")}


class MatplotlibMissingError(ImportError):
    """matplotlib is not installed; the message says how to install it."""


def require_matplotlib() -> None:
    """Raise :class:`MatplotlibMissingError` unless matplotlib can be imported."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError as exc:
        raise MatplotlibMissingError(PLOT_HINT) from exc


def pixel_runs(mask: npt.ArrayLike) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of the runs of True in a boolean array.

    >>> pixel_runs([False, True, True, False, True])
    [(1, 3), (4, 5)]
    """
    m = np.asarray(mask, dtype=np.int8)
    d = np.diff(np.concatenate([[0], m, [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _spans(ax: Axes, ranges: Sequence[tuple[float, float]], **style: Any) -> PolyCollection:
    """Full-height bands over wavelength ranges, as one collection."""
    from matplotlib.collections import PolyCollection

    verts = [[(lo, 0.0), (lo, 1.0), (hi, 1.0), (hi, 0.0)] for lo, hi in ranges]
    coll = PolyCollection(verts, transform=ax.get_xaxis_transform(), **style)
    ax.add_collection(coll, autolim=False)
    return coll


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def _title(data: SpectrumPlotData) -> str:
    r, s = data.record, data.shown
    who = f"obsid {r.obsid}" if r.obsid is not None else "no obsid"
    line1 = f"{who} · {r.specid} · {s.objclass} {s.subclass} · z = {s.z:.6f}"
    if s.z_err is not None:
        line1 += f" ± {s.z_err:.6f}"
    if s.rv_kms is not None:
        err = "" if s.z_err is None else f" ± {s.z_err * C_KMS:.1f}"
        line1 += f"  (v = {s.rv_kms:.1f}{err} km/s)"
    conf = (
        "Conf n/a"
        if s.conf is None
        else f"Conf {s.conf:.2f} (f(B) {_fmt(s.conf_blue)}, f(R) {_fmt(s.conf_red)})"
    )
    if s.zwarning is None:
        zw = "ZWARNING n/a"
    else:
        zw = f"ZWARNING {s.zwarning}" + (
            f" ({', '.join(describe(s.zwarning))})" if s.zwarning else " (none)"
        )
    line2 = f"{conf} · {zw}"
    line3 = (
        f"template {s.template} · rχ² {s.rchi2:.3f}"
        + (" · polynomial re-match" if s.refined else "")
        + f" · engine {s.engine_version} "
        + ("(the catalogue's result)" if data.is_catalogue_result else "(re-fit)")
    )
    if r.lasp_class:
        lasp_z = "" if r.lasp_z is None else f", z = {r.lasp_z:.6f}"
        line3 += f" · {r.survey} pipeline: {r.lasp_class} {r.lasp_subclass or ''}{lasp_z}"
    if r.snrg is not None:
        line3 += f" · S/N g {r.snrg:.1f}"
    return "\n".join((line1, line2, line3))


def _flux_limits(data: SpectrumPlotData) -> tuple[float, float]:
    """Robust y-limits: the range of the median-smoothed flux and of the model.

    The flux is median-filtered over :data:`SMOOTH_PIXELS` pixels, which takes out cosmic
    rays, bad pixels and most of the noise, and only where the smoothed flux is known to
    better than :data:`SMOOTH_REL_NOISE` of the spectrum's typical level (LAMOST's noisy
    blue and red edges would otherwise set the scale). The model spans the real emission
    and absorption lines, so they stay on the axes. Zero stays on the axis, with the noise.
    """
    from scipy.ndimage import median_filter

    good = ~data.masked
    if not good.any():
        return -1.0, 1.0
    size = min(SMOOTH_PIXELS, int(good.sum()))
    smooth = median_filter(data.flux[good], size=size, mode="nearest")
    # 1.2533: the standard error of a median is sqrt(pi/2) times that of a mean
    smooth_sigma = (
        1.2533 * median_filter(data.ivar[good] ** -0.5, size=size, mode="nearest") / np.sqrt(size)
    )
    reliable = smooth_sigma < SMOOTH_REL_NOISE * np.median(np.abs(smooth))
    if reliable.sum() >= 0.1 * smooth.size:
        smooth = smooth[reliable]
    lo, hi = float(smooth.min()), float(smooth.max())
    weighted = (data.grid_ivar > 0) & (data.pixel_weight > 0)
    if weighted.any():
        lo = min(lo, float(data.model[weighted].min()))
        hi = max(hi, float(data.model[weighted].max()))
    lo = min(lo, 0.0)
    span = hi - lo or abs(hi) or 1.0
    return lo - 0.04 * span, hi + 0.16 * span  # headroom for the window labels


def _x_limits(data: SpectrumPlotData) -> tuple[float, float]:
    finite = np.isfinite(data.flux)
    wave = data.wave_angstrom[finite] if finite.any() else data.wave_angstrom
    pad = 0.005 * float(wave[-1] - wave[0])
    return float(wave[0]) - pad, float(wave[-1]) + pad


def _shade_masks(
    ax: Axes, data: SpectrumPlotData, edges: npt.NDArray[np.float64], *, labelled: bool
) -> None:
    masked = [(float(edges[a]), float(edges[b])) for a, b in pixel_runs(data.masked)]
    _spans(
        ax,
        masked,
        facecolor="0.55",
        alpha=0.35,
        linewidth=0,
        zorder=0.5,
        gid="masked_pixels",
        label="masked pixels (ivar = 0 or ANDMASK ≠ 0)" if labelled else None,
    )
    _spans(
        ax,
        data.sky_telluric_angstrom,
        facecolor=(0.4, 0.6, 0.4, 0.10),
        edgecolor=(0.3, 0.5, 0.3, 0.45),
        hatch="////",
        linewidth=0,
        zorder=0.4,
        gid="sky_telluric",
        label="sky / telluric ranges (no weight)" if labelled else None,
    )


def _windows(ax: Axes, data: SpectrumPlotData, *, labelled: bool) -> None:
    s = data.shown
    for name, (lo, hi), score, tag in (
        ("blue", data.blue_window, s.conf_blue, "f(B)"),
        ("red", data.red_window, s.conf_red, "f(R)"),
    ):
        face, text = _WINDOW_COLOURS[name]
        ax.axvspan(
            lo, hi, facecolor=face, alpha=0.07, linewidth=0, zorder=0.3, gid=f"window_{name}"
        )
        if labelled:
            ax.text(
                (lo + hi) / 2,
                0.975,
                f"{name} window · {tag} = {_fmt(score)}",
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize=9,
                color=text,
                fontweight="bold",
                bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.5},
            )


def _flux_panel(ax: Axes, data: SpectrumPlotData) -> None:
    """Flux, noise, candidates and model, with robust limits (masks drawn already)."""
    wave = data.wave_angstrom
    good = ~data.masked
    noise = np.full(wave.shape, np.nan)
    noise[good] = data.ivar[good] ** -0.5
    ax.plot(
        wave,
        data.flux,
        drawstyle="steps-mid",
        color="0.7",
        lw=0.5,
        gid="flux_all",
        label="flux at masked pixels",
    )
    ax.plot(
        wave,
        np.where(good, data.flux, np.nan),
        drawstyle="steps-mid",
        color="black",
        lw=0.6,
        gid="flux",
        label="flux",
    )
    ax.plot(
        wave,
        noise,
        drawstyle="steps-mid",
        color="tab:purple",
        lw=0.6,
        alpha=0.8,
        gid="noise",
        label="1σ noise",
    )
    for i, cand in enumerate(data.candidates):
        ax.plot(
            data.grid_wave_angstrom,
            cand.model,
            color=_CANDIDATE_COLOURS[i],
            lw=0.8,
            ls="--",
            alpha=0.85,
            gid=f"candidate-{cand.rank}",
            label=f"#{cand.rank + 1} {cand.objclass} {cand.subclass} z = {cand.z:.5f} "
            f"(rχ² {cand.rchi2:.3f})",
        )
    s = data.shown
    # the whole model pale, and bright where the fit had weight: in the sky/telluric ranges
    # and at masked pixels nothing held the model to the data
    fitted = (data.grid_ivar > 0) & (data.pixel_weight > 0)
    ax.plot(
        data.grid_wave_angstrom, data.model, color=_MODEL_COLOUR, lw=0.8, alpha=0.35, gid="model"
    )
    ax.plot(
        data.grid_wave_angstrom,
        np.where(fitted, data.model, np.nan),
        color=_MODEL_COLOUR,
        lw=1.0,
        gid="model_fitted",
        label=f"best fit: {s.objclass} {s.subclass} ({s.template}); pale: no weight",
    )
    ax.set_ylim(*_flux_limits(data))
    ax.set_xlim(*_x_limits(data))
    ax.set_ylabel("flux (as stored)")
    if data.note:
        ax.set_title(f"⚠ {data.note}", loc="left", fontsize=9, color="crimson", wrap=True)


def _residual_panel(ax: Axes, data: SpectrumPlotData) -> None:
    """(flux - model) * sqrt(ivar) on the working grid, +-RESID_SIGMA lines."""
    with np.errstate(invalid="ignore"):
        resid = np.where(
            data.grid_ivar > 0, (data.grid_flux - data.model) * np.sqrt(data.grid_ivar), np.nan
        )
    ax.plot(
        data.grid_wave_angstrom, resid, drawstyle="steps-mid", color="black", lw=0.5, gid="residual"
    )
    ax.axhline(0.0, color="0.5", lw=0.6)
    for sign in (-1, 1):
        ax.axhline(sign * RESID_SIGMA, color=_MODEL_COLOUR, lw=0.8, ls="--")
    # the scale: the 99.5th percentile of the fitted pixels, at least +-6 sigma, at most 50
    fitted = np.isfinite(resid) & (data.pixel_weight > 0)
    limit = 2 * RESID_SIGMA
    if fitted.any():
        limit = float(
            np.clip(1.15 * np.percentile(np.abs(resid[fitted]), 99.5), 1.2 * RESID_SIGMA, 50.0)
        )
        beyond = int((np.abs(resid[fitted]) > limit).sum())
        if beyond:
            ax.text(
                0.005,
                0.04,
                f"{beyond} pixel(s) beyond ±{limit:.0f}σ",
                fontsize=8,
                transform=ax.transAxes,
                color="0.3",
            )
    ax.set_ylim(-limit, limit)
    ax.set_ylabel("(flux − model)·√ivar")
    ax.set_xlabel("vacuum wavelength (Å)")


def draw_spectrum(data: SpectrumPlotData) -> Figure:
    """The figure of one spectrum (see :func:`lamostdb.plot.spectrum_figure`)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax, rax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    edges = edges_from_centers_log(data.wave_angstrom)
    for a, labelled in ((ax, True), (rax, False)):
        _shade_masks(a, data, edges, labelled=labelled)
        _windows(a, data, labelled=labelled)
    _flux_panel(ax, data)
    _residual_panel(rax, data)
    fig.suptitle(_title(data), fontsize=10.5)
    fig.legend(
        *ax.get_legend_handles_labels(),
        loc="outside lower center",
        ncols=4,
        fontsize=8,
        frameon=False,
    )
    return fig


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of a figure (no date or software metadata: same figure, same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
