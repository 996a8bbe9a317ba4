"""Cross-match: the pixel-join kernel against astropy, proper motion, ambiguity, the stage."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky
from astropy_healpix import core
from hypothesis import given, settings
from hypothesis import strategies as st

import lamostdb
from lamostdb.catalog.schema import load_schema
from lamostdb.catalog.store import Catalog
from lamostdb.cli.xmatch_cmd import add_xmatch_parser
from lamostdb.healpix import healpix_29, pixel_at_order
from lamostdb.healpix.blocks import PIXEL_MARGIN, RES0_ARCSEC
from lamostdb.ingest.stage import ingest
from lamostdb.refcat import ingest_refcat
from lamostdb.sim import simulate_night
from lamostdb.sim.refcat import offset
from lamostdb.sim.xmatch_sky import mock_sky, position_table
from lamostdb.xmatch import best_matches, crossmatch_pairs, match_order, pixel_block, xmatch

# Pairs this close to the radius are float ties: haversine (here) and chord length
# (astropy's KD-tree) may round them to different sides.
TIE_ARCSEC = 1e-6


def astropy_pairs(
    left: pa.Table, right: pa.Table, radius_arcsec: float
) -> dict[tuple[int, int], float]:
    c1 = SkyCoord(left["ra"].to_numpy() * u.deg, left["dec"].to_numpy() * u.deg)
    c2 = SkyCoord(right["ra"].to_numpy() * u.deg, right["dec"].to_numpy() * u.deg)
    i1, i2, sep, _ = search_around_sky(c1, c2, radius_arcsec * u.arcsec)
    lid, rid = left["id"].to_numpy()[i1], right["id"].to_numpy()[i2]
    return dict(
        zip(
            zip(lid.tolist(), rid.tolist(), strict=True),
            sep.to_value(u.arcsec).tolist(),
            strict=True,
        )
    )


def kernel_pairs(out: pa.Table) -> dict[tuple[int, int], float]:
    return dict(
        zip(
            zip(out["left_id"].to_pylist(), out["right_id"].to_pylist(), strict=True),
            out["sep_arcsec"].to_pylist(),
            strict=True,
        )
    )


# -- pixels ----------------------------------------------------------------------------


def test_match_order_keeps_pixels_four_times_the_radius() -> None:
    for radius in (0.5, 1.0, 3.0, 7.7, 30.0, 600.0):
        k = match_order(radius)
        assert RES0_ARCSEC / 2**k >= PIXEL_MARGIN * radius > RES0_ARCSEC / 2 ** (k + 1) / 2
    assert match_order(1e-6) == 29
    with pytest.raises(ValueError, match="too large"):
        match_order(20 * 3600.0)


def test_pixel_block_has_nine_distinct_pixels_but_at_the_eight_corners() -> None:
    for order in range(6):
        npix = 12 * 4**order
        hp29 = np.arange(npix, dtype=np.int64) << np.int64(2 * (29 - order))
        row, pix = pixel_block(hp29, order, threads=1)
        # 24 missing neighbours at every order: 8 corners where 3 base pixels meet
        assert row.size == 9 * npix - 24
        keys = row * npix + pix
        assert np.unique(keys).size == keys.size and pix.min() >= 0
        # neighbourhood is symmetric
        pairs = set(zip(row.tolist(), pix.tolist(), strict=True))
        assert all((p, r) in pairs for r, p in pairs)


def test_pixel_block_covers_every_partner_within_the_radius() -> None:
    rng = np.random.default_rng(11)
    order = 12
    radius_deg = RES0_ARCSEC / 2**order / PIXEL_MARGIN / 3600.0
    n = 400_000
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    # a third near the poles, a third at the polar-cap boundaries where pixels are thinnest
    dec[: n // 3] = rng.choice([-1, 1], n // 3) * (90 - rng.uniform(0, 0.05, n // 3))
    dec[n // 3 : 2 * (n // 3)] = rng.choice([-1, 1], n // 3) * (
        np.degrees(np.arcsin(2 / 3)) + rng.uniform(-0.05, 0.05, n // 3)
    )
    theta = rng.uniform(0, 2 * np.pi, n)
    ra2, dec2 = offset(ra, dec, radius_deg * np.sin(theta), radius_deg * np.cos(theta))
    row, pix = pixel_block(healpix_29(ra, dec), order, threads=2)
    partner = pixel_at_order(healpix_29(ra2, dec2), order)
    hit = np.zeros(n, bool)
    hit[row[pix == partner[row]]] = True
    assert hit.all()


# -- kernel against astropy ------------------------------------------------------------


@pytest.mark.timeout(60)
def test_same_pairs_as_astropy_on_a_million_sources() -> None:
    left, right = mock_sky(100_000, 1_000_000, seed=5)
    out = crossmatch_pairs(duckdb.connect(), left, right, radius_arcsec=3.0)
    mine, ref = kernel_pairs(out), astropy_pairs(left, right, 3.0)
    assert len(ref) > 80_000
    assert mine.keys() == ref.keys()
    keys = list(ref)
    assert np.allclose([mine[k] for k in keys], [ref[k] for k in keys], rtol=0, atol=1e-7)
    # the hard cases are in the data: both poles, RA = 0/360 and pixel edges
    lra = dict(zip(left["id"].to_pylist(), left["ra"].to_pylist(), strict=True))
    ldec = dict(zip(left["id"].to_pylist(), left["dec"].to_pylist(), strict=True))
    rra = dict(zip(right["id"].to_pylist(), right["ra"].to_pylist(), strict=True))
    assert sum(ldec[a] > 89.0 for a, _ in keys) > 100
    assert sum(ldec[a] < -89.0 for a, _ in keys) > 100
    assert sum(abs(lra[a] - rra[b]) > 180 for a, b in keys) > 10
    k = match_order(3.0)
    lpix = dict(
        zip(
            left["id"].to_pylist(),
            pixel_at_order(left["_healpix_29"].to_numpy(), k).tolist(),
            strict=True,
        )
    )
    rpix = dict(
        zip(
            right["id"].to_pylist(),
            pixel_at_order(right["_healpix_29"].to_numpy(), k).tolist(),
            strict=True,
        )
    )
    assert sum(lpix[a] != rpix[b] for a, b in keys) > 10_000


anywhere = st.tuples(
    st.one_of(st.floats(0.0, 360.0, exclude_max=True), st.sampled_from([0.0, 359.9999999])),
    st.one_of(st.floats(-90.0, 90.0), st.sampled_from([-90.0, 90.0, -89.9999, 89.9999, 0.0])),
)


@pytest.mark.slow
@pytest.mark.timeout(300)
@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    left=st.lists(anywhere, min_size=1, max_size=12),
    near=st.lists(
        st.tuples(st.integers(0, 11), st.floats(0.0, 2.0), st.floats(0.0, 2 * math.pi)), max_size=30
    ),
    far=st.lists(anywhere, max_size=10),
    radius_arcsec=st.floats(0.5, 30.0),
)
def test_same_pairs_as_astropy_anywhere_on_the_sky(
    left: list[tuple[float, float]],
    near: list[tuple[int, float, float]],
    far: list[tuple[float, float]],
    radius_arcsec: float,
) -> None:
    lra, ldec = np.array(left).T
    # right sources at 0..2 radii from left ones (so inside and outside), plus random ones
    host = np.array([i % len(left) for i, _, _ in near], dtype=int)
    dist = np.array([f for _, f, _ in near]) * radius_arcsec / 3600.0
    ang = np.array([a for _, _, a in near])
    nra, ndec = offset(lra[host], ldec[host], dist * np.sin(ang), dist * np.cos(ang))
    fra, fdec = np.array(far).T if far else (np.array([]), np.array([]))
    rra, rdec = np.concatenate([nra, fra]), np.concatenate([ndec, fdec])
    lt = position_table(np.arange(len(left)), lra, ldec)
    rt = position_table(np.arange(rra.size) + 1000, rra, rdec)
    mine = kernel_pairs(crossmatch_pairs(duckdb.connect(), lt, rt, radius_arcsec=radius_arcsec))
    ref = astropy_pairs(lt, rt, radius_arcsec)
    clear = {k for k, s in (mine | ref).items() if abs(s - radius_arcsec) > TIE_ARCSEC}
    assert mine.keys() & clear == ref.keys() & clear
    for k in mine.keys() & ref.keys():
        assert abs(mine[k] - ref[k]) < 1e-6


def test_radius_and_order_are_checked() -> None:
    left, right = mock_sky(10, 100, seed=1, n_fields=5)
    con = duckdb.connect()
    with pytest.raises(ValueError, match="positive"):
        crossmatch_pairs(con, left, right, radius_arcsec=0.0)
    with pytest.raises(ValueError, match="too fine"):
        crossmatch_pairs(con, left, right, radius_arcsec=3.0, order=15)
    coarse = crossmatch_pairs(con, left, right, radius_arcsec=3.0, order=9)
    fine = crossmatch_pairs(con, left, right, radius_arcsec=3.0)
    assert kernel_pairs(coarse) == kernel_pairs(fine)
    with pytest.raises(KeyError, match="epoch_jyear"):
        crossmatch_pairs(con, left, right, radius_arcsec=3.0, proper_motion=True)


# -- proper motion ---------------------------------------------------------------------


def _pm_inputs(
    ra: float, dec: float, pmra: float, pmdec: float, epoch: float | None
) -> tuple[pa.Table, pa.Table]:
    # motion along the local east/north directions (gnomonic): right even next to the pole
    dt = (epoch or 2016.0) - 2016.0
    ra_obs, dec_obs = offset(
        np.array([ra]),
        np.array([dec]),
        np.array([pmra * dt / 3.6e6]),
        np.array([pmdec * dt / 3.6e6]),
    )
    left = position_table([1], ra_obs, dec_obs).append_column(
        "epoch_jyear", pa.array([epoch], pa.float64())
    )
    right = position_table([99, 100], [ra, ra + 0.01], [dec, dec]).append_column(
        "pmra", pa.array([pmra, None], pa.float64())
    )
    right = right.append_column("pmdec", pa.array([pmdec, None], pa.float64()))
    right = right.append_column("ref_epoch", pa.array([2016.0, 2016.0]))
    return left, right


@pytest.mark.parametrize("dec", [30.0, -75.0, 89.99])
def test_high_proper_motion_star_is_found_only_when_propagated(dec: float) -> None:
    con = duckdb.connect()
    # 800 mas/yr observed 10 yr after 2016: 8" from its catalogued position
    left, right = _pm_inputs(150.0, dec, 480.0, -640.0, 2026.0)
    still = crossmatch_pairs(con, left, right, radius_arcsec=3.0)
    assert still.num_rows == 0
    moved = crossmatch_pairs(con, left, right, radius_arcsec=3.0, proper_motion=True)
    assert moved["right_id"].to_pylist() == [99]
    assert moved["sep_arcsec"][0].as_py() < 1e-6
    sep = (
        SkyCoord(150.0 * u.deg, dec * u.deg)
        .separation(
            SkyCoord(
                moved["right_ra_obs"][0].as_py() * u.deg, moved["right_dec_obs"][0].as_py() * u.deg
            )
        )
        .to_value(u.arcsec)
    )
    assert sep == pytest.approx(8.0, abs=0.001)


def test_fastest_stars_over_fifteen_years_are_found() -> None:
    rng = np.random.default_rng(21)
    n = 2000
    ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    pm = 10 ** rng.uniform(1, 3, n)  # 10 .. 1000 mas/yr
    ang = rng.uniform(0, 2 * np.pi, n)
    epoch = rng.uniform(2001.0, 2031.0, n)
    pm[0], epoch[0] = 1000.0, 2031.0  # the extreme case: 15" in 15 years
    pmra, pmdec = pm * np.sin(ang), pm * np.cos(ang)
    dt = epoch - 2016.0
    ra_obs, dec_obs = offset(ra, dec, pmra * dt / 3.6e6, pmdec * dt / 3.6e6)
    left = position_table(np.arange(n), ra_obs, dec_obs).append_column(
        "epoch_jyear", pa.array(epoch)
    )
    right = position_table(np.arange(n) + 10_000, ra, dec)
    for name, col in (("pmra", pmra), ("pmdec", pmdec), ("ref_epoch", np.full(n, 2016.0))):
        right = right.append_column(name, pa.array(col))
    out = crossmatch_pairs(duckdb.connect(), left, right, radius_arcsec=1.0, proper_motion=True)
    found = dict(zip(out["left_id"].to_pylist(), out["right_id"].to_pylist(), strict=True))
    assert found == {i: i + 10_000 for i in range(n)}
    moved_arcsec = pm * np.abs(dt) / 1000
    assert (moved_arcsec > 5).sum() > 100 and moved_arcsec.max() == pytest.approx(15.0)


def test_no_epoch_or_no_proper_motion_means_no_motion() -> None:
    con = duckdb.connect()
    left, right = _pm_inputs(10.0, 10.0, 480.0, -640.0, None)  # no epoch: stays at 2016
    out = crossmatch_pairs(con, left, right, radius_arcsec=3.0, proper_motion=True)
    assert out["right_id"].to_pylist() == [99] and out["sep_arcsec"][0].as_py() < 1e-6
    left = position_table([1], [10.01], [10.0]).append_column("epoch_jyear", pa.array([2030.0]))
    out = crossmatch_pairs(con, left, right, radius_arcsec=3.0, proper_motion=True)
    assert out["right_id"].to_pylist() == [100]  # null pm: at its catalogued position
    assert out["right_ra_obs"][0].as_py() == pytest.approx(10.01, abs=1e-12)


# -- best match and ambiguity ------------------------------------------------------------


def test_best_match_and_ambiguity_rule() -> None:
    cases = {  # left_id: separations of its candidates (right ids 1, 2, ...)
        1: [0.4],  # alone
        2: [0.5, 2.9],  # second beyond max(0.75, 1.5): clear
        3: [0.5, 1.4],  # second within best + 1": ambiguous
        4: [2.0, 2.9],  # second within 1.5 x best: ambiguous
        5: [0.1, 1.2],  # beyond max(0.15, 1.1): clear
        6: [1.0, 1.0, 2.5],  # tie: the smaller right id wins, ambiguous
    }
    rows = [(lid, 10 * lid + j, s) for lid, seps in cases.items() for j, s in enumerate(seps)]
    pairs = pa.table(
        {
            "left_id": [r[0] for r in rows],
            "right_id": [r[1] for r in rows],
            "sep_arcsec": [r[2] for r in rows],
            "right_ra_obs": [0.0] * len(rows),
            "right_dec_obs": [0.0] * len(rows),
        }
    )
    best = pl.from_arrow(best_matches(duckdb.connect(), pairs)).sort("left_id")
    assert best["right_id"].to_list() == [10, 20, 30, 40, 50, 60]
    assert best["n_within"].to_list() == [1, 2, 2, 2, 2, 3]
    assert best["ambiguous"].to_list() == [False, False, True, True, False, True]


# -- the stage ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("xmatch")
    simulate_night(work / "night", n=300, seed=3)
    # fine partitions (13.7') so that many targets sit near a partition edge
    with Catalog.create(work / "cat", partition_order=8) as cat:
        ingest(cat, [work / "night" / "spectra"], workers=1, progress=False)
        before = xmatch(cat, progress=False)
        ingest_refcat(cat, "gaia", [work / "night" / "gaia.parquet"], progress=False)
        ingest_refcat(cat, "ps1", [work / "night" / "ps1.parquet"], progress=False)
        after_refs = xmatch(cat, progress=False)
        rerun = xmatch(cat, rerun=True, progress=False)
    return {
        "work": work,
        "cat": work / "cat",
        "before": before,
        "after_refs": after_refs,
        "rerun": rerun,
    }


def test_missing_references_leave_nulls_and_are_reported(matched: dict[str, object]) -> None:
    before = matched["before"]
    assert before.n_todo == 300 and before.missing_references == ["gaia", "ps1"]
    assert before.n_matched == {"gaia": 0, "ps1": 0}
    # matched at this radius already: nothing to do until --rerun
    assert matched["after_refs"].n_todo == 0


def test_best_gaia_and_ps1_match_are_the_truth(matched: dict[str, object]) -> None:
    rerun = matched["rerun"]
    assert rerun.n_todo == 300 and rerun.missing_references == []
    truth = pl.read_parquet(Path(matched["work"]) / "night" / "truth.parquet")
    with lamostdb.open(matched["cat"]) as cat:
        x = cat.sql("SELECT * FROM xmatch")
    assert x.height == 300 and x["specid"].n_unique() == 300
    assert (x["run_id"] == rerun.run_id).all()
    j = truth.join(x, on="obsid", suffix="_x")
    g = j.filter(pl.col("gaia_source_id").is_not_null())
    assert g.height > 250
    assert (g["gaia_source_id"] == g["gaia_source_id_x"]).mean() >= 0.97
    p = j.filter(pl.col("ps1_objid").is_not_null())
    assert (p["ps1_objid"] == p["ps1_objid_x"]).mean() >= 0.97
    # positions are propagated: fast stars are found at their observed place
    fast = g.filter(pl.col("high_pm"))
    assert fast.height > 0 and fast["gaia_sep_arcsec"].max() < 0.01
    # targets without a Gaia counterpart: nulls and zero counts, never a wrong source id
    none = j.filter(pl.col("gaia_source_id_x").is_null())
    assert (none["gaia_n_within"] == 0).all() and none["gaia_sep_arcsec"].is_null().all()
    assert ((x["gaia_n_within"] >= 1) == x["gaia_source_id"].is_not_null()).all()
    assert (x["gaia_ambiguous"] <= (x["gaia_n_within"] >= 2)).all()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_counterparts_in_the_neighbouring_partition_are_found(
    matched: dict[str, object], tmp_path: Path
) -> None:
    # 3.4' partitions and a mock Gaia source 2.9" from every spectrum: some cross an edge
    night = Path(matched["work"]) / "night"
    with Catalog.create(tmp_path / "cat", partition_order=10) as cat:
        ingest(cat, [night / "spectra"], workers=1, progress=False)
        spec = cat.sql("SELECT obsid, ra, dec FROM spectra ORDER BY obsid")
        rng = np.random.default_rng(8)
        ang = rng.uniform(0, 2 * np.pi, spec.height)
        sep_deg = 2.9 / 3600.0
        ra, dec = offset(
            spec["ra"].to_numpy(),
            spec["dec"].to_numpy(),
            sep_deg * np.sin(ang),
            sep_deg * np.cos(ang),
        )
        ids = spec["obsid"].to_numpy() + 7
        n = spec.height
        pl.DataFrame(
            {
                "source_id": ids,
                "ra": ra,
                "dec": dec,
                "pmra": np.zeros(n),
                "pmdec": np.zeros(n),
                "parallax": np.ones(n),
                "ref_epoch": np.full(n, 2016.0),
                "phot_g_mean_mag": np.full(n, 15.0),
                "phot_bp_mean_mag": np.full(n, 15.3),
                "phot_rp_mean_mag": np.full(n, 14.6),
            }
        ).write_parquet(tmp_path / "gaia.parquet")
        ingest_refcat(cat, "gaia", [tmp_path / "gaia.parquet"], progress=False)
        rep = xmatch(cat, progress=False)
        x = cat.sql("SELECT obsid, gaia_source_id, gaia_sep_arcsec FROM xmatch ORDER BY obsid")
    crossing = pixel_at_order(
        healpix_29(spec["ra"].to_numpy(), spec["dec"].to_numpy()), 10
    ) != pixel_at_order(healpix_29(ra, dec), 10)
    assert crossing.sum() >= 5
    assert rep.missing_references == ["ps1"]
    assert (x["gaia_source_id"].to_numpy() == ids).all()
    assert np.allclose(x["gaia_sep_arcsec"].to_numpy(), 2.9, atol=1e-6)


def test_reference_files_of_neighbouring_partitions_are_read() -> None:
    from lamostdb.catalog.hats import TableFile
    from lamostdb.xmatch.stage import MAX_MOTION_ARCSEC, _files_near

    # a spectrum 1" from the corner of an order-6 pixel (the pruning order for 3"), inside
    pix6 = 20_000
    lon, lat = core.boundaries_lonlat([pix6], 1, 2**6, order="nested")
    c_lon, c_lat = core.healpix_to_lonlat([pix6], 2**6, order="nested")
    corner_ra, corner_dec = lon.to_value(u.deg)[0, 0], lat.to_value(u.deg)[0, 0]
    east = (c_lon.to_value(u.deg)[0] - corner_ra) * np.cos(np.radians(corner_dec))
    north = c_lat.to_value(u.deg)[0] - corner_dec
    step = 1.0 / 3600.0 / np.hypot(east, north)
    ra, dec = offset(
        np.array([corner_ra]),
        np.array([corner_dec]),
        np.array([east * step]),
        np.array([north * step]),
    )
    hp = healpix_29(ra, dec)
    assert pixel_at_order(hp, 6)[0] == pix6
    # files at order 10: every pixel within 10' of the spectrum, and one 10 deg away
    ring_ra, ring_dec = offset(
        np.repeat(ra, 400),
        np.repeat(dec, 400),
        *(np.random.default_rng(3).uniform(-1, 1, (2, 400)) / 6.0),
    )
    near = np.unique(pixel_at_order(healpix_29(ring_ra, ring_dec), 10))
    far = pixel_at_order(healpix_29(ra + 10.0, dec), 10)
    files = [TableFile(f"f{p}", 10, int(p), 1) for p in np.r_[near, far]]
    chosen = {f.npix for f in _files_near(files, hp, 3.0)}
    assert set(near.tolist()) <= chosen and int(far[0]) not in chosen
    assert len({p >> 8 for p in near.tolist()}) >= 2  # the ring spans several order-6 pixels
    assert MAX_MOTION_ARCSEC >= 10.4 * 50  # Barnard's star over 50 years


def test_xmatch_view_and_history_follow_the_contract(matched: dict[str, object]) -> None:
    schema = load_schema("xmatch")
    with lamostdb.open(matched["cat"]) as cat:
        for name in ("xmatch", "xmatch_history"):
            cols = cat.con.sql(f"DESCRIBE {name}").fetchall()  # name from a fixed list
            assert [(c[0], c[1]) for c in cols] == [(c.name, c.duckdb_type) for c in schema.columns]
        hist = cat.sql("SELECT run_id, count(*) AS n FROM xmatch_history GROUP BY run_id")
        keys = cat.sql("SELECT specid, source_sha256, run_id FROM xmatch_history")
        nulls = cat.sql(
            "SELECT "
            + ", ".join(
                f"count(*) FILTER (WHERE {c.name} IS NULL) AS {c.name}"
                for c in schema.columns
                if not c.nullable
            )
            + " FROM xmatch_history"
        )
    assert sorted(hist["n"].to_list()) == [300, 300]
    assert keys.unique().height == keys.height
    assert all(v == 0 for v in nulls.row(0))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_later_runs_match_only_new_spectra(matched: dict[str, object], tmp_path: Path) -> None:
    work = Path(matched["work"])
    simulate_night(tmp_path / "night2", n=40, seed=4)
    with Catalog(matched["cat"], mode="w") as cat:
        ingest(cat, [tmp_path / "night2" / "spectra"], workers=1, progress=False)
        new = xmatch(cat, progress=False)
        again = xmatch(cat, progress=False)
        n_runs = cat.sql("SELECT count(*) AS n FROM runs WHERE stage = 'xmatch'")["n"][0]
        other_radius = xmatch(cat, radius_arcsec=2.0, progress=False)
        x = cat.sql("SELECT radius_arcsec, count(*) AS n FROM xmatch GROUP BY 1")
    assert new.n_todo == 40 and again.n_todo == 0
    assert n_runs == 3  # the no-op run committed nothing
    assert other_radius.n_todo == 340
    assert x.rows() == [(2.0, 340)]
    assert work.exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cli_xmatch(matched: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="lamostdb")
    add_xmatch_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["xmatch", str(matched["cat"]), "--radius-arcsec", "2.5", "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert 'matched within 2.5"' in out and "gaia" in out
    assert args.func(args) == 0
    assert "nothing to do" in capsys.readouterr().out
