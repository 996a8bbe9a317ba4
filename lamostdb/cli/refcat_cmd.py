"""``lamostdb refcat ingest CATALOG {gaia,ps1} FILE...``: reference catalogues into a catalogue."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lamostdb.catalog.store import DB_NAME, Catalog
from lamostdb.refcat import SUPPORTED_FORMATS, RefcatError, RefcatReport, ingest_refcat


def add_refcat_parser(subparsers: Any) -> None:
    """Add ``refcat`` (with the ``ingest`` action) to the ``lamostdb`` subcommands."""
    p = subparsers.add_parser(
        "refcat", help="reference catalogues (Gaia, Pan-STARRS1)",
        description="Manage the reference catalogues used for cross-matching.")
    actions = p.add_subparsers(dest="refcat_action", required=True, metavar="ACTION")
    s = actions.add_parser(
        "ingest", help="add Gaia or PS1 rows from files to the gaia / ps1 table",
        description="Read Gaia or Pan-STARRS1 rows from " + ", ".join(SUPPORTED_FORMATS)
        + " and store them in the catalogue's gaia or ps1 table (HEALPix-partitioned like "
        "spectra). Column names are mapped by lamostdb/refcat/column_map.json (Gaia archive, "
        "VizieR and MAST names); one file may feed both tables. Idempotent: a file already "
        "ingested into the table adds nothing; an id already stored is kept (first delivery "
        "wins). Rows without id or position are dropped and counted.")
    s.add_argument("catalog", help="catalogue folder (created if missing)")
    s.add_argument("kind", choices=("gaia", "ps1"), help="table to fill")
    s.add_argument("files", nargs="+", help="input files")
    s.add_argument("--column", action="append", default=[], metavar="TARGET=NAME",
                   help="use source column NAME for stored column TARGET (repeatable); "
                   "TARGET= (empty) means absent: null or the default (ref_epoch 2016.0). "
                   "Needed for joined tables where a name appears as NAME_1, NAME_x ...")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_refcat_ingest)


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
    columns = parse_columns(args.column)
    path = args.catalog
    cat = Catalog(path, mode="w") if (Path(path) / DB_NAME).exists() else Catalog.create(path)
    try:
        report = ingest_refcat(cat, args.kind, args.files, columns=columns,
                               progress=not args.quiet)
    except RefcatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        cat.close()
    print_report(report)
    return 0


def print_report(report: RefcatReport, file: Any = None) -> None:
    """The summary a user reads after ``refcat ingest``."""
    out = file or sys.stdout
    print(f"{report.kind}: {report.n_added} rows added from {report.n_files} file(s) "
          f"({report.n_unchanged} already ingested, {report.n_rows_read} rows read) "
          f"in run {report.run_id}", file=out)
    reasons = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in report.dropped.items() if n)
    print(f"  dropped: {report.n_dropped}" + (f" ({reasons})" if reasons else ""), file=out)
    print(f"  duplicate ids not stored: {report.n_duplicates_in_input} repeated in the input, "
          f"{report.n_already_stored} already in the catalogue (first delivery wins)", file=out)
    for fr in report.files:
        if fr.unchanged:
            print(f"  {fr.path}: already ingested, skipped", file=out)
            continue
        print(f"  {fr.path}: {fr.n_rows} read, {fr.n_added} added, {fr.n_dropped} dropped, "
              f"{fr.n_duplicates_in_input + fr.n_already_stored} duplicate", file=out)
        for note in fr.notes:
            print(f"    note: {note}", file=out)
