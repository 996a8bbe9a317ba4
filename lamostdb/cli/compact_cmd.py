"""``lamostdb compact CATALOG``: one file per leaf and leaves sized by row count."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lamostdb.catalog.compact import DEFAULT_MAX_ROWS, CompactReport, compact
from lamostdb.catalog.store import Catalog


def add_compact_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compact`` subcommand to the ``lamostdb`` parser's subparsers."""
    s: argparse.ArgumentParser = subparsers.add_parser(
        "compact",
        help="merge each table's small files and re-partition its leaves by rows",
        description="Rewrite every table as HATS catalogues are partitioned: rows cut into "
        "HEALPix leaves of at most --max-rows rows (a fuller leaf is split into its four "
        "children, sparse sky gets coarse leaves), one file per leaf, rows sorted by "
        "_healpix_29. Rows and query answers do not change. Each table is one atomic commit: "
        "a crash leaves it as before or as after, and running the command again finishes the "
        "work. Readers that opened the catalogue before keep reading it; replaced files are "
        "removed by a later compact once no reader snapshot lists them.",
    )
    s.add_argument("catalog", help="catalogue folder")
    s.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        help=f"most rows per leaf (default {DEFAULT_MAX_ROWS}; fewer for tables "
        "whose rows are big, such as spectra: at most 512 MiB per file)",
    )
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_compact)
    return s


def format_report(rep: CompactReport) -> str:
    """One line per table: files and leaves before -> after, and the leaf orders."""
    lines = []
    for t in rep.tables:
        orders = ", ".join(f"{n} at order {o}" for o, n in sorted(t.orders_after.items()))
        state = f"run {t.run_id}" if t.run_id else "already compact"
        lines.append(
            f"{t.table}: {t.n_rows} rows, {t.files_before} files in {t.leaves_before} "
            f"leaves -> {t.files_after} files in {t.leaves_after} leaves ({orders}; "
            f"{state})"
        )
    lines.append(
        f"files: {rep.files_before} -> {rep.files_after}; retired files removed: "
        f"{rep.n_retired_removed} ({rep.elapsed_s:.1f} s)"
    )
    return "\n".join(lines)


def cmd_compact(args: argparse.Namespace) -> int:
    """Compact the catalogue and print the report."""
    if args.max_rows < 1:
        raise ValueError(f"--max-rows must be >= 1, got {args.max_rows}")
    with Catalog(args.catalog, mode="w") as cat:
        rep = compact(cat, max_rows=args.max_rows)
    print(json.dumps(rep.as_dict(), indent=1, sort_keys=True) if args.json else format_report(rep))
    return 0
