"""Object identifiers from cross-matched spectra: LID, GID (``gp_id``) and UID.

Pure functions over Polars frames (no catalogue, no files); ``lamostdb.ids.stage`` runs
them over the catalogue. Every result depends only on the *set* of input rows, never on
their order (rows are sorted by ``specid`` first), so a catalogue built in one batch and
one built night by night, in any order, get the same identifiers.

Rules (DESIGN.md section 6):

- **LID**: friends-of-friends components of the spectra within ``radius_arcsec`` of each
  other (any night). A component's LID is the order-29 HEALPix index of its member with the
  smallest ``specid``. Specids start with the observing night (LMJD), so the key member
  of a component is its first night and the LID stays put as later nights join it; two
  components cannot share a LID because two spectra in one order-29 pixel (0.4 mas) are
  linked.
- **GID** (``gp_id``, ``gp_type``): a spectrum's own counterpart, Gaia before PS1. A
  spectrum without one adopts the counterpart of its LID component when the component's
  matched spectra (of the best type present) name exactly one source: the same star seen
  slightly further than the match radius from Gaia on one night. Otherwise the object is
  the LAMOST group itself: ``gp_type='lamost'``, ``gp_id=lid``.
- An **object** is one ``(gp_type, gp_id)``. Its unified position (``ura``, ``udec``) is the
  Gaia position (epoch 2016.0), the PS1 position, or the mean (unit-vector) position of
  the LAMOST group.
- **UID** is the order-29 nested HEALPix index of (ura, udec): a 64-bit integer that keeps
  the object's position to 0.4 mas, so neighbouring objects get nearby UIDs. In the
  (never yet seen) case of two objects in one order-29 pixel, the later one in
  (gp_type, gp_id) order takes the next free integer.
"""

from __future__ import annotations

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl

from lamostdb.healpix import healpix_29
from lamostdb.ids.fof import components, fof_pairs

GP_TYPES = ("gaia", "ps1", "lamost")  # priority order
#: Cross-match columns carried into ``objects`` so that ids and the counterparts shown
#: beside them always come from the same cross-match run.
CARRIED_COLUMNS = (
    "gaia_source_id",
    "gaia_sep_arcsec",
    "gaia_n_within",
    "gaia_ambiguous",
    "gaia_g_mag",
    "gaia_bp_mag",
    "gaia_rp_mag",
    "gaia_parallax",
    "gaia_pmra",
    "gaia_pmdec",
    "ps1_objid",
    "ps1_sep_arcsec",
    "ps1_n_within",
    "ps1_ambiguous",
    "ps1_g_mag",
    "ps1_r_mag",
    "ps1_i_mag",
    "ps1_z_mag",
    "ps1_y_mag",
)
REQUIRED_COLUMNS = (
    "specid",
    "source_sha256",
    "obsid",
    "ra",
    "dec",
    "gaia_ra",
    "gaia_dec",
    "ps1_ra",
    "ps1_dec",
    "run_id",
    *CARRIED_COLUMNS,
)


