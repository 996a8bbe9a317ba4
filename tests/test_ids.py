"""Identifiers (LID, GID, UID), the ids stage, and the lrs / mec views."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
from conftest import SHIPPED_FILES, SHIPPED_SPECTRA
from hypothesis import given, settings
from hypothesis import strategies as st

from lamostdb.catalog.schema import load_schema
from lamostdb.catalog.store import Catalog
from lamostdb.healpix import healpix_29
from lamostdb.ids import compute_ids, designation, fof_pairs, uid_aliases
from lamostdb.ids.fof import components
from lamostdb.io import read_spectrum
from lamostdb.io.sqlfiles import load_sql, statement

ARCSEC = 1 / 3600
XMATCH_TYPES: dict[str, Any] = {
    "specid": pl.String,
    "source_sha256": pl.String,
    "obsid": pl.Int64,
    "ra": pl.Float64,
    "dec": pl.Float64,
    "mjd": pl.Int32,
    "gaia_source_id": pl.Int64,
    "gaia_sep_arcsec": pl.Float64,
    "gaia_n_within": pl.Int32,
    "gaia_ambiguous": pl.Boolean,
    "gaia_ra": pl.Float64,
    "gaia_dec": pl.Float64,
    "gaia_ra_obs_epoch": pl.Float64,
    "gaia_dec_obs_epoch": pl.Float64,
    "gaia_pmra": pl.Float64,
    "gaia_pmdec": pl.Float64,
    "gaia_parallax": pl.Float64,
    "gaia_g_mag": pl.Float64,
    "gaia_bp_mag": pl.Float64,
    "gaia_rp_mag": pl.Float64,
    "ps1_objid": pl.Int64,
    "ps1_sep_arcsec": pl.Float64,
    "ps1_n_within": pl.Int32,
    "ps1_ambiguous": pl.Boolean,
    "ps1_ra": pl.Float64,
    "ps1_dec": pl.Float64,
    "ps1_g_mag": pl.Float64,
    "ps1_r_mag": pl.Float64,
    "ps1_i_mag": pl.Float64,
    "ps1_z_mag": pl.Float64,
    "ps1_y_mag": pl.Float64,
    "radius_arcsec": pl.Float64,
    "run_id": pl.String,
    "_healpix_29": pl.Int64,
}


def xmatch_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A table with exactly the cross-match contract's columns; unset values are null
    (no counterpart), positions of counterparts default to the spectrum's."""
    out = []
    for r in rows:
        row = dict.fromkeys(XMATCH_TYPES)
        row.update(
            source_sha256="sha-" + r["specid"],
            radius_arcsec=3.0,
            run_id="xm1",
            gaia_n_within=0,
            ps1_n_within=0,
            gaia_ambiguous=False,
            ps1_ambiguous=False,
        )
        row.update(r)
        for cat, key in (("gaia", "gaia_source_id"), ("ps1", "ps1_objid")):
            if row[key] is not None:
                row[f"{cat}_ra"] = r.get(f"{cat}_ra", row["ra"])
                row[f"{cat}_dec"] = r.get(f"{cat}_dec", row["dec"])
                row[f"{cat}_sep_arcsec"] = r.get(f"{cat}_sep_arcsec", 0.5)
                row[f"{cat}_n_within"] = 1
        row["_healpix_29"] = int(healpix_29([row["ra"]], [row["dec"]])[0])
        out.append(row)
    return pl.DataFrame(out, schema=XMATCH_TYPES)


# -- designations ------------------------------------------------------------------
#: This DR1-era file's DESIG disagrees with its own RA/DEC by 7.8" (J024510.46+514502.3
#: vs RA=41.291417, DEC=51.751607 -> J024509.94+514505.7): no formatter can match it.
DESIG_DISAGREES_WITH_RADEC = {"spec-55919-B5591903_sp01-001.fits"}


def _lamost_records() -> list[Any]:
    return [read_spectrum(p) for p in SHIPPED_FILES if p.name.startswith("spec-")]


def test_designation_truncates_like_the_real_headers() -> None:
    recs = _lamost_records()
    assert len(recs) >= 15
    mine = designation([r.ra for r in recs], [r.dec for r in recs])
    differ = {
        Path(r.source_path).name for r, d in zip(recs, mine, strict=True) if d != r.designation
    }
    assert differ == DESIG_DISAGREES_WITH_RADEC
    # rounding instead of truncating would give 48.55 and 24.4 here
    assert designation(332.202274, -2.056767)[0] == "LAMOST J220848.54-020324.3"


