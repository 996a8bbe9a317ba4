"""``lamostdb nightly CATALOG NIGHT_DIR``: every stage on one night, resumable."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamostdb.cli.exits import EXIT_INCOMPLETE
from lamostdb.cli.options import add_cluster_argument

if TYPE_CHECKING:  # the parser is built at every command's start: the stages stay out
    from lamostdb.pipeline import NightlySummary, StageOutcome

#: Quarantined files listed in the text summary (all of them are in the JSON and the table).
MAX_LISTED = 20


def add_nightly_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``nightly`` subcommand to the ``lamostdb`` parser's subparsers."""
    s: argparse.ArgumentParser = subparsers.add_parser(
        "nightly",
        help="ingest, classify, cross-match and identify one night (resumable)",
        description="Run `refcat ingest` (when reference files are given), `ingest`, "
        "`classify`, `xmatch` and `ids` on one night folder, holding the catalogue's write lock "
        "throughout, then print a summary: classes of the night's spectra, quarantined files "
        "and why, seconds per stage, spectra/s, where the results are. Every stage does only "
        "what is missing, so after a crash or an error the same command resumes where the "
        "night stopped, and a second run on a finished night does nothing and says so. The "
        "summary is also stored as JSON in the runs table (stage 'nightly').",
        epilog="A simulated night (`lamostdb simulate`) holds mock gaia.parquet and ps1.parquet "
        "next to its spectra; they are loaded only with --refcat-from-night.",
    )
    s.add_argument("catalog", help="catalogue folder (created if missing)")
    s.add_argument("night_dir", help="folder of the night's spectrum files (searched recursively)")
    s.add_argument(
        "--gaia",
        action="append",
        default=[],
        metavar="FILE",
        help="Gaia extract to load before the cross-match (repeatable; any format "
        "`refcat ingest` reads)",
    )
    s.add_argument(
        "--ps1",
        action="append",
        default=[],
        metavar="FILE",
        help="Pan-STARRS1 extract to load before the cross-match (repeatable)",
    )
    s.add_argument(
        "--refcat-from-night",
        action="store_true",
        help="also load NIGHT_DIR/gaia.parquet and NIGHT_DIR/ps1.parquet (the mock "
        "references of a simulated night)",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes for ingest and classify (default: cores)",
    )
    add_cluster_argument(s)
    s.add_argument(
        "--radius-arcsec",
        type=float,
        default=3.0,
        help="cross-match radius and linking length between spectra (default 3)",
    )
    s.add_argument("--chunk-size", type=int, default=500, help="files per ingest work unit")
    s.add_argument(
        "--compact",
        action="store_true",
        help="compact the catalogue at the end (as `lamostdb compact`)",
    )
    s.add_argument(
        "--json", action="store_true", help="print the summary as JSON on standard output"
    )
    s.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars and no per-stage lines (the summary is printed)",
    )
    s.set_defaults(func=cmd_nightly)
    return s


def cmd_nightly(args: argparse.Namespace) -> int:
    from lamostdb.pipeline import NightlyOptions, run_nightly

    """Run the night and print its summary."""
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    options = NightlyOptions(
        workers=args.workers,
        radius_arcsec=args.radius_arcsec,
        gaia_files=tuple(Path(f) for f in args.gaia),
        ps1_files=tuple(Path(f) for f in args.ps1),
        refcat_from_night=args.refcat_from_night,
        chunk_size=args.chunk_size,
        progress=not args.quiet,
        cluster=args.cluster,
        compact=args.compact,
    )
    summary = run_nightly(
        args.catalog, args.night_dir, options, on_stage=None if args.quiet else _print_stage
    )
    if args.json:
        print(json.dumps(summary.as_dict(), indent=1, sort_keys=True))
    else:
        print(format_summary(summary))
    return EXIT_INCOMPLETE if summary.unreadable_dirs else 0


def _print_stage(outcome: StageOutcome) -> None:
    print(f"[{outcome.name}] {outcome.message} ({outcome.seconds:.1f} s)", file=sys.stderr)


def format_summary(summary: NightlySummary) -> str:
    """The text summary a night operator reads."""
    night = summary.night
    lines = [f"night {summary.night_dir} -> catalogue {summary.catalog} (run {summary.run_id})"]
    if summary.nothing_new:
        lines.append(
            f"nothing new: the night's {night.n_spectra} spectra were already ingested, "
            "classified, matched and identified (0 new spectra, 0 fitted)"
        )
    else:
        lines.append(
            f"this run: {summary.n_new_spectra} new spectra, "
            f"{summary.n_new_quarantined} quarantined, {summary.n_fitted} fitted, "
            f"{summary.n_matched} matched, {summary.n_ids_written} identifier rows "
            f"written, {summary.n_reference_rows_added} reference rows added"
        )
    lines.append(
        f"night: {night.n_files} files, {night.n_spectra} spectra, "
        f"{night.n_classified} classified, {night.n_matched} matched, "
        f"{night.n_identified} identified"
    )
    lines.append("classes: " + (", ".join(f"{k} {v}" for k, v in night.classes.items()) or "none"))
    lines.append(f"quarantined: {len(night.quarantined)}")
    for path, reason in night.quarantined[:MAX_LISTED]:
        lines.append(f"  {path}: {reason}")
    if len(night.quarantined) > MAX_LISTED:
        lines.append(
            f"  ... and {len(night.quarantined) - MAX_LISTED} more: "
            "SELECT path, reason FROM quarantine"
        )
    timings = ", ".join(f"{k} {v:.1f}" for k, v in summary.stage_seconds.items())
    lines.append(
        f"seconds: {timings}; total {summary.total_s:.1f} "
        f"({summary.spectra_per_s:.1f} new spectra/s)"
    )
    if summary.cluster or any(s.executor for s in summary.stages):
        lines.append(f"cluster: {summary.cluster or 'local process pool'}; tasks per worker:")
        for s in summary.stages:
            if s.executor:
                tasks = ", ".join(f"{w} {n}" for w, n in s.executor["tasks_per_worker"].items())
                retried = (
                    f"; {s.executor['retries']} reruns after a lost worker"
                    if s.executor.get("retries")
                    else ""
                )
                lines.append(f"  {s.name}: {s.executor['cluster']}: {tasks or 'no tasks'}{retried}")
            elif s.name != "refcat":
                lines.append(f"  {s.name}: in this process")
    loc = summary.locations
    tables = ", ".join(k for k in loc if k not in ("catalog", "database", "summary", "views"))
    lines.append(
        f"where: catalogue {loc['catalog']} (tables {tables or 'none'}; views "
        f"{loc['views']}); this summary: {loc['summary']}"
    )
    lines += [f"note: {n}" for n in summary.notes]
    return "\n".join(lines)
