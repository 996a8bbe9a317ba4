"""``lamostdb refcat ingest CATALOG {gaia,ps1} FILE...``: reference catalogues into a catalogue;
``lamostdb refcat attach CATALOG {gaia,ps1} PATH``: use a HATS catalogue where it is."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamostdb.catalog.store import DB_NAME, Catalog
from lamostdb.refcat.kinds import SUPPORTED_FORMATS, RefcatError

if TYPE_CHECKING:
    from lamostdb.refcat.stage import RefcatReport


def add_refcat_parser(subparsers: Any) -> None:
    """Add ``refcat`` (with the ``ingest`` action) to the ``lamostdb`` subcommands."""
    p = subparsers.add_parser(
        "refcat",
        help="reference catalogues (Gaia, Pan-STARRS1)",
        description="Manage the reference catalogues used for cross-matching.",
    )
    actions = p.add_subparsers(dest="refcat_action", required=True, metavar="ACTION")
    s = actions.add_parser(
        "ingest",
        help="add Gaia or PS1 rows from files to the gaia / ps1 table",
        description="Read Gaia or Pan-STARRS1 rows from "
        + ", ".join(SUPPORTED_FORMATS)
        + " and store them in the catalogue's gaia or ps1 table (HEALPix-partitioned like "
        "spectra). Column names are mapped by lamostdb/refcat/column_map.json (Gaia archive, "
        "VizieR and MAST names); one file may feed both tables. Idempotent: a file already "
        "ingested into the table adds nothing; an id already stored is kept (first delivery "
        "wins). Rows without id or position are dropped and counted.",
    )
    s.add_argument("catalog", help="catalogue folder (created if missing)")
    s.add_argument("kind", choices=("gaia", "ps1"), help="table to fill")
    s.add_argument("files", nargs="+", help="input files")
    s.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="TARGET=NAME",
        help="use source column NAME for stored column TARGET (repeatable); "
        "TARGET= (empty) means absent: null or the default (ref_epoch 2016.0). "
        "Needed for joined tables where a name appears as NAME_1, NAME_x ...",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_refcat_ingest)
    a = actions.add_parser(
        "attach",
        help="use an existing HATS catalogue (hats-import, LSDB) as gaia / ps1",
        description="Register the HATS catalogue at PATH (as written by hats-import; Gaia DR3 "
        "and PS1 are distributed so for LSDB) as the catalogue's gaia or ps1 reference, "
        "without copying it. xmatch then reads, per spectra partition, only the overlapping "
        "reference partitions plus their margin: the HATS margin cache (found beside PATH, or "
        "--margin) when there is one, else the neighbouring partitions. Columns are mapped "
        "like `refcat ingest` (lamostdb/refcat/column_map.json); Gaia needs source_id, ra, dec, "
        "pmra, pmdec and ref_epoch, PS1 objID, raMean and decMean. Attaching again replaces "
        "the record; an attached catalogue is used instead of ingested rows.",
    )
    a.add_argument("catalog", help="catalogue folder (created if missing)")
    a.add_argument("kind", choices=("gaia", "ps1"), help="reference it stands for")
    a.add_argument("path", help="HATS catalogue folder (holds partition_info.csv)")
    a.add_argument(
        "--margin",
        default=None,
        metavar="PATH",
        help="its margin cache (default: a margin catalogue beside PATH, if any)",
    )
    a.add_argument(
        "--no-margin",
        action="store_true",
        help="do not look for a margin cache (read neighbouring partitions)",
    )
    a.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="TARGET=NAME",
        help="use catalogue column NAME for stored column TARGET (repeatable)",
    )
    a.set_defaults(func=cmd_refcat_attach)


def parse_columns(items: list[str]) -> dict[str, str | None]:
    """``["ra=RAJ2000_x", "ref_epoch="]`` -> ``{"ra": "RAJ2000_x", "ref_epoch": None}``."""
    out: dict[str, str | None] = {}
    for item in items:
        target, sep, name = item.partition("=")
        if not sep or not target:
            raise RefcatError(f"--column {item!r}: expected TARGET=NAME (or TARGET= for absent)")
        out[target.strip()] = name.strip() or None
    return out


def cmd_refcat_ingest(args: argparse.Namespace) -> int:
    from lamostdb.refcat.stage import ingest_refcat

    columns = parse_columns(args.column)
    path = args.catalog
    cat = Catalog(path, mode="w") if (Path(path) / DB_NAME).exists() else Catalog.create(path)
    try:
        report = ingest_refcat(cat, args.kind, args.files, columns=columns, progress=not args.quiet)
    except RefcatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        cat.close()
    print_report(report)
    return 0


def cmd_refcat_attach(args: argparse.Namespace) -> int:
    from lamostdb.refcat.hats import attach_hats

    columns = parse_columns(args.column)
    path = args.catalog
    cat = Catalog(path, mode="w") if (Path(path) / DB_NAME).exists() else Catalog.create(path)
    try:
        rec = attach_hats(
            cat,
            args.kind,
            args.path,
            margin=args.margin,
            find_margin=not args.no_margin,
            columns=columns,
        )
    except RefcatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        cat.close()
    print(
        f"{rec.kind}: attached {rec.path} ({rec.n_rows} rows in {rec.n_partitions} "
        "partitions, not copied)"
    )
    print(
        "  margin cache: "
        + (
            f'{rec.margin} ({rec.margin_threshold_arcsec:g}")'
            if rec.margin
            else "none (neighbouring partitions are read)"
        )
    )
    for note in rec.notes:
        print(f"  note: {note}")
    return 0


def print_report(report: RefcatReport, file: Any = None) -> None:
    """The summary a user reads after ``refcat ingest``."""
    out = file or sys.stdout
    print(
        f"{report.kind}: {report.n_added} rows added from {report.n_files} file(s) "
        f"({report.n_unchanged} already ingested, {report.n_rows_read} rows read) "
        f"in run {report.run_id}",
        file=out,
    )
    reasons = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in report.dropped.items() if n)
    print(f"  dropped: {report.n_dropped}" + (f" ({reasons})" if reasons else ""), file=out)
    print(
        f"  duplicate ids not stored: {report.n_duplicates_in_input} repeated in the input, "
        f"{report.n_already_stored} already in the catalogue (first delivery wins)",
        file=out,
    )
    for fr in report.files:
        if fr.unchanged:
            print(f"  {fr.path}: already ingested, skipped", file=out)
            continue
        print(
            f"  {fr.path}: {fr.n_rows} read, {fr.n_added} added, {fr.n_dropped} dropped, "
            f"{fr.n_duplicates_in_input + fr.n_already_stored} duplicate",
            file=out,
        )
        for note in fr.notes:
            print(f"    note: {note}", file=out)
