"""``lamostdb calibrate-confidence OUT CATALOG=TRUTH ...``: fit the confidence estimate."""

from __future__ import annotations

import argparse
from typing import Any


def add_confidence_parser(subparsers: Any) -> None:
    """Add ``calibrate-confidence`` to the ``lamostdb`` subcommands."""
    s = subparsers.add_parser(
        "calibrate-confidence",
        help="fit the confidence weights and scoring functions",
        description="Fit the confidence estimate Conf = C f(B) + (1 - C) f(R) (scoring "
        "parameters of the blue-end and red-end residual Gaussians, and the weight C per "
        "type group) on classified catalogues with a truth, and write them as JSON. Use the "
        "file with `lamostdb classify --confidence FILE`, or replace the shipped one.",
    )
    s.add_argument("out", help="JSON file to write")
    s.add_argument(
        "sets",
        nargs="+",
        metavar="CATALOG=TRUTH",
        help="a classified catalogue and its truth: the truth.parquet of `lamostdb "
        "simulate`, or `lamost` for the LAMOST header labels",
    )
    s.set_defaults(func=cmd_calibrate_confidence)


def cmd_calibrate_confidence(args: argparse.Namespace) -> int:
    from lamostdb.validate.calibrate_confidence import calibrate

    sets = []
    for item in args.sets:
        catalog, sep, truth = item.partition("=")
        if not sep or not catalog or not truth:
            raise ValueError(
                f"{item!r}: write each training set as CATALOG=TRUTH, e.g. "
                "cat=night/truth.parquet or cat=lamost"
            )
        sets.append((catalog, truth))
    params = calibrate(sets, args.out)
    prov = params.provenance
    print(
        f"fitted on {prov['n_spectra']} spectra ({prov['n_correct']} right); "
        f"-log L per spectrum {prov['neg_log_likelihood']}"
    )
    print("f(B) = logistic({:+.3f} {:+.3f} ln sigma {:+.3f} |mu|)".format(*params.blue))
    print("f(R) = logistic({:+.3f} {:+.3f} ln sigma {:+.3f} |mu|)".format(*params.red))
    print("C: " + ", ".join(f"{g} {c:.2f}" for g, c in params.weight.items()))
    print(f"written to {args.out}")
    return 0
