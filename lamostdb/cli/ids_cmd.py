"""``lamostdb ids``: assign object identifiers (UID, LID, GID) to every current spectrum."""

from __future__ import annotations

import argparse
from typing import Any

from lamostdb.catalog.store import Catalog
from lamostdb.cli.options import add_cluster_argument


def add_ids_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``ids`` subcommand to the ``lamostdb`` parser's subparsers."""
    s: argparse.ArgumentParser = subparsers.add_parser(
        "ids",
        help="assign object identifiers (UID, LID, GID) from the cross-match",
        description="Link spectra within --radius-arcsec of each other across all nights "
        "(friends-of-friends: LID), take each object's Gaia or PS1 counterpart from the "
        "cross-match (GID, unified position ura/udec) and derive its UID. Writes the objects "
        "table (views objects, lrs, mec); UIDs that change are kept in uid_aliases. Run "
        "`lamostdb xmatch` first. Re-running on unchanged input writes nothing.",
    )
    s.add_argument("catalog", help="catalogue folder")
    s.add_argument(
        "--radius-arcsec",
        type=float,
        default=3.0,
        help="friends-of-friends linking length between spectra (default 3)",
    )
    add_cluster_argument(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_ids)
    return s


def cmd_ids(args: argparse.Namespace) -> int:
    """Run the ids stage and print its summary."""
    from lamostdb.ids import assign_ids

    if not args.radius_arcsec > 0:
        raise ValueError(f"--radius-arcsec must be > 0, got {args.radius_arcsec}")
    with Catalog(args.catalog, mode="w") as cat:
        rep = assign_ids(
            cat, radius_arcsec=args.radius_arcsec, progress=not args.quiet, cluster=args.cluster
        )
    types = ", ".join(f"{v} {k}" for k, v in sorted(rep.gp_types.items()))
    state = f"run {rep.run_id}" if rep.committed else "nothing changed, no run written"
    print(
        f"{state}: {rep.n_spectra} spectra, {rep.n_objects} objects ({types or 'none'}), "
        f"{rep.n_lids} LAMOST groups; {rep.n_written} rows written, {rep.n_aliases} new "
        f"UID aliases ({rep.elapsed_s:.2f} s)"
    )
    return 0