def test_designation_sql_macro_equals_python() -> None:
    rng = np.random.default_rng(5)
    ra = np.concatenate([rng.uniform(0, 360, 3000), [0.0, 359.99999999, 157.5, 22.5]])
    dec = np.concatenate([rng.uniform(-90, 90, 3000), [-0.00001, 90.0, -90.0, 0.0]])
    # whole centiseconds / deciarcseconds exactly (truncation must not drop one unit)
    ra = np.concatenate([ra, np.arange(1, 500) * 0.01 / 240 * 7])
    dec = np.concatenate([dec, -np.arange(1, 500) * 0.1 / 3600 * 7])
    con = duckdb.connect()
    for name, stmt in load_sql("views_catalog.sql").items():
        if name.startswith("macro_"):
            con.execute(stmt)
    got = con.execute(
        "SELECT lamost_designation(ra, dec) FROM (SELECT unnest($ra) AS ra, unnest($dec) AS dec)",
        {"ra": ra.tolist(), "dec": dec.tolist()},
    ).fetchall()
    want = designation(ra, dec)
    assert [g[0] for g in got] == want.tolist()
    # 3493 whole centiseconds and 3493 whole deciarcseconds: no unit lost to binary rounding
    assert want[-1] == "LAMOST J000034.93-000549.3"
    assert designation(7 * 0.01 / 240, 0.0)[0] == "LAMOST J000000.07+000000.0"


# -- friends-of-friends ----------------------------------------------------------------
def test_fof_links_chains_transitively() -> None:
    # A-B 2.5", B-C 2.5", A-C 5": one group; D 10" away: its own
    ra = np.array([150.0, 150.0, 150.0, 150.0])
    dec = np.array([2.0, 2.0 + 2.5 * ARCSEC, 2.0 + 5.0 * ARCSEC, 2.0 + 15.0 * ARCSEC])
    i, j = fof_pairs(ra, dec, radius_arcsec=3.0)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(0, 1), (1, 2)]
    assert components(4, i, j).tolist() == [0, 0, 0, 1]
    ids = compute_ids(
        xmatch_frame(
            [{"specid": s, "ra": r, "dec": d} for s, r, d in zip("ABCD", ra, dec, strict=True)]
        )
    )
    assert ids["lid"].n_unique() == 2
    lid = ids["lid"].to_list()
    assert lid[0] == lid[1] == lid[2] != lid[3]
    assert lid[0] == int(healpix_29([150.0], [2.0])[0])  # key member: smallest specid, A


@pytest.mark.parametrize("radius_arcsec", [3.0, 40.0])
def test_fof_pairs_equal_brute_force(radius_arcsec: float) -> None:
    rng = np.random.default_rng(11)
    centres_ra = np.concatenate([rng.uniform(0, 360, 40), [0.0, 359.9999, 45.0, 200.0]])
    centres_dec = np.concatenate([rng.uniform(-89, 89, 40), [0.0, 0.0, 89.9999, -89.9999]])
    k = rng.integers(0, centres_ra.size, 900)
    scale = radius_arcsec * ARCSEC
    dec = np.clip(centres_dec[k] + rng.normal(0, scale, k.size), -90, 90)
    ra = (centres_ra[k] + rng.normal(0, scale, k.size) / np.cos(np.radians(dec))) % 360
    i, j = fof_pairs(ra, dec, radius_arcsec=radius_arcsec)
    xyz = np.stack(
        [
            np.cos(np.radians(dec)) * np.cos(np.radians(ra)),
            np.cos(np.radians(dec)) * np.sin(np.radians(ra)),
            np.sin(np.radians(dec)),
        ]
    )
    chord = np.linalg.norm(xyz[:, :, None] - xyz[:, None, :], axis=0)
    sep = np.degrees(2 * np.arcsin(np.clip(chord / 2, 0, 1))) * 3600
    bi, bj = np.nonzero(np.triu(sep <= radius_arcsec, k=1))
    # points within 1e-6" of the radius could go either way by rounding; there are none
    assert not np.any(np.abs(sep[np.triu_indices(ra.size, 1)] - radius_arcsec) < 1e-6)
    assert bi.size > 300  # the test does exercise many pairs
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == set(
        zip(bi.tolist(), bj.tolist(), strict=True)
    )


