"""The search switch: ``--exhaustive`` reaches the engine of every worker as configuration."""

from __future__ import annotations

import pickle

from lamostdb.cli.commands import engine_config
from lamostdb.cli.main import build_parser
from lamostdb.match.config import DEFAULT_CONFIG, EngineConfig, SearchConfig
from lamostdb.match.engine import get_engine


def test_classify_exhaustive_flag_sets_the_search() -> None:
    parser = build_parser()
    pruned = engine_config(parser.parse_args(["classify", "cat"]))
    full = engine_config(parser.parse_args(["classify", "cat", "--exhaustive"]))
    assert pruned.search == SearchConfig() and not pruned.search.exhaustive
    assert full.search.exhaustive
    assert pruned == DEFAULT_CONFIG
    assert hash(full) != hash(pruned)  # workers cache one engine per configuration


def test_search_travels_with_the_config_and_reaches_the_engine() -> None:
    config = EngineConfig(search=SearchConfig(exhaustive=True))
    again = pickle.loads(pickle.dumps(config))  # as to a process pool or a Dask worker
    assert again == config
    assert get_engine(again).search.exhaustive
    assert not get_engine().search.exhaustive
    # the same templates: only the search differs
    assert get_engine(again).star.names == get_engine().star.names