def _unit(
    ra_deg: npt.NDArray[np.float64], dec_deg: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _unique_uids(
    uid: npt.NDArray[np.int64], rank: npt.NDArray[np.int64], gp_id: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Bump colliding UIDs to the next integer, in (uid, gp_type, gp_id) order."""
    uid = uid.copy()
    for _ in range(1000):
        order = np.lexsort((gp_id, rank, uid))
        s = uid[order]
        dup = np.r_[False, s[1:] == s[:-1]]
        if not dup.any():
            return uid
        uid[order[dup]] += 1
    raise RuntimeError("could not make UIDs unique; this needs > 1000 objects in 0.4 mas")


def compute_ids(
    xmatch: pl.DataFrame,
    *,
    radius_arcsec: float = 3.0,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pl.DataFrame:
    """Identifiers of every spectrum of a cross-match table.

    Parameters
    ----------
    xmatch
        One row per spectrum with the columns of the cross-match contract
        (``REQUIRED_COLUMNS``); ``specid`` must be unique.
    radius_arcsec
        Friends-of-friends linking length.
    con
        DuckDB connection for the pair search (a private in-memory one by default).

    Returns
    -------
    polars.DataFrame
        Sorted by specid: specid, source_sha256, obsid, uid, lid, gp_id, gp_type, ura, udec,
        ra, dec, the ``CARRIED_COLUMNS``, xmatch_run_id and _healpix_29 (of ra, dec).
    """
    df = sorted_xmatch(xmatch)
    ra = df["ra"].to_numpy().astype(np.float64)
    dec = df["dec"].to_numpy().astype(np.float64)
    i, j = fof_pairs(ra, dec, radius_arcsec=radius_arcsec, con=con)
    return ids_from_links(df, i, j)


def sorted_xmatch(xmatch: pl.DataFrame) -> pl.DataFrame:
    """The cross-match rows in ``specid`` order (the row numbers links refer to), checked."""
    missing = [c for c in REQUIRED_COLUMNS if c not in xmatch.columns]
    if missing:
        raise KeyError(f"cross-match table lacks column(s) {missing}")
    df = xmatch.sort("specid")
    if df["specid"].n_unique() != df.height:
        raise ValueError("cross-match table has more than one row for some specid")
    return df


def ids_from_links(
    df: pl.DataFrame, i: npt.NDArray[np.int64], j: npt.NDArray[np.int64]
) -> pl.DataFrame:
    """Identifiers of the rows of ``df`` (from :func:`sorted_xmatch`) linked by the
    friends-of-friends pairs ``(i, j)`` (row numbers of ``df``, each pair once or more).

    This is the central step of the ids stage: the pairs may come from one join over all
    rows (:func:`compute_ids`) or from many partitions (:mod:`lamostdb.ids.partition`);
    the result depends only on the set of pairs. Returns what :func:`compute_ids` does.
    """
    n = df.height
    ra = df["ra"].to_numpy().astype(np.float64)
    dec = df["dec"].to_numpy().astype(np.float64)
    hp = healpix_29(ra, dec) if n else np.zeros(0, np.int64)
    comp = components(n, i, j)
    first = np.full(int(comp.max(initial=-1)) + 1, n, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(n, dtype=np.int64))  # rows are in specid order
    lid = hp[first[comp]] if n else np.zeros(0, np.int64)

    has_gaia = df["gaia_source_id"].is_not_null().to_numpy()
    has_ps1 = df["ps1_objid"].is_not_null().to_numpy()
    own_rank = np.where(has_gaia, 0, np.where(has_ps1, 1, 2)).astype(np.int64)
    own_id = np.where(
        has_gaia,
        df["gaia_source_id"].fill_null(0).to_numpy(),
        np.where(has_ps1, df["ps1_objid"].fill_null(0).to_numpy(), 0),
    ).astype(np.int64)
    ref_ra = np.where(
        has_gaia,
        df["gaia_ra"].fill_null(np.nan).to_numpy(),
        df["ps1_ra"].fill_null(np.nan).to_numpy(),
    )
    ref_dec = np.where(
        has_gaia,
        df["gaia_dec"].fill_null(np.nan).to_numpy(),
        df["ps1_dec"].fill_null(np.nan).to_numpy(),
    )

    # adoption: the unique best-type counterpart of each component, where there is one
    w = pl.DataFrame({"comp": comp, "rank": own_rank, "ref_id": own_id})
    matched = w.filter(pl.col("rank") < 2)
    best = (
        matched.filter(pl.col("rank") == pl.col("rank").min().over("comp"))
        .group_by("comp")
        .agg(
            pl.col("rank").first().alias("a_rank"),
            pl.col("ref_id").min().alias("a_id"),
            pl.col("ref_id").n_unique().alias("n_ids"),
        )
        .filter(pl.col("n_ids") == 1)
    )
    w = w.join(best, on="comp", how="left", maintain_order="left")
    adopted = (own_rank == 2) & w["a_rank"].is_not_null().to_numpy()
    gp_rank = np.where(adopted, w["a_rank"].fill_null(2).to_numpy(), own_rank).astype(np.int64)
    gp_id = np.where(
        adopted, w["a_id"].fill_null(0).to_numpy(), np.where(own_rank == 2, lid, own_id)
    ).astype(np.int64)

    # objects: one per (gp_type, gp_id)
    keys, obj = np.unique(np.column_stack([gp_rank, gp_id]), axis=0, return_inverse=True)
    obj = obj.ravel()
    n_obj = keys.shape[0]
    obj_rank, obj_gp = keys[:, 0], keys[:, 1]
    # reference position: from the first (smallest specid) spectrum matched to it directly
    direct = (own_rank < 2) & (own_rank == gp_rank)
    first_ref = np.full(n_obj, n, dtype=np.int64)
    np.minimum.at(first_ref, obj[direct], np.flatnonzero(direct))
    ura = np.full(n_obj, np.nan)
    udec = np.full(n_obj, np.nan)
    is_ref = obj_rank < 2
    ura[is_ref] = ref_ra[first_ref[is_ref]]
    udec[is_ref] = ref_dec[first_ref[is_ref]]
    # LAMOST groups: mean unit vector (correct across RA = 0/360 and near the poles);
    # bincount sums in row order, so the result does not depend on the input order
    xyz = _unit(ra, dec)
    sums = np.stack([np.bincount(obj, weights=xyz[k], minlength=n_obj) for k in range(3)])
    lam = ~is_ref
    ura[lam] = np.degrees(np.arctan2(sums[1, lam], sums[0, lam])) % 360.0
    udec[lam] = np.degrees(np.arctan2(sums[2, lam], np.hypot(sums[0, lam], sums[1, lam])))
    # a lone spectrum keeps its own position bit for bit (no unit-vector round trip)
    n_members = np.bincount(obj, minlength=n_obj)
    lone = lam & (n_members == 1)
    first_row = np.full(n_obj, n, dtype=np.int64)
    np.minimum.at(first_row, obj, np.arange(n, dtype=np.int64))
    ura[lone] = ra[first_row[lone]]
    udec[lone] = dec[first_row[lone]]
    if not (np.all(np.isfinite(ura)) and np.all(np.isfinite(udec))):
        raise ValueError(
            "a matched counterpart has no position (gaia_ra/gaia_dec or "
            "ps1_ra/ps1_dec is null); the cross-match table is incomplete"
        )
    obj_uid = _unique_uids(
        healpix_29(ura, udec) if n_obj else np.zeros(0, np.int64), obj_rank, obj_gp
    )

    return pl.DataFrame(
        {
            "specid": df["specid"],
            "source_sha256": df["source_sha256"],
            "obsid": df["obsid"],
            "uid": obj_uid[obj],
            "lid": lid,
            "gp_id": gp_id,
            "gp_type": np.array(GP_TYPES, dtype=object)[gp_rank].tolist(),
            "ura": ura[obj],
            "udec": udec[obj],
            "ra": ra,
            "dec": dec,
            **{c: df[c] for c in CARRIED_COLUMNS},
            "xmatch_run_id": df["run_id"],
            "_healpix_29": hp,
        },
        strict=False,
    )


def uid_aliases(previous: pl.DataFrame, current: pl.DataFrame, run_id: str) -> pl.DataFrame:
    """Old UIDs replaced by new ones, with the reason, for spectra present in both.

    ``previous`` and ``current`` have specid, uid, gp_type, gp_id. Reasons: ``A->B`` when
    the counterpart type changed (``lamost->gaia``: a catalogue now matches the object),
    ``<type> id changed`` when the same type names another source (for ``lamost``: the
    friends-of-friends group changed), ``position changed`` when only the unified position
    moved (a new epoch shifted a LAMOST group's mean position).
    """
    cols = ["specid", "uid", "gp_type", "gp_id"]
    old = previous.select(cols).rename({"uid": "old_uid", "gp_type": "old_type", "gp_id": "old_gp"})
    joined = old.join(current.select(cols), on="specid", how="inner")
    reason = (
        pl.when(pl.col("old_type") != pl.col("gp_type"))
        .then(pl.col("old_type") + "->" + pl.col("gp_type"))
        .when(pl.col("old_gp") != pl.col("gp_id"))
        .then(pl.col("gp_type") + " id changed")
        .otherwise(pl.lit("position changed"))
    )
    return (
        joined.filter(pl.col("old_uid") != pl.col("uid"))
        .with_columns(reason.alias("reason"))
        .group_by("old_uid", "uid")
        .agg(pl.col("reason").min())
        .with_columns(pl.lit(run_id).alias("run_id"))
        .select("old_uid", "uid", "run_id", "reason")
        .sort("old_uid", "uid")
    )
