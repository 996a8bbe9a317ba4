"""Reference catalogues as HATS: ``refcat attach`` of a hats-import catalogue, xmatch that reads
only the partitions it needs, and the streamed ``refcat ingest``."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from lamostdb.catalog.store import Catalog
from lamostdb.cli.refcat_cmd import add_refcat_parser
from lamostdb.healpix import healpix_29
from lamostdb.ingest.stage import ingest
from lamostdb.refcat import RefcatError, ingest_refcat
from lamostdb.refcat.hats import attach_hats, attached, leaf_files, open_hats
from lamostdb.sim import simulate_night
from lamostdb.xmatch import xmatch
from lamostdb.xmatch.stage import RefRead, _margin_covers

RADIUS = 3.0


def build_hats(rows: Path, out: Path, *, margin_arcsec: float | None) -> None:
    """A HATS catalogue of the Parquet file ``rows`` with hats-import (in-process Dask)."""
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.margin_cache.margin_cache_arguments import MarginCacheArguments
    from hats_import.pipeline import pipeline_with_client

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Client(
            processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
        ) as client:
            pipeline_with_client(
                ImportArguments(
                    output_artifact_name="gaia",
                    input_file_list=[str(rows)],
                    file_reader="parquet",
                    ra_column="ra",
                    dec_column="dec",
                    output_path=str(out),
                    pixel_threshold=300,
                    highest_healpix_order=8,
                    progress_bar=False,
                    tmp_dir=str(out / "tmp"),
                ),
                client,
            )
            if margin_arcsec is not None:
                pipeline_with_client(
                    MarginCacheArguments(
                        input_catalog_path=str(out / "gaia"),
                        output_path=str(out),
                        output_artifact_name="gaia_margin",
                        margin_threshold=margin_arcsec,
                        progress_bar=False,
                        tmp_dir=str(out / "tmp"),
                    ),
                    client,
                )


@pytest.fixture(scope="module")
def sky(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A simulated night, its Gaia rows plus a far copy (120 deg east), as HATS + margin."""
    work = tmp_path_factory.mktemp("hats")
    simulate_night(work / "night", n=300, seed=3)
    gaia = pq.read_table(work / "night" / "gaia.parquet")
    ra = (gaia.column("ra").to_numpy() + 120.0) % 360.0
    far = gaia.set_column(gaia.schema.get_field_index("ra"), "ra", pa.array(ra)).set_column(
        0, "source_id", pa.array(-gaia.column("source_id").to_numpy())
    )  # far copies: negative ids
    pq.write_table(pa.concat_tables([gaia, far]), work / "gaia_all.parquet")
    build_hats(work / "gaia_all.parquet", work / "hats", margin_arcsec=10.0)
    return {
        "work": work,
        "night": work / "night",
        "rows": work / "gaia_all.parquet",
        "hats": work / "hats" / "gaia",
        "margin": work / "hats" / "gaia_margin",
    }


def _spectra_catalog(sky: dict[str, Path], path: Path) -> Catalog:
    cat = Catalog.create(path, partition_order=8)
    ingest(cat, [sky["night"] / "spectra"], workers=1, progress=False)
    return cat


def _xmatch_rows(cat: Catalog) -> pl.DataFrame:
    return cat.sql("SELECT * EXCLUDE (run_id) FROM xmatch ORDER BY specid")


@pytest.fixture(scope="module")
def parquet_xmatch(sky: dict[str, Path]) -> pl.DataFrame:
    """The reference answer: the same rows ingested with ``refcat ingest``."""
    with _spectra_catalog(sky, sky["work"] / "cat_parquet") as cat:
        ingest_refcat(cat, "gaia", [sky["rows"]], progress=False)
        rep = xmatch(cat, progress=False, workers=1)
        assert rep.reference_sources == {"gaia": "parquet"}
        return _xmatch_rows(cat)