# -- GID, UID --------------------------------------------------------------------------
def test_gp_priority_gaia_then_ps1_then_lamost() -> None:
    ids = compute_ids(
        xmatch_frame(
            [
                {
                    "specid": "a",
                    "ra": 10.0,
                    "dec": 5.0,
                    "gaia_source_id": 111,
                    "ps1_objid": 222,
                    "gaia_ra": 10.0001,
                    "gaia_dec": 5.0001,
                },
                {
                    "specid": "b",
                    "ra": 20.0,
                    "dec": 5.0,
                    "ps1_objid": 333,
                    "ps1_ra": 20.0002,
                    "ps1_dec": 4.9998,
                },
                {"specid": "c", "ra": 30.0, "dec": 5.0},
            ]
        )
    )
    assert ids["gp_type"].to_list() == ["gaia", "ps1", "lamost"]
    assert ids["gp_id"].to_list()[:2] == [111, 333]
    assert ids["gp_id"][2] == ids["lid"][2] == int(healpix_29([30.0], [5.0])[0])
    assert ids["ura"].to_list() == [10.0001, 20.0002, 30.0]
    assert ids["udec"].to_list() == [5.0001, 4.9998, 5.0]
    assert ids["uid"].to_list() == healpix_29(ids["ura"], ids["udec"]).tolist()


def test_all_spectra_of_an_object_share_one_uid() -> None:
    rows = [
        {
            "specid": f"e{k}",
            "ra": 100.0 + k * 0.5 * ARCSEC,
            "dec": -30.0,
            "gaia_source_id": 77,
            "gaia_ra": 100.0,
            "gaia_dec": -30.0,
        }
        for k in range(3)
    ]
    rows += [{"specid": f"f{k}", "ra": 101.0, "dec": -30.0 + k * 1.0 * ARCSEC} for k in range(4)]
    rows += [{"specid": "g0", "ra": 102.0, "dec": -30.0, "ps1_objid": 5}]
    ids = compute_ids(xmatch_frame(rows))
    per_gp = ids.group_by("gp_type", "gp_id").agg(
        pl.col("uid").n_unique().alias("n"), pl.len().alias("m")
    )
    assert per_gp["n"].to_list() == [1, 1, 1]
    assert sorted(per_gp["m"].to_list()) == [1, 3, 4]
    assert ids["uid"].n_unique() == 3
    f = ids.filter(pl.col("gp_type") == "lamost")
    assert f["udec"][0] == pytest.approx(-30.0 + 1.5 * ARCSEC, abs=1e-12)


def test_unmatched_epoch_adopts_the_groups_unique_counterpart() -> None:
    rows = [
        {
            "specid": "a1",
            "ra": 50.0,
            "dec": 0.0,
            "gaia_source_id": 9,
            "gaia_ra": 50.0,
            "gaia_dec": -2.5 * ARCSEC,
        },
        {"specid": "a2", "ra": 50.0, "dec": 1.0 * ARCSEC},  # 3.5" from Gaia: no match
        # a group naming two Gaia sources: its unmatched member stays a LAMOST object
        {"specid": "b1", "ra": 60.0, "dec": 0.0, "gaia_source_id": 1},
        {"specid": "b2", "ra": 60.0, "dec": 2.0 * ARCSEC, "gaia_source_id": 2},
        {"specid": "b3", "ra": 60.0, "dec": 1.0 * ARCSEC},
    ]
    ids = compute_ids(xmatch_frame(rows)).sort("specid")
    assert ids["gp_type"].to_list() == ["gaia", "gaia", "gaia", "gaia", "lamost"]
    assert ids["gp_id"].to_list()[:4] == [9, 9, 1, 2]
    assert ids["uid"][0] == ids["uid"][1]
    assert ids["gp_id"][4] == ids["lid"][4]
    assert ids["lid"].n_unique() == 2


