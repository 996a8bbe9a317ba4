"""LSDB reads every table of a catalogue, and its cross-match finds our Gaia counterparts.

One small simulated night goes through ``nightly`` (Gaia loaded with its proper motions
removed), then a second cross-match run, a withdrawal and a second ids run, so that each
table's history differs from its view. Gaia is also written as a HATS catalogue (with a
margin cache) by ``hats-import``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lamostdb
from lamostdb.catalog.current_hats import CURRENT_TABLES, leaf_runs, write_current_hats
from lamostdb.catalog.errors import CatalogError
from lamostdb.catalog.schema import load_schema
from lamostdb.catalog.store import Catalog
from lamostdb.cli.main import main
from lamostdb.ids import assign_ids
from lamostdb.pipeline.nightly import NightlyOptions, run_nightly
from lamostdb.sim import simulate_night
from lamostdb.xmatch import xmatch

with warnings.catch_warnings():
    # lsdb 0.11 sets a pandas option that pandas 3 deprecates (a warning at import)
    warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
    import lsdb

pytestmark = [
    # lsdb 0.11 / nested-pandas 0.7 still use pandas options and keywords pandas 3.1 deprecates
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),
]

NOTES = Path(__file__).resolve().parents[1] / "README.md"
RADIUS_ARCSEC = 3.0


def _without_proper_motion(src: Path, dst: Path) -> None:
    gaia = pq.read_table(src)
    for name in ("pmra", "pmdec"):
        gaia = gaia.set_column(
            gaia.schema.get_field_index(name), name, pa.nulls(gaia.num_rows, pa.float64())
        )
    pq.write_table(gaia, dst)


def _hats_import_gaia(src: Path, out: Path) -> tuple[Path, Path]:
    """Gaia as a HATS catalogue with a margin cache, made by hats-import (one thread)."""
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.margin_cache.margin_cache_arguments import MarginCacheArguments
    from hats_import.pipeline import pipeline_with_client

    # partitions finer than the catalogue's, and of several orders
    args = ImportArguments(
        output_artifact_name="gaia",
        output_path=out,
        input_file_list=[src],
        file_reader="parquet",
        ra_column="ra",
        dec_column="dec",
        pixel_threshold=1500,
        highest_healpix_order=9,
        progress_bar=False,
        resume=False,
    )
    with Client(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0", silence_logs=40
    ) as client:
        pipeline_with_client(args, client)
        margin = MarginCacheArguments(
            input_catalog_path=out / "gaia",
            output_path=out,
            output_artifact_name="gaia_margin",
            margin_threshold=2 * RADIUS_ARCSEC,
            progress_bar=False,
            resume=False,
        )
        with warnings.catch_warnings():
            # hats-import's margin step looks for partition_info.csv before writing it
            warnings.filterwarnings("ignore", "Computing partitions from catalog parquet")
            pipeline_with_client(margin, client)
    return out / "gaia", out / "gaia_margin"


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("lsdb")
    simulate_night(work / "night", n=24, seed=3)
    gaia = work / "gaia_nopm.parquet"
    _without_proper_motion(work / "night" / "gaia.parquet", gaia)
    cat_path = work / "cat"
    # order-7 partitions (27'): several leaves, spectra near their edges
    Catalog.create(cat_path, partition_order=7).close()
    summary = run_nightly(
        cat_path, work / "night", NightlyOptions(workers=1, gaia_files=(gaia,), progress=False)
    )
    assert summary.night.n_classified == 24
    with Catalog(cat_path, mode="w") as cat:
        xmatch(cat, rerun=True, progress=False)  # a second run of every spectrum
    with lamostdb.open(cat_path) as cat:
        withdrawn = cat.sql("SELECT min(specid) AS s FROM spectra")["s"][0]
    assert main(["withdraw", str(cat_path), withdrawn, "--reason", "test_lsdb"]) == 0
    with Catalog(cat_path, mode="w") as cat:
        assign_ids(cat, progress=False)  # a second ids run
    gaia_hats, gaia_margin = _hats_import_gaia(gaia, work / "hats")
    return {
        "work": work,
        "cat": cat_path,
        "withdrawn": withdrawn,
        "gaia_hats": gaia_hats,
        "gaia_margin": gaia_margin,
        "current": work / "current",
    }


def _arrow(df: pd.DataFrame, table: str) -> pa.Table:
    """An LSDB partition frame as an Arrow table of the contract (index back as column)."""
    schema = load_schema(table).arrow_schema()
    tbl = pa.Table.from_pandas(df.reset_index(), preserve_index=False)
    return tbl.select(schema.names).cast(schema)


def _sorted(tbl: pa.Table, table: str) -> pa.Table:
    keys = list(load_schema(table).primary_key)
    return tbl.sort_by([(k, "ascending") for k in keys])


def _same_rows(lsdb_rows: pd.DataFrame, sql_rows: pl.DataFrame, table: str) -> None:
    schema = load_schema(table).arrow_schema()
    mine = _sorted(_arrow(lsdb_rows, table), table)
    ours = _sorted(sql_rows.to_arrow().select(schema.names).cast(schema), table)
    assert mine.num_rows == ours.num_rows
    for name in schema.names:
        assert mine.column(name).equals(ours.column(name)), f"{table}.{name} differs"


@pytest.mark.slow
@pytest.mark.parametrize("table", CURRENT_TABLES)
def test_lsdb_reads_each_table_as_its_history(night: dict[str, Any], table: str) -> None:
    rows = lsdb.read_hats(night["cat"] / table, columns="all").compute()
    with lamostdb.open(night["cat"]) as cat:
        history = cat.sql(f"SELECT * FROM {table}_history")
        current = cat.sql(f"SELECT * FROM {table}")
    _same_rows(rows, history, table)
    # the views are filters: the history holds more rows (the later runs, the withdrawal)
    assert history.height > current.height > 0


@pytest.mark.slow
def test_current_tables_give_what_the_views_show(night: dict[str, Any]) -> None:
    with lamostdb.open(night["cat"]) as cat:
        written = write_current_hats(cat, night["current"])
        views = {t: cat.sql(f"SELECT * FROM {t}") for t in CURRENT_TABLES}
        history_files = {t: cat.table_files(t) for t in CURRENT_TABLES}
    assert [w.table for w in written] == list(CURRENT_TABLES)
    for w in written:
        rows = lsdb.read_hats(w.path, columns="all").compute()
        _same_rows(rows, views[w.table], w.table)
        assert w.n_rows == views[w.table].height
        # the leaves of the catalogue's own table, less those the view leaves empty
        leaves = {(f.norder, f.npix) for f in history_files[w.table]}
        mine = {(p.order, p.pixel) for p in lsdb.read_hats(w.path).get_healpix_pixels()}
        assert mine <= leaves and len(mine) == w.n_leaves > 1
    spectra = lsdb.read_hats(night["current"] / "spectra", columns=["specid"]).compute()
    assert night["withdrawn"] not in set(spectra["specid"])
    xm = lsdb.read_hats(night["current"] / "xmatch", columns=["specid", "run_id"]).compute()
    assert xm["specid"].is_unique and xm["run_id"].nunique() == 1


@pytest.mark.slow
def test_refresh_replaces_and_the_catalogue_folder_is_refused(
    night: dict[str, Any], tmp_path: Path
) -> None:
    with lamostdb.open(night["cat"]) as cat:
        first = write_current_hats(cat, tmp_path, tables=["results"])[0]
        again = write_current_hats(cat, tmp_path, tables=["results"])[0]
        assert first.path == again.path and first.n_rows == again.n_rows
        assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
        with pytest.raises(CatalogError, match="the histories"):
            write_current_hats(cat, night["cat"])
        with pytest.raises(ValueError, match="no current view"):
            write_current_hats(cat, tmp_path, tables=["lrs"])


def _readme_example() -> str:
    text = NOTES.read_text()
    blocks = [
        b
        for b in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
        if "lsdb.read_hats(current" in b
    ]
    assert len(blocks) == 1, f"{NOTES}: expected one LSDB cross-match example"
    return blocks[0]


@pytest.mark.slow
def test_readme_example_crossmatch_is_ours(night: dict[str, Any]) -> None:
    """The README's LSDB cross-match gives the best Gaia counterparts of ``lamostdb xmatch``."""
    scope: dict[str, Any] = {
        "catalogue": night["cat"],
        "current": night["current"],
        "gaia_hats": night["gaia_hats"],
        "gaia_margin": night["gaia_margin"],
    }
    exec(compile(_readme_example(), str(NOTES), "exec"), scope)
    best: pd.DataFrame = scope["best"]
    theirs = dict(zip(best["specid"], best["source_id"].astype("int64"), strict=True))
    with lamostdb.open(night["cat"]) as cat:
        ours_df = cat.sql(
            "SELECT specid, gaia_source_id, gaia_sep_arcsec FROM xmatch "
            "WHERE gaia_source_id IS NOT NULL"
        )
        n_current = cat.sql("SELECT count(*) AS n FROM spectra")["n"][0]
    ours = dict(zip(ours_df["specid"], ours_df["gaia_source_id"], strict=True))
    assert len(ours) >= n_current // 2  # galaxies and quasars may have none
    assert theirs == ours
    sep = dict(zip(ours_df["specid"], ours_df["gaia_sep_arcsec"], strict=True))
    dist = dict(zip(best["specid"], best["_dist_arcsec"], strict=True))
    assert np.allclose([dist[s] for s in ours], [sep[s] for s in ours], rtol=0, atol=1e-6)