class _Reads:
    """Records the Parquet files ``pyarrow.parquet.read_table`` opens."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        real = pq.read_table

        def read_table(source: object, *args: object, **kwargs: object) -> pa.Table:
            self.paths.append(str(source))
            return real(source, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(pq, "read_table", read_table)

    def under(self, folder: Path) -> set[str]:
        return {p for p in self.paths if p.startswith(str(folder) + "/")}


@pytest.mark.slow
@pytest.mark.parametrize("margin", [True, False])
def test_attached_hats_matches_like_the_parquet_path_and_reads_only_what_it_needs(
    sky: dict[str, Path],
    parquet_xmatch: pl.DataFrame,
    margin: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hats = open_hats(sky["hats"])
    with _spectra_catalog(sky, tmp_path / "cat") as cat:
        rec = attach_hats(cat, "gaia", sky["hats"], find_margin=margin)
        assert (
            attached(cat, "gaia") == rec
            and rec.n_rows == 2 * pq.read_metadata(sky["night"] / "gaia.parquet").num_rows
        )
        assert rec.margin == (str(sky["margin"]) if margin else None)
        reads = _Reads(monkeypatch)
        rep = xmatch(cat, progress=False, workers=1)
        read, margin_read = reads.under(sky["hats"]), reads.under(sky["margin"])
        got = _xmatch_rows(cat)
        hp = cat.sql("SELECT _healpix_29 FROM spectra")["_healpix_29"].to_numpy()
    # identical best matches, separations, counts and flags
    assert got.equals(parquet_xmatch)
    assert got["gaia_source_id"].is_not_null().sum() > 250
    assert (got["gaia_source_id"] > 0).all()
    # partitions that hold a spectrum, by the catalogue's own partition list
    own = {(o, p) for o, p in hats.pixels if np.any((hp >> np.int64(2 * (29 - o))) == p)}
    own_files = {f for o, p in own for f in leaf_files(str(sky["hats"]), o, p)}
    far = {
        f
        for o, p in hats.pixels
        for f in leaf_files(str(sky["hats"]), o, p)
        if (o, p) not in own
        and pq.read_table(f, columns=["source_id"]).column("source_id").to_numpy().max() < 0
    }
    assert own_files <= read and not read & far and len(far) > 10
    assert rep.reference_files_read["gaia"] == len(read)
    if margin:
        # the margin cache replaces every neighbour: only the own partitions and their margin
        assert read == own_files
        assert rep.margin_files_read["gaia"] == len(margin_read) > 0
        assert margin_read == {f for o, p in own for f in leaf_files(str(sky["margin"]), o, p)}
    else:
        assert len(read) > len(own_files) and not margin_read


@pytest.mark.slow
def test_tasks_on_a_process_pool_give_the_same_rows(
    sky: dict[str, Path], parquet_xmatch: pl.DataFrame, tmp_path: Path
) -> None:
    with _spectra_catalog(sky, tmp_path / "cat") as cat:
        attach_hats(cat, "gaia", sky["hats"])
        many = xmatch(cat, progress=False, workers=2, chunk_spectra=40)
        got = _xmatch_rows(cat)
    assert many.n_tasks > 4
    assert (
        many.executor["n_workers"] == 2
        and sum(many.executor["tasks_per_worker"].values()) == many.n_tasks
    )  # type: ignore[union-attr]
    assert got.equals(parquet_xmatch)


def test_margin_is_used_only_when_it_holds_every_moving_neighbour(sky: dict[str, Path]) -> None:
    hats = open_hats(sky["hats"])
    files = [f for o, p in hats.pixels for f in leaf_files(str(sky["hats"]), o, p)]
    cols = tuple((c, c) for c in ("source_id", "ra", "dec", "pmra", "pmdec", "ref_epoch"))
    pm = max(
        np.hypot(*(pq.read_table(f, columns=["pmra", "pmdec"]).to_pandas().abs().max()))
        for f in files
    )  # mas/yr, the largest of any partition
    epochs = np.array([2016.0 + 1.0, 2016.0 + 2.0])
    need = RADIUS + pm / 1000.0 * 2.0
    wide = RefRead("gaia", columns=cols, margin_threshold_arcsec=need + 0.01)
    narrow = RefRead("gaia", columns=cols, margin_threshold_arcsec=need - 0.01)
    assert _margin_covers(files, wide, RADIUS, epochs)
    assert not _margin_covers(files, narrow, RADIUS, epochs)
    # no proper motion (PS1, or spectra without an epoch): the radius alone decides
    assert _margin_covers(files, narrow, RADIUS, np.empty(0))
    assert not _margin_covers(
        files, RefRead("gaia", columns=cols, margin_threshold_arcsec=2.0), RADIUS, np.empty(0)
    )


def test_attach_names_a_missing_column_and_refuses_other_folders(
    sky: dict[str, Path], tmp_path: Path
) -> None:
    # a HATS catalogue whose schema has no pmdec
    bad = tmp_path / "nopm"
    (bad / "dataset").mkdir(parents=True)
    (bad / "hats.properties").write_text((sky["hats"] / "hats.properties").read_text())
    (bad / "partition_info.csv").write_text((sky["hats"] / "partition_info.csv").read_text())
    schema = pq.read_schema(sky["hats"] / "dataset" / "_common_metadata")
    pq.write_metadata(
        schema.remove(schema.get_field_index("pmdec")), bad / "dataset" / "_common_metadata"
    )
    with Catalog.create(tmp_path / "cat") as cat:
        with pytest.raises(RefcatError, match=r"no column for gaia column 'pmdec'.*--column"):
            attach_hats(cat, "gaia", bad)
        with pytest.raises(RefcatError, match="not a HATS catalogue"):
            attach_hats(cat, "gaia", sky["night"])
        with pytest.raises(RefcatError, match="is a margin cache"):
            attach_hats(cat, "gaia", sky["margin"])
        # a renamed column is accepted with --column
        rec = attach_hats(
            cat,
            "ps1",
            sky["hats"],
            find_margin=False,
            columns={"objID": "source_id", "raMean": "ra", "decMean": "dec"},
        )
        assert attached(cat, "gaia") is None and rec.columns["objID"] == "source_id"


def test_cli_refcat_attach(
    sky: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="lamostdb")
    add_refcat_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["refcat", "attach", str(tmp_path / "cat"), "gaia", str(sky["hats"])])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"gaia: attached {sky['hats']}" in out and "not copied" in out
    assert f'margin cache: {sky["margin"]} (10")' in out
    assert not any((tmp_path / "cat").glob("gaia/**/*.parquet"))  # nothing copied
    args = parser.parse_args(["refcat", "attach", str(tmp_path / "cat"), "ps1", str(sky["hats"])])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "no column for ps1 column 'objID'" in err and "--column objID=NAME" in err


# -- streamed ingest -------------------------------------------------------------------------
def _stored(cat: Catalog) -> tuple[pl.DataFrame, list[tuple[int, int, int]]]:
    rows = cat.sql("SELECT * EXCLUDE (ingest_run) FROM gaia ORDER BY _healpix_29, source_id")
    layout = sorted((f.norder, f.npix, f.n_rows) for f in cat.table_files("gaia"))
    return rows, layout


def _ecsv(t: pa.Table, path: Path) -> None:
    Table(t.to_pydict()).write(path, format="ascii.ecsv")


def test_streamed_ingest_stores_the_same_table_as_a_whole_file_read(
    sky: dict[str, Path], tmp_path: Path
) -> None:
    rows = pq.read_table(sky["night"] / "gaia.parquet")
    n = rows.num_rows
    # repeated ids across batch boundaries: the first delivery wins, as in one batch
    dup = rows.slice(0, 50).set_column(1, "ra", pa.array(np.full(50, 1.0)))
    mixed = pa.concat_tables([rows.slice(0, n // 2), dup, rows.slice(n // 2)])
    pq.write_table(mixed, tmp_path / "mixed.parquet", row_group_size=700)
    pacsv.write_csv(mixed, tmp_path / "mixed.csv")
    _ecsv(mixed, tmp_path / "mixed.ecsv")
    results = {}
    for name, batch in (
        ("mixed.parquet", 10**9),
        ("mixed.parquet", 777),
        ("mixed.csv", 777),
        ("mixed.ecsv", 777),
    ):
        with Catalog.create(tmp_path / f"cat-{name}-{batch}", partition_order=6) as cat:
            rep = ingest_refcat(cat, "gaia", [tmp_path / name], progress=False, batch_rows=batch)
            results[(name, batch)] = (_stored(cat), rep.n_added, rep.n_duplicates_in_input)
    (table, layout), added, dups = results[("mixed.parquet", 10**9)]
    assert (added, dups) == (n, 50) and table.height == n
    np.testing.assert_array_equal(
        table["_healpix_29"].to_numpy(), healpix_29(table["ra"].to_numpy(), table["dec"].to_numpy())
    )
    assert np.all(
        table.sort("source_id")["ra"].to_numpy()
        == rows.sort_by("source_id").column("ra").to_numpy()
    )
    for key, ((t2, l2), a2, d2) in results.items():
        assert (a2, d2) == (added, dups), key
        assert l2 == layout, key  # one file per partition, same rows in each
        assert t2.equals(table), key
