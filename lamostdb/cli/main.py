"""The ``lamostdb`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lamostdb import __version__
from lamostdb.cli.options import add_cluster_argument, add_engine_arguments, engine_config


def build_parser() -> argparse.ArgumentParser:
    from lamostdb.cli import commands

    p = argparse.ArgumentParser(
        prog="lamostdb",
        description="Columnar catalogue of LAMOST low-resolution spectra: ingest FITS files "
        "into HEALPix-partitioned Parquet, query with SQL, simulate nights.",
    )
    p.add_argument("--version", action="version", version=f"lamostdb {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "ingest",
        help="add spectrum files (a night, folders, globs) to a catalogue",
        description="Ingest LAMOST (DR1-DR9+) and SDSS spectrum files. Creates the "
        "catalogue folder if needed. Incremental and idempotent: files already in "
        "are skipped; unreadable files are quarantined with the reason.",
    )
    s.add_argument("catalog", help="catalogue folder (created if missing)")
    s.add_argument("paths", nargs="+", help="files, folders (searched recursively) or globs")
    s.add_argument("--workers", type=int, default=None, help="reader processes (default: cores)")
    s.add_argument("--chunk-size", type=int, default=500, help="files per work unit (memory)")
    s.add_argument(
        "--order",
        type=int,
        default=None,
        help="HEALPix partition order of a new catalogue (default 4)",
    )
    add_cluster_argument(s)
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=commands.cmd_ingest)

    s = sub.add_parser(
        "sql",
        help="run a read-only SQL query over a catalogue",
        description="Run one read-only query (SELECT) over the catalogue's "
        "tables and views (spectra, spectra_history, quarantine, ingest_ledger, "
        "ingest_paths, spectrum_versions, withdrawn, runs). Bind values with "
        "--param NAME=VALUE and $NAME in the query. Statements that write or "
        "change settings (COPY, EXPORT, INSTALL, LOAD, ATTACH, SET, PRAGMA, "
        "CREATE, ...) are refused, and files outside the catalogue cannot be read "
        "unless --allow-files names their folder. Runs on the last committed "
        "state, never waiting for a writer.",
    )
    s.add_argument("catalog")
    s.add_argument("query")
    s.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="bound parameter (repeatable); numbers are typed automatically",
    )
    s.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    s.add_argument("--output", help="write to this file instead of standard output")
    s.add_argument("--max-rows", type=int, default=50, help="rows shown in table format")
    s.add_argument(
        "--allow-files",
        action="append",
        default=[],
        metavar="DIR",
        help="let the query read local files in DIR (read_csv, read_parquet, ...; "
        "repeatable); by default it reads the catalogue only",
    )
    s.set_defaults(func=commands.cmd_sql)

    s = sub.add_parser(
        "simulate",
        help="write a simulated LAMOST night (FITS + truth + mock Gaia/PS1)",
        description="Write a LAMOST-like night as real FITS files from the shipped "
        "templates, with a truth table and mock Gaia DR3 / Pan-STARRS1 catalogues. "
        "Same seed, same bytes.",
    )
    s.add_argument("out", help="output folder")
    s.add_argument("--n", type=int, default=4000, help="number of spectra")
    s.add_argument("--seed", type=int, default=1, help="night seed (0..89999)")
    s.add_argument("--layout", choices=("mixed", "dr9", "dr5"), default="mixed")
    s.add_argument("--gzip", action="store_true", help="gzip the FITS files")
    s.add_argument("--arm-mismatch-max", type=float, default=0.15)
    s.add_argument("--tilt-max", type=float, default=0.30)
    s.add_argument(
        "--artefacts",
        nargs="?",
        type=float,
        const=-1.0,
        default=None,
        metavar="RATE",
        help="add LAMOST arm-join and red-arm artefacts (flux step of up to 5x at "
        "the join, spike/dip at the join, broad red bump), recorded in the truth "
        "table's art_* columns; RATE is the fraction of spectra given each one "
        "(e.g. 0.2 for a severe night); without RATE, the default mix of "
        "lamostdb.sim.Artefacts (4 %% steps, 3 %% spikes, 4 %% bumps)",
    )
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=commands.cmd_simulate)

    s = sub.add_parser(
        "classify",
        help="classify spectra and measure redshifts (chi-square template matching)",
        description="Fit every current spectrum without a result of this engine "
        "version against the star templates (with continuum adjustment) and the "
        "galaxy/QSO eigen-bases; write the results and candidates tables.",
    )
    s.add_argument("catalog")
    s.add_argument("--rerun", action="store_true", help="fit all current spectra again")
    add_engine_arguments(s)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=commands.cmd_classify)

    s = sub.add_parser(
        "templates",
        help="list templates; learn continuum vectors; build star templates from labelled spectra",
    )
    tsub = s.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    t = tsub.add_parser("list", help="show the template library")
    t.add_argument("--stars", action="store_true", help="list every star template and subclass")
    t.add_argument(
        "files",
        nargs="*",
        default=[],
        metavar="FILE_OR_DIR",
        help="also show these template files (SDSS spEigen*, redrock rrtemplate-*, "
        "Kesseli 2017/PyHammer, STELIB, a folder of Kesseli or STELIB files, or a "
        "lamostdb library from `templates build`)",
    )
    t.add_argument("--file", nargs="+", default=[], metavar="FILE_OR_DIR", help="same as FILE")
    t.set_defaults(func=commands.cmd_templates_list)
    t = tsub.add_parser(
        "calibrate",
        help="learn star continuum vectors by SVD from a catalogue",
        description="Fit star spectra of a catalogue with the Legendre fallback, "
        "take binned log(observed/template) ratios and keep their main SVD "
        "directions as continuum vectors (use with classify --continuum).",
    )
    t.add_argument("catalog")
    t.add_argument("--output", required=True, help="output .npz file")
    t.add_argument("--min-snr", type=float, default=10.0, help="minimum S/N in g (default 10)")
    t.add_argument("--max-spectra", type=int, default=5000)
    t.add_argument("--n-vectors", type=int, default=2, help="SVD vectors kept (default 2)")
    t.add_argument(
        "--legendre-order",
        type=int,
        default=3,
        help="Legendre P0..Pn kept beside them (default 3; -1: constant only)",
    )
    t.add_argument("--source-label", help="how to name the training set in the file")
    t.set_defaults(func=commands.cmd_templates_calibrate)
    from lamostdb.cli.templates_cmd import add_templates_build_parser

    add_templates_build_parser(tsub)

    from lamostdb.cli.export_cmd import add_export_parser
    from lamostdb.cli.ids_cmd import add_ids_parser
    from lamostdb.cli.nightly_cmd import add_nightly_parser
    from lamostdb.cli.plot_cmd import add_plot_parser
    from lamostdb.cli.refcat_cmd import add_refcat_parser
    from lamostdb.cli.validate_cmd import add_validate_parser
    from lamostdb.cli.xmatch_cmd import add_xmatch_parser

    add_refcat_parser(sub)
    add_xmatch_parser(sub)
    add_ids_parser(sub)
    add_nightly_parser(sub)
    add_export_parser(sub)

    from lamostdb.cli.withdraw_cmd import add_withdraw_parser

    add_withdraw_parser(sub)

    from lamostdb.cli.compact_cmd import add_compact_parser

    add_compact_parser(sub)

    from lamostdb.cli.confidence_cmd import add_confidence_parser

    add_confidence_parser(sub)
    add_validate_parser(sub)
    add_plot_parser(sub)

    s = sub.add_parser("info", help="summary of a catalogue: tables, runs, quarantine")
    s.add_argument("catalog")
    s.set_defaults(func=commands.cmd_info)

    s = sub.add_parser(
        "demo",
        help="build a catalogue from shipped real spectra + a simulated night and show queries",
    )
    s.add_argument(
        "dir", nargs="?", default="lamostdb-demo", help="work folder (default ./lamostdb-demo)"
    )
    s.add_argument(
        "--n",
        type=int,
        default=1500,
        help="spectra in each of the three simulated nights (default 1500)",
    )
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=_run_demo)
    return p


def _run_demo(args: argparse.Namespace) -> int:
    # imported when run, not when the parser is built: the demo imports every stage
    from lamostdb.cli.demo_cmd import cmd_demo

    return cmd_demo(args)


def start_classify_workers(argv: Sequence[str]) -> None:
    """For ``lamostdb classify``: start the workers' fork server before anything else is
    imported or opened, so that it loads the engine meanwhile (nothing for other commands,
    and nothing when the options do not parse: the full parser reports them)."""
    if list(argv[:1]) != ["classify"]:
        return
    peek = argparse.ArgumentParser(add_help=False)
    add_engine_arguments(peek)
    try:
        args, _ = peek.parse_known_args(list(argv[1:]))
        config = engine_config(args)
    except (SystemExit, ValueError, OSError):
        return
    from lamostdb.classify.forkserver import start_workers_early

    start_workers_early(config, workers=args.workers, cluster=args.cluster)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    start_classify_workers(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    import duckdb

    from lamostdb.catalog.store import CatalogError
    from lamostdb.execute import ClusterError, WorkerLost

    try:
        return int(args.func(args) or 0)
    except (CatalogError, ClusterError, WorkerLost, FileNotFoundError, KeyError, ValueError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"lamostdb {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"lamostdb {args.command}: SQL error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lamostdb sql ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