def test_rows_go_to_the_leaf_that_holds_them_whatever_its_order() -> None:
    # leaves of three orders, as an adaptive partitioning leaves them: pixel 5 at order 3;
    # its neighbour 6 split into its children 24-27 at order 4, and 27 split again at order 5
    leaves = {3: {5}, 4: {24, 25, 26}, 5: {108, 109, 110, 111}}
    hp29 = np.sort(
        np.concatenate(
            [
                (np.int64(5) << np.int64(2 * 26)) + np.arange(0, 4 << 40, 1 << 40),  # order 3
                (np.int64(24) << np.int64(2 * 25)) + np.arange(3),  # order 4
                (np.int64(26) << np.int64(2 * 25)) + np.arange(2),  # order 4
                (np.int64(109) << np.int64(2 * 24)) + np.arange(5),  # order 5
                (np.int64(111) << np.int64(2 * 24)) + np.arange(1),  # order 5
            ]
        )
    )
    table = pa.table({"_healpix_29": hp29, "i": np.arange(hp29.size)})
    batches = iter(table.to_batches(max_chunksize=3))  # leaves cross batch boundaries
    runs = list(leaf_runs(batches, leaves, default_order=3))
    got = [(key, run.column("i").to_pylist()) for key, run in runs]
    assert [key for key, _ in got] == [(3, 5), (4, 24), (4, 26), (5, 109), (5, 111)]
    assert [ids for _, ids in got] == [[0, 1, 2, 3], [4, 5, 6], [7, 8], [9, 10, 11, 12, 13], [14]]
