"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lamostdb.execute import parse_cluster

if TYPE_CHECKING:
    from lamostdb.match.config import EngineConfig

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


def add_engine_arguments(s: argparse.ArgumentParser) -> None:
    """``--workers`` and the engine's options (``--continuum``, ``--confidence``,
    ``--templates``, ``--exhaustive``) of ``classify``."""
    s.add_argument("--workers", type=int, default=None)
    s.add_argument(
        "--continuum",
        help="continuum vectors file (.npz from `templates calibrate`; default: the shipped set)",
    )
    s.add_argument(
        "--confidence",
        help="confidence parameters (JSON from `calibrate-confidence`; default: the shipped ones)",
    )
    s.add_argument(
        "--templates",
        nargs="+",
        metavar="FILE_OR_DIR",
        help="added template files (SDSS spEigen*, redrock rrtemplate-*, a Kesseli "
        "2017/PyHammer or STELIB file, or a folder of either): single "
        "star templates join the star library, a GALAXY/QSO basis replaces the "
        "default",
    )
    s.add_argument(
        "--exhaustive",
        action="store_true",
        help="exact chi-square over every template x redshift instead of the pruned search "
        "(slower; for validating the default)",
    )
    add_cluster_argument(s)


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """The engine of ``--templates``, ``--continuum``, ``--confidence`` and ``--exhaustive``
    (files checked)."""
    from lamostdb.match.config import EngineConfig, SearchConfig

    return EngineConfig(
        templates=tuple(getattr(args, "templates", None) or ()),
        continuum=getattr(args, "continuum", None),
        confidence=getattr(args, "confidence", None),
        search=SearchConfig(exhaustive=bool(getattr(args, "exhaustive", False))),
    ).checked()