def test_lamost_mean_position_across_ra_zero() -> None:
    rows = [
        {"specid": "w1", "ra": 359.9999 + 0.0001 - 0.5 * ARCSEC, "dec": 10.0},
        {"specid": "w2", "ra": 0.5 * ARCSEC, "dec": 10.0},
    ]
    ids = compute_ids(xmatch_frame(rows))
    ura = ids["ura"][0]
    assert min(ura, 360 - ura) < 1e-9  # the mean of 359.99986 and 0.00014 is 0, not 180


def test_a_later_gaia_match_is_an_alias() -> None:
    night = [{"specid": "s1", "ra": 80.0, "dec": 20.0}, {"specid": "s2", "ra": 81.0, "dec": 20.0}]
    before = compute_ids(xmatch_frame(night))
    night[0] |= {"gaia_source_id": 4242, "gaia_ra": 80.0 + 0.3 * ARCSEC, "gaia_dec": 20.0}
    after = compute_ids(xmatch_frame(night))
    al = uid_aliases(before, after, "r2")
    assert al.rows() == [(before["uid"][0], after["uid"][0], "r2", "lamost->gaia")]


# -- stability ------------------------------------------------------------------------
def _simulated_set() -> pl.DataFrame:
    rng = np.random.default_rng(3)
    rows: list[dict[str, Any]] = []
    for obj in range(7):
        ra0, dec0 = 200.0 + obj * 0.01, 40.0
        for ep in range(1 + obj % 3):
            r: dict[str, Any] = {
                "specid": f"{55900 + 7 * ep + obj}-P{obj}_sp01-{ep:03d}",
                "ra": ra0 + rng.normal(0, 0.4) * ARCSEC,
                "dec": dec0 + rng.normal(0, 0.4) * ARCSEC,
            }
            if obj in (0, 1) or (obj == 2 and ep == 0):
                r |= {"gaia_source_id": 1000 + obj, "gaia_ra": ra0, "gaia_dec": dec0}
            elif obj == 3:
                r |= {"ps1_objid": 2000 + obj, "ps1_ra": ra0, "ps1_dec": dec0}
            rows.append(r)
    # a chain A-B-C (2.5" steps) and a pair bridged only by a later night's middle epoch
    rows += [
        {"specid": f"5600{k}-C_sp02-00{k}", "ra": 210.0, "dec": 41.0 + 2.5 * k * ARCSEC}
        for k in range(3)
    ]
    rows += [
        {"specid": "56010-D_sp02-001", "ra": 211.0, "dec": 41.0},
        {"specid": "56011-D_sp02-002", "ra": 211.0, "dec": 41.0 + 5.0 * ARCSEC},
        {"specid": "56012-D_sp02-003", "ra": 211.0, "dec": 41.0 + 2.5 * ARCSEC},
    ]
    return xmatch_frame(rows)


SIM = _simulated_set()
ID_COLUMNS = ["specid", "uid", "lid", "gp_id", "gp_type", "ura", "udec"]


@pytest.mark.slow
@pytest.mark.timeout(300)
@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    nights=st.lists(st.integers(0, 3), min_size=SIM.height, max_size=SIM.height),
    order=st.permutations(range(4)),
    shuffle_seed=st.integers(0, 2**16),
)
def test_ids_do_not_depend_on_how_nights_are_split_or_ordered(
    nights: list[int], order: list[int], shuffle_seed: int
) -> None:
    batch = compute_ids(SIM).select(ID_COLUMNS)
    rng = np.random.default_rng(shuffle_seed)
    night_of = np.array(nights)
    seen = pl.DataFrame(schema=SIM.schema)
    history: list[pl.DataFrame] = []
    aliases: list[pl.DataFrame] = []
    for n in order:
        rows = SIM.filter(pl.Series(night_of == n))
        seen = pl.concat([seen, rows[rng.permutation(rows.height).tolist()]])
        if seen.height == 0:
            continue
        ids = compute_ids(seen)
        if history:
            aliases.append(uid_aliases(history[-1], ids, f"run{len(history)}"))
        history.append(ids)
    final = history[-1].select(ID_COLUMNS)
    assert final.equals(batch)
    # every UID a spectrum ever had leads, through the aliases, to its final UID
    edges: dict[int, set[int]] = {}
    for a in aliases:
        for old, new in a.select("old_uid", "uid").iter_rows():
            edges.setdefault(old, set()).add(new)
    final_uid = dict(final.select("specid", "uid").iter_rows())
    for ids in history:
        for specid, uid in ids.select("specid", "uid").iter_rows():
            reach, todo = {uid}, [uid]
            while todo:
                for nxt in edges.get(todo.pop(), ()):
                    if nxt not in reach:
                        reach.add(nxt)
                        todo.append(nxt)
            assert final_uid[specid] in reach


