"""``lamostdb export CATALOG OUT --release NAME``: write a data release (FITS + manifest)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lamostdb.catalog.store import Catalog
from lamostdb.cli.exits import EXIT_INCOMPLETE
from lamostdb.cli.options import add_cluster_argument
from lamostdb.export.stage import DEFAULT_BATCH_SIZE


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to the ``lamostdb`` parser's subparsers."""
    s: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="write a data release: FITS catalogue tables, one FITS file per spectrum, manifest",
        description="Write a data release of the catalogue into the new folder OUT: lrs.fits "
        "and mec.fits (the general and multiple-epoch catalogues as FITS binary tables with "
        "units, descriptions, display formats, nulls and checksums), spectra/<night>/<plan>/"
        "spec-<specid>.fits (DR9 layout: primary keys + COADD table, carrying lamostdb's "
        "classification and UID), manifest.json (files, rows, sha256, versions, query) and "
        "SHA256SUMS. Needs classify, xmatch and ids to have run. The catalogue is only read.",
        epilog="--where is SQL typed by you and pasted into the selection query as it is "
        "(trusted, like a query of `lamostdb sql`); it is a condition over the columns of the "
        "lrs view, e.g. --where \"class = 'QSO' AND snrg > 10\".",
    )
    s.add_argument("catalog", help="catalogue folder")
    s.add_argument("out", help="release folder to create (must not exist, or be empty)")
    s.add_argument(
        "--release",
        required=True,
        metavar="NAME",
        help="release name, written into every file header and the manifest",
    )
    s.add_argument(
        "--where",
        metavar="SQL",
        help="export only the spectra for which this SQL condition over lrs "
        "columns holds (trusted SQL fragment)",
    )
    s.add_argument(
        "--no-spectra",
        "--catalog-only",
        dest="spectra",
        action="store_false",
        help="write the catalogue tables and manifest only, no spectrum files",
    )
    s.add_argument("--gzip", action="store_true", help="gzip the spectrum files (.fits.gz)")
    s.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"rows per Arrow batch, i.e. what memory holds at a time "
        f"(default {DEFAULT_BATCH_SIZE})",
    )
    add_cluster_argument(s)
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_export)
    return s


def cmd_export(args: argparse.Namespace) -> int:
    """Run the export and print its summary."""
    from lamostdb.export import export_release

    with Catalog(args.catalog) as cat:
        rep = export_release(
            cat,
            args.out,
            release=args.release,
            where=args.where,
            spectra=args.spectra,
            batch_size=args.batch_size,
            gzip=args.gzip,
            progress=not args.quiet,
            cluster=args.cluster,
        )
    n_written = rep.n_spectra - len(rep.not_written)
    spectra = f"{n_written} spectrum files, " if args.spectra else ""
    print(
        f"release {rep.release!r} in {rep.out}: {spectra}lrs {rep.n_lrs_rows} rows, "
        f"mec {rep.n_mec_rows} rows; {rep.n_files} files, {rep.nbytes / 1e6:.1f} MB in "
        f"{rep.elapsed_s:.1f} s (manifest.json, SHA256SUMS)"
    )
    if rep.unclean_header_cards:
        keys = ", ".join(f"{k} x{n}" for k, n in list(rep.unclean_header_cards.items())[:10])
        print(
            f"original header cards not copied because they break the FITS standard "
            f"(the catalogue keeps them): {keys}"
        )
    if rep.not_written:
        print(
            f"warning: {len(rep.not_written)} of the {rep.n_spectra} spectra were left out "
            "of the release (listed under not_written in manifest.json); withdraw them "
            "(`lamostdb withdraw`) or leave them out with --where:",
            file=sys.stderr,
        )
        for _specid, reason in rep.not_written[:20]:
            print(f"  not written: {reason}", file=sys.stderr)
        if len(rep.not_written) > 20:
            print(f"  ... and {len(rep.not_written) - 20} more", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0
