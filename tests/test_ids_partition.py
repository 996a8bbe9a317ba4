"""The ids stage by partitions: links per group of partitions + margin, united centrally."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from conftest import SHIPPED_SPECTRA
from test_ids import ARCSEC, _catalogue_xmatch

from lamostdb.catalog.store import Catalog
from lamostdb.healpix import healpix_29, pixel_at_order
from lamostdb.ids import fof_pairs
from lamostdb.ids.partition import LinkConfig, link_partition, plan_link_groups


def _points(radius_arcsec: float, order: int) -> pa.Table:
    """Clumps of points within a few radii, half of them centred on partition corners
    and edges at ``order`` (so that many groups straddle partitions)."""
    rng = np.random.default_rng(3)
    ra_c = np.concatenate([rng.uniform(0, 360, 30), [0.0, 359.9999, 45.0, 200.0]])
    dec_c = np.concatenate([rng.uniform(-85, 85, 30), [0.0, 0.0, 89.9999, -89.9999]])
    # corners of the partitions: the vertices where 3 or 4 pixels meet sit on a pixel's edge
    from astropy_healpix import HEALPix

    hpx = HEALPix(nside=2**order, order="nested")
    corners = hpx.boundaries_lonlat(rng.integers(0, hpx.npix, 30), step=1)
    ra_c = np.concatenate([ra_c, corners[0].deg.ravel()])
    dec_c = np.concatenate([dec_c, corners[1].deg.ravel()])
    k = rng.integers(0, ra_c.size, 3000)
    scale = radius_arcsec * ARCSEC
    dec = np.clip(dec_c[k] + rng.normal(0, scale, k.size), -90, 90)
    ra = (ra_c[k] + rng.normal(0, scale, k.size) / np.cos(np.radians(dec))) % 360
    return pa.table(
        {
            "id": np.arange(ra.size, dtype=np.int64),
            "ra": ra,
            "dec": dec,
            "_healpix_29": healpix_29(ra, dec),
        }
    )


@pytest.mark.parametrize("radius_arcsec", [3.0, 40.0])
def test_partition_links_are_the_global_pairs_each_once(radius_arcsec: float) -> None:
    order = 6
    points = _points(radius_arcsec, order)
    i, j = fof_pairs(
        points.column("ra").to_numpy(), points.column("dec").to_numpy(), radius_arcsec=radius_arcsec
    )
    want = set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(want) > 2000
    config = LinkConfig(radius_arcsec)
    groups = plan_link_groups(points, partition_order=order, config=config, group_rows=100)
    assert len(groups) > 20
    # every row is in exactly one core; no core row is in its own margin
    cores = np.concatenate([g.core.column("id").to_numpy() for g in groups])
    assert np.array_equal(np.sort(cores), np.arange(points.num_rows))
    for g in groups:
        own = set(pixel_at_order(g.core.column("_healpix_29").to_numpy(), order).tolist())
        assert own == set(g.npix)
        assert not set(pixel_at_order(g.margin.column("_healpix_29").to_numpy(), order)) & own
    con = duckdb.connect()
    got = [link_partition(g.core, g.margin, config, con=con) for g in groups]
    pairs = [
        (a, b)
        for t in got
        for a, b in zip(t.column("i").to_pylist(), t.column("j").to_pylist(), strict=True)
    ]
    assert len(pairs) == len(set(pairs))  # each pair once
    assert set(pairs) == want
    # the margins matter: without them the links across partition edges are lost
    bare = set()
    for g in groups:
        t = link_partition(g.core, g.margin.slice(0, 0), config, con=con)
        bare |= set(zip(t.column("i").to_pylist(), t.column("j").to_pylist(), strict=True))
    assert bare < want


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from lamostdb.ingest.stage import ingest

    path = tmp_path_factory.mktemp("ids_partition") / "cat"
    with Catalog.create(path) as cat:
        ingest(cat, [SHIPPED_SPECTRA], workers=1, progress=False)
    yield path


def _objects_after_ids(root: Path, **kw: object) -> tuple[pl.DataFrame, dict[str, object]]:
    from lamostdb.ids import assign_ids

    with Catalog(root, mode="w") as cat:
        # two spectra 2" apart become one group: move the second next to the first
        xm = _catalogue_xmatch(cat, {})
        xm = xm.with_columns(
            pl.when(pl.int_range(pl.len()) == 1)
            .then(xm["ra"][0])
            .otherwise(pl.col("ra"))
            .alias("ra"),
            pl.when(pl.int_range(pl.len()) == 1)
            .then(xm["dec"][0] + 2 * ARCSEC)
            .otherwise(pl.col("dec"))
            .alias("dec"),
        )
        cat.con.register("ids_test_xmatch", xm.to_arrow())
        cat.con.execute("CREATE OR REPLACE TEMP VIEW xmatch AS SELECT * FROM ids_test_xmatch")
        try:
            rep = assign_ids(cat, progress=False, **kw)  # type: ignore[arg-type]
        finally:
            cat.refresh_views()
            cat.con.unregister("ids_test_xmatch")
        return cat.sql("SELECT * EXCLUDE (run_id) FROM objects ORDER BY specid"), rep.as_dict()


@pytest.mark.timeout(300)
@pytest.mark.slow
def test_stage_on_a_process_pool_equals_one_process(ingested: Path, tmp_path: Path) -> None:
    shutil.copytree(ingested, tmp_path / "a")
    shutil.copytree(ingested, tmp_path / "b")
    serial, rep1 = _objects_after_ids(tmp_path / "a")
    pooled, rep2 = _objects_after_ids(tmp_path / "b", workers=2, group_rows=1)
    assert serial.height > 3 and serial["lid"].n_unique() == serial.height - 1
    assert serial.equals(pooled)
    assert rep1["n_link_tasks"] == 1 and rep1["executor"]["cluster"] == "serial"
    ex = rep2["executor"]
    assert rep2["n_link_tasks"] > 1 and ex["cluster"] == "local:2"
    assert sum(ex["tasks_per_worker"].values()) == rep2["n_link_tasks"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_stage_on_a_dask_cluster_equals_one_process(ingested: Path, tmp_path: Path) -> None:
    shutil.copytree(ingested, tmp_path / "a")
    shutil.copytree(ingested, tmp_path / "b")
    serial, _ = _objects_after_ids(tmp_path / "a")
    dask, rep = _objects_after_ids(tmp_path / "b", cluster="local:2", group_rows=1)
    assert serial.equals(dask)
    ex = rep["executor"]
    assert ex["cluster"].startswith("local:2 (tcp://") and ex["n_workers"] == 2
    assert len(ex["tasks_per_worker"]) == 2  # both workers ran link tasks
    assert sum(ex["tasks_per_worker"].values()) == rep["n_link_tasks"] > 2