def test_simulated_set_groups_as_designed() -> None:
    ids = compute_ids(SIM)
    chain = ids.filter(pl.col("specid").str.contains("-C_"))
    bridged = ids.filter(pl.col("specid").str.contains("-D_"))
    assert chain["uid"].n_unique() == 1 and bridged["uid"].n_unique() == 1
    # obj 2: epoch 0 matched Gaia, epochs 1.. adopt it
    obj2 = ids.filter(pl.col("specid").str.contains("-P2_"))
    assert obj2["gp_id"].to_list() == [1002] * obj2.height
    assert ids["uid"].n_unique() == 7 + 2


# -- the stage on a real catalogue ---------------------------------------------------------
@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from lamostdb.ingest.stage import ingest

    path = tmp_path_factory.mktemp("ids") / "cat"
    with Catalog.create(path) as cat:
        ingest(cat, [SHIPPED_SPECTRA], workers=1, progress=False)
    yield path


@pytest.fixture()
def ids_catalog(ingested: Path, tmp_path: Path) -> Path:
    """A private copy of the ingested shipped spectra, with an ids run and a Gaia alias."""
    path = tmp_path / "cat"
    shutil.copytree(ingested, path)
    return path


def _catalogue_xmatch(cat: Catalog, gaia: dict[str, int]) -> pl.DataFrame:
    sp = cat.sql("SELECT specid, source_sha256, obsid, ra, dec, mjd FROM spectra ORDER BY specid")
    rows = [
        r
        | (
            {
                "gaia_source_id": gaia[r["specid"]],
                "gaia_ra": r["ra"] + 0.2 * ARCSEC,
                "gaia_dec": r["dec"],
                "gaia_g_mag": 12.5,
            }
            if r["specid"] in gaia
            else {}
        )
        for r in sp.to_dicts()
    ]
    return xmatch_frame(rows)


def _run(cat: Catalog, xm: pl.DataFrame) -> Any:
    from lamostdb.ids import assign_ids

    # stand in for the cross-match stage's view, then give the catalogue's back
    cat.con.register("ids_test_xmatch", xm.to_arrow())
    cat.con.execute("CREATE OR REPLACE TEMP VIEW xmatch AS SELECT * FROM ids_test_xmatch")
    try:
        return assign_ids(cat, progress=False)
    finally:
        cat.refresh_views()
        cat.con.unregister("ids_test_xmatch")


def test_stage_writes_objects_records_aliases_and_is_idempotent(ids_catalog: Path) -> None:
    with Catalog(ids_catalog, mode="w") as cat:
        first = cat.sql("SELECT specid FROM spectra ORDER BY specid")["specid"][0]
        r1 = _run(cat, _catalogue_xmatch(cat, {}))
        n = cat.sql("SELECT count(*) AS n FROM spectra")["n"][0]
        assert r1.committed and r1.n_spectra == n == r1.n_written
        old = cat.sql("SELECT uid, gp_type FROM objects WHERE specid = $s", {"s": first})
        assert old["gp_type"][0] == "lamost"
        r2 = _run(cat, _catalogue_xmatch(cat, {first: 123456789}))
        assert r2.committed and r2.n_written == 1 and r2.n_aliases == 1
        new = cat.sql(
            "SELECT uid, gp_id, gp_type, gaia_g_mag FROM objects WHERE specid = $s", {"s": first}
        )
        assert new.row(0) == (r2_uid := new["uid"][0], 123456789, "gaia", 12.5)
        al = cat.sql("SELECT * FROM uid_aliases")
        assert al.rows() == [(old["uid"][0], r2_uid, r2.run_id, "lamost->gaia")]
        resolved = cat.con.execute(
            statement("ids.sql", "resolve_uid"), {"uid": old["uid"][0]}
        ).fetchall()
        assert resolved == [(r2_uid,)]
        assert cat.sql("SELECT count(*) AS n FROM objects")["n"][0] == n
        r3 = _run(cat, _catalogue_xmatch(cat, {first: 123456789}))
        assert not r3.committed and r3.n_written == 0 and r3.n_aliases == 0
        runs = cat.sql("SELECT count(*) AS n FROM runs WHERE stage = 'ids'")["n"][0]
        assert runs == 2


