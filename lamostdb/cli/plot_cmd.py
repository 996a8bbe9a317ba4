"""``lamostdb plot CATALOG OBSID``: a PNG of one spectrum with its best-fit model."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _obsid(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an obsid (an integer); for a spectrum key such as "
            "55859-F5902_sp01-001 use --specid"
        ) from None


def _n_candidates(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 9:
        raise argparse.ArgumentTypeError(f"{n}: give 0 to 9 (classify keeps 10 candidates)")
    return n


def add_plot_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``plot`` subcommand to the ``lamostdb`` parser's subparsers."""
    s: argparse.ArgumentParser = subparsers.add_parser(
        "plot",
        help="PNG of one spectrum with its best-fit model and residuals",
        description="Draw one spectrum with its best-fit model (upper panel: flux, 1-sigma "
        "noise, model, masked pixels shaded grey, sky/telluric ranges hatched, the blue and "
        "red windows of the confidence estimate with f(B) and f(R)) and the residuals "
        "(flux - model)*sqrt(ivar) with +-5 sigma lines; the title gives class, subclass, "
        "z +- z_err (v for stars), Conf, ZWARNING names, template and engine version. The "
        "model is rebuilt by re-fitting the stored spectrum; when the re-fit does not "
        "reproduce the catalogue's result (other engine version, no result yet) the figure "
        "and a warning say so. Needs matplotlib (pip install 'lamostdb[plot]').",
    )
    s.add_argument("catalog", help="catalogue folder")
    s.add_argument(
        "obsid",
        nargs="?",
        type=_obsid,
        help="LAMOST obsid of the spectrum (or leave out and give --specid)",
    )
    s.add_argument(
        "--specid",
        help="spectrum key LMJD-PLANID_spSS-FFF: picks one of several "
        "spectra sharing an obsid, or a spectrum without one",
    )
    s.add_argument("--out", help="PNG file to write (default <obsid>.png, or <specid>.png)")
    s.add_argument(
        "--candidates",
        type=_n_candidates,
        default=0,
        metavar="N",
        help="also draw the models of the next N candidates (0-9, default 0)",
    )
    s.add_argument(
        "--templates",
        nargs="+",
        metavar="FILE_OR_DIR",
        help="re-fit with these added templates (as classify --templates)",
    )
    s.add_argument("--continuum", help="re-fit with these continuum vectors (as classify)")
    s.add_argument("--confidence", help="re-fit with these confidence parameters (as classify)")
    s.set_defaults(func=cmd_plot)
    return s


def cmd_plot(args: argparse.Namespace) -> int:
    """Write the PNG; warn on stderr when the model is not the catalogue's result."""
    from lamostdb.cli.commands import engine_config
    from lamostdb.match.engine import get_engine
    from lamostdb.plot import MatplotlibMissingError, write_spectrum_png

    if args.obsid is None and args.specid is None:
        raise ValueError(
            "give an OBSID or --specid; list some with: lamostdb sql "
            f'{args.catalog} "SELECT obsid, specid FROM spectra LIMIT 5"'
        )
    try:
        written = write_spectrum_png(
            args.catalog,
            args.obsid,
            specid=args.specid,
            out=args.out,
            n_candidates=args.candidates,
            engine=get_engine(engine_config(args)),
        )
    except MatplotlibMissingError as exc:
        print(f"lamostdb plot: error: {exc}", file=sys.stderr)
        return 2
    if written.data.note:
        print(f"lamostdb plot: warning: {written.data.note}", file=sys.stderr)
    s = written.data.shown
    print(f"{written.path}: {written.data.record.specid} {s.objclass} {s.subclass} z = {s.z:.6f}")
    return 0
