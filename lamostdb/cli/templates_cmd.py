"""``lamostdb templates build``: stack a catalogue's labelled spectra into star templates."""

from __future__ import annotations

import argparse
from typing import Any

import polars as pl

from lamostdb.classify.labels import LABEL_COLUMNS, Z_COLUMNS


def add_templates_build_parser(tsub: Any) -> argparse.ArgumentParser:
    """Add ``build`` to the ``templates`` subcommand's subparsers."""
    t: argparse.ArgumentParser = tsub.add_parser(
        "build",
        help="stack a catalogue's labelled spectra into star templates (library file)",
        description="Stack the spectra of each label (e.g. a previous release's LASP "
        "subclass) into one star template: shift to the rest frame with the label's redshift, "
        "normalise each continuum (median, then a Legendre + red-arm correction against the "
        "stack, iterated), stack with per-pixel clipping and drop outlier spectra. Labels "
        "with too few spectra are reported, not skipped silently. The library file works "
        "with `classify --templates FILE` and `templates list FILE`.",
    )
    t.add_argument("catalog", help="catalogue folder")
    t.add_argument(
        "--label",
        default="lasp_subclass",
        choices=LABEL_COLUMNS,
        help="spectra column with the subclass labels (default lasp_subclass)",
    )
    t.add_argument(
        "--z-column",
        default="lasp_z",
        choices=Z_COLUMNS,
        help="spectra column with the redshift of each label (default lasp_z)",
    )
    t.add_argument("--out", required=True, help="library file to write (.fits)")
    t.add_argument(
        "--min-spectra",
        type=int,
        default=5,
        help="fewest spectra per template after cuts (default 5)",
    )
    t.add_argument("--min-snr", type=float, default=10.0, help="minimum S/N in g (default 10)")
    t.add_argument(
        "--max-per-label",
        type=int,
        default=1000,
        help="use at most this many spectra per label, highest S/N first "
        "(default 1000; bounds memory)",
    )
    t.add_argument("--name", help="library name (default CATALOG-LABEL)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_templates_build)
    return t


def cmd_templates_build(args: argparse.Namespace) -> int:
    from lamostdb.classify.templates_build import build_library
    from lamostdb.cli.commands import print_frame
    from lamostdb.templates.build import BuildConfig

    cfg = BuildConfig(min_spectra=args.min_spectra, min_snr=args.min_snr)
    rep = build_library(
        args.catalog,
        args.out,
        label_column=args.label,
        z_column=args.z_column,
        config=cfg,
        max_per_label=args.max_per_label,
        name=args.name,
        progress=not args.quiet,
    )
    res = rep.result
    print_frame(
        pl.DataFrame(
            {
                "subclass": [t.label for t in res.templates],
                "n_spectra": [t.n_spectra for t in res.templates],
                "median_snr": [round(t.median_snr, 1) for t in res.templates],
                "scatter": [round(t.scatter, 4) for t in res.templates],
                "outliers": [t.n_outliers for t in res.templates],
            }
        ),
        max_rows=500,
    )
    if res.reported:
        print("reported (not used):")
        print_frame(
            pl.DataFrame(
                {
                    "label": [r.label for r in res.reported],
                    "count": [r.count for r in res.reported],
                    "reason": [r.reason for r in res.reported],
                },
                schema={"label": pl.String, "count": pl.Int64, "reason": pl.String},
            ),
            max_rows=500,
        )
    print(f"{len(res.templates)} templates from {rep.n_read} spectra; wrote {rep.out}")
    return 0