def _duck_columns(cat: Catalog, name: str) -> list[tuple[str, str]]:
    rows = cat.con.sql(f"DESCRIBE {name}").fetchall()  # name from a fixed list
    return [(r[0], r[1]) for r in rows]


@pytest.mark.parametrize("name", ["objects", "objects_history", "lrs", "mec", "uid_aliases"])
def test_views_match_their_schema_files(ids_catalog: Path, name: str) -> None:
    schema = load_schema("objects" if name == "objects_history" else name)
    with Catalog(ids_catalog, mode="w") as cat:
        first = cat.sql("SELECT min(specid) AS s FROM spectra")["s"][0]
        _run(cat, _catalogue_xmatch(cat, {}))
        _run(cat, _catalogue_xmatch(cat, {first: 99}))  # one alias, two runs in history
        assert _duck_columns(cat, name) == [(c.name, c.duckdb_type) for c in schema.columns]
        n_rows = cat.con.sql(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        assert n_rows > 0
        for c in schema.columns:
            if not c.nullable:
                n_null = cat.con.sql(
                    f"SELECT count(*) FROM {name} WHERE {c.name} IS NULL"
                ).fetchall()[0][0]
                assert n_null == 0, (name, c.name)
        if name != "objects_history":
            key = ", ".join(schema.primary_key)
            dup = cat.con.sql(
                f"SELECT count(*) FROM (SELECT {key} FROM {name} GROUP BY {key} "
                "HAVING count(*) > 1)"
            ).fetchall()[0][0]
            assert dup == 0


def test_lrs_designation_and_identifiers_on_real_spectra(ids_catalog: Path) -> None:
    with Catalog(ids_catalog, mode="w") as cat:
        _run(cat, _catalogue_xmatch(cat, {}))
        lrs = cat.sql(
            "SELECT specid, designation, lamost_designation(ra, dec) AS computed, "
            "uid FROM lrs ORDER BY specid"
        )
        spectra = cat.sql("SELECT specid, designation FROM spectra ORDER BY specid")
    assert lrs["uid"].null_count() == 0
    assert lrs["designation"].to_list() == spectra["designation"].to_list()
    differ = lrs.filter(pl.col("designation") != pl.col("computed"))
    assert differ["specid"].to_list() == ["55919-B5591903_sp01-001"]


# -- view contents on a hand-made example --------------------------------------------------
def _views_con(
    spectra: pl.DataFrame, results: pl.DataFrame, objects: pl.DataFrame
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # copied into DuckDB tables: views over registered Python Arrow objects, created and then
    # dropped inside one pytest process, were followed by a segfault in a later test
    for name, frame in (("spectra", spectra), ("results", results), ("objects_history", objects)):
        tmp = f"_src_{name}"
        con.register(tmp, frame.to_arrow())
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {tmp}")  # names from this list
        con.unregister(tmp)
    con.execute(statement("views.sql", "macro_latest_run_per_spectrum"))
    for stmt in load_sql("views_catalog.sql").values():
        con.execute(stmt)
    return con


def test_lrs_and_mec_values() -> None:
    # star S: 3 epochs (rv 10, 20, 30; given out of time order); object Q: GALAXY vs QSO,
    # one vote each, QSO fits better; object U: one epoch, never classified
    sp = pl.DataFrame(
        {
            "specid": ["s-b", "s-a", "s-c", "q-a", "q-b", "u-a"],
            "obsid": [2, 1, 3, 4, None, 6],
            "mjd": [57002, 57001, 57003, 58000, 58001, 59000],
            "snrg": [30.0, 5.0, 10.0, 8.0, 9.0, None],
            "ra": [10.0, 10.0, 10.0, 20.0, 20.0, 332.202274],
            "dec": [1.0, 1.0, 1.0, 2.0, 2.0, -2.056767],
            "designation": ["LAMOST Jx", None, None, None, None, ""],
        },
        schema_overrides={"obsid": pl.Int64, "mjd": pl.Int32, "snrg": pl.Float32},
    )
    for c in ("lmjd", "spid", "fiberid", "fibermask"):
        sp = sp.with_columns(pl.lit(None, pl.Int32).alias(c))
    for c in ("obsdate", "planid"):
        sp = sp.with_columns(pl.lit(None, pl.String).alias(c))
    for c in ("ra_obs", "dec_obs"):
        sp = sp.with_columns(pl.lit(None, pl.Float64).alias(c))
    for c in ("snru", "snrr", "snri", "snrz"):
        sp = sp.with_columns(pl.lit(None, pl.Float32).alias(c))
    sp = sp.with_columns(("sha-" + pl.col("specid")).alias("source_sha256"))
    res = pl.DataFrame(
        {
            "specid": ["s-a", "s-b", "s-c", "q-a", "q-b"],
            "class": ["STAR", "STAR", "STAR", "GALAXY", "QSO"],
            "subclass": ["G2", "G2", "G5", "Non", "Non"],
            "z": [1e-4, 2e-4, 3e-4, 0.5, 1.5],
            "z_err": [1e-5] * 5,
            "rv_kms": [10.0, 20.0, 30.0, None, None],
            "rv_err_kms": [1.5, 0.5, 1.0, None, None],  # results column since engine 0.3.0
            "rchi2": [1.0, 1.0, 1.0, 1.3, 1.1],
            "conf": [0.99, 0.98, 0.97, 0.9, 0.6],
            "zwarning": [0, 0, 4, 0, 256],
        }
    ).with_columns(("sha-" + pl.col("specid")).alias("source_sha256"))
    objs = xmatch_frame(
        [
            {"specid": s, "ra": r, "dec": d, "obsid": o}
            | ({"gaia_source_id": 5, "gaia_g_mag": 11.0} if s.startswith("s") else {})
            for s, r, d, o in sp.select("specid", "ra", "dec", "obsid").iter_rows()
        ]
    )
    ids = compute_ids(objs).with_columns(pl.lit("r1").alias("run_id"))
    con = _views_con(sp, res, ids)

    lrs = con.sql(
        "SELECT specid, designation, class, gp_type, rv_err_kms FROM lrs ORDER BY specid"
    ).pl()
    assert lrs.height == 6
    assert dict(zip(lrs["specid"], lrs["rv_err_kms"], strict=True))["s-a"] == 1.5
    assert dict(zip(lrs["specid"], lrs["designation"], strict=True))["s-b"] == "LAMOST Jx"
    assert (
        dict(zip(lrs["specid"], lrs["designation"], strict=True))["u-a"]
        == "LAMOST J220848.54-020324.3"
    )
    assert lrs.filter(pl.col("specid") == "u-a")["class"][0] is None

    mec = con.sql("SELECT * FROM mec ORDER BY ura").pl()
    s, q, u = mec.rows(named=True)
    assert s["n_epochs"] == 3 and s["obsids"] == [1, 2, 3]
    assert s["specids"] == ["s-a", "s-b", "s-c"] and s["mjds"] == [57001, 57002, 57003]
    assert (s["first_mjd"], s["last_mjd"]) == (57001, 57003)
    assert s["rv_mean_kms"] == pytest.approx(20.0) and s["rv_std_kms"] == pytest.approx(10.0)
    assert s["n_rv"] == 3 and s["class"] == "STAR" and s["n_class_votes"] == 3
    assert (s["best_specid"], s["best_obsid"], s["best_snrg"]) == ("s-b", 2, 30.0)
    assert (s["gp_type"], s["gp_id"], s["gaia_source_id"], s["gaia_g_mag"]) == ("gaia", 5, 5, 11.0)
    assert q["obsids"] == [4, None] and q["classes"] == ["GALAXY", "QSO"]
    assert q["class"] == "QSO" and q["n_class_votes"] == 1
    assert q["rv_mean_kms"] is None and q["rv_std_kms"] is None and q["n_rv"] == 0
    assert q["best_specid"] == "q-b" and q["gp_type"] == "lamost"
    assert u["n_epochs"] == 1 and u["class"] is None and u["n_classified"] == 0
    assert u["classes"] == [None] and u["best_specid"] == "u-a" and u["best_snrg"] is None
