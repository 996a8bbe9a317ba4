"""``lamostdb xmatch CATALOG``: best Gaia and Pan-STARRS1 counterpart of every spectrum."""

from __future__ import annotations

import argparse
from typing import Any

from lamostdb.catalog.store import Catalog
from lamostdb.cli.options import add_cluster_argument


def add_xmatch_parser(subparsers: Any) -> None:
    """Add ``xmatch`` to the ``lamostdb`` subcommands."""
    s = subparsers.add_parser(
        "xmatch",
        help="cross-match spectra with Gaia and Pan-STARRS1",
        description="Find the nearest Gaia source (moved with its proper motion to the "
        "observation epoch) and the nearest Pan-STARRS1 object within the radius of every "
        "current spectrum not yet matched at this radius; store the separation, the number of "
        'candidates and an ambiguity flag (second candidate within max(1.5 x best, best + 1")) '
        "in the xmatch table. Load the reference tables first with `lamostdb refcat ingest`; "
        "a missing one leaves its columns null.",
    )
    s.add_argument("catalog", help="catalogue folder")
    s.add_argument(
        "--radius-arcsec", type=float, default=3.0, help="match radius in arcsec (default 3)"
    )
    s.add_argument(
        "--rerun",
        action="store_true",
        help="match every current spectrum again (e.g. after new reference rows)",
    )
    add_cluster_argument(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_xmatch)


def cmd_xmatch(args: argparse.Namespace) -> int:
    from lamostdb.xmatch import xmatch

    with Catalog(args.catalog, mode="w") as cat:
        rep = xmatch(
            cat,
            radius_arcsec=args.radius_arcsec,
            rerun=args.rerun,
            progress=not args.quiet,
            cluster=args.cluster,
        )
    if rep.n_todo == 0:
        print(
            f'nothing to do: every current spectrum is matched at {rep.radius_arcsec:g}" '
            "(use --rerun to match again)"
        )
        return 0
    matched = ", ".join(
        f"{k} {rep.n_matched[k]} ({rep.n_ambiguous[k]} ambiguous)" for k in rep.n_matched
    )
    print(
        f'run {rep.run_id}: {rep.n_todo} spectra matched within {rep.radius_arcsec:g}" in '
        f"{rep.elapsed_s:.1f} s; counterparts: {matched}"
    )
    if rep.missing_references:
        print(
            "no rows in " + ", ".join(rep.missing_references) + ": their columns are null; "
            "load them with `lamostdb refcat ingest CATALOG {gaia,ps1} FILE...` and run "
            "`lamostdb xmatch --rerun`"
        )
    return 0
