"""Options shared by several subcommands."""

from __future__ import annotations

import argparse

from lamostdb.execute import parse_cluster

CLUSTER_HELP = (
    "where the stage's partitions run: leave out for the local process pool "
    "(default); local:N for a Dask cluster of N worker processes on this machine; "
    "tcp://HOST:PORT for a running Dask scheduler whose workers see the catalogue "
    "folder at the same path (needs pip install 'lamostdb[dask]')"
)


def cluster_value(text: str) -> str:
    """``--cluster`` as given, once :func:`~lamostdb.execute.parse_cluster` accepts it."""
    try:
        parse_cluster(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_cluster_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--cluster`` (checked as it is parsed, so a typo fails before any work)."""
    parser.add_argument(
        "--cluster",
        type=cluster_value,
        default=None,
        metavar="local:N|tcp://HOST:PORT",
        help=CLUSTER_HELP,
    )
