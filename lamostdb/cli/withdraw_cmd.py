"""``lamostdb withdraw``: take stored spectra out of the catalogue, atomically and audited."""

from __future__ import annotations

import argparse
from typing import Any

from lamostdb.catalog.store import Catalog


def add_withdraw_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``withdraw`` subcommand to the ``lamostdb`` parser's subparsers."""
    s: argparse.ArgumentParser = subparsers.add_parser(
        "withdraw",
        help="withdraw stored spectra (audited; every view and stage skips them)",
        description="Withdraw the current version of each SPECID: it leaves the spectra, "
        "results, xmatch, objects, lrs and mec views and is skipped by classify, xmatch, ids "
        "and export. Nothing is deleted: the rows stay in spectra_history and the withdrawal "
        "is recorded in the withdrawn table (reason, who, run). All or nothing: an unknown "
        "SPECID is an error and nothing is written. Ingesting the same bytes again does not "
        "bring a withdrawn spectrum back; a corrected file (other bytes) is a new version.",
    )
    s.add_argument("catalog", help="catalogue folder")
    s.add_argument("specids", nargs="+", metavar="SPECID", help="spectra to withdraw")
    s.add_argument("--reason", required=True, help="why (kept in the withdrawn table)")
    s.set_defaults(func=cmd_withdraw)
    return s


def cmd_withdraw(args: argparse.Namespace) -> int:
    """Withdraw the spectra and print what was done."""
    from lamostdb.catalog.withdraw import default_actor, withdraw

    with Catalog(args.catalog, mode="w") as cat:
        rep = withdraw(cat, args.specids, reason=args.reason, by=default_actor("lamostdb withdraw"))
    if rep.withdrawn:
        print(
            f"run {rep.run_id}: withdrew {len(rep.withdrawn)} spectra: " + ", ".join(rep.withdrawn)
        )
    if rep.already:
        print(f"already withdrawn (unchanged): {', '.join(rep.already)}")
    return 0
