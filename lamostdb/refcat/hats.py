"""Reference catalogues that stay where they are: HATS catalogues attached by path.

Gaia DR3 and Pan-STARRS1 are distributed for LSDB as HATS catalogues (written by
``hats-import``): a folder with ``properties`` (or ``hats.properties``), ``partition_info.csv``
and ``dataset/Norder=K/Dir=D/Npix=N[.parquet|/]``, often with a *margin cache* beside it (a
second HATS catalogue, ``dataproduct_type=margin``, holding for each partition the rows of its
neighbours within ``hats_margin_threshold`` arcsec of its edge).

:func:`attach_hats` checks such a catalogue (its columns map onto the ``gaia`` / ``ps1``
contract through ``column_map.json``) and records it in the catalogue's ``catalog_meta``
under ``refcat_hats_<kind>``, without copying a byte. :func:`attached` reads the record back.
The layout is read here with pyarrow (no ``hats`` dependency): properties, the partition
list, the schema of ``dataset/_common_metadata`` and, at match time, only the leaves asked
for (:func:`leaf_files`, :func:`read_leaves`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lamostdb.catalog.store import Catalog
from lamostdb.healpix import healpix_29, partition_dir, pixel_at_order
from lamostdb.io.sqlfiles import statement
from lamostdb.refcat.readers import (
    KINDS,
    RefcatError,
    SourceTable,
    accepted_names,
    column_map,
    resolve_columns,
)

#: Stored columns an attached catalogue must provide (xmatch needs them).
ATTACH_REQUIRED = {
    "gaia": ("source_id", "ra", "dec", "pmra", "pmdec", "ref_epoch"),
    "ps1": ("objID", "raMean", "decMean"),
}
#: ``catalog_meta`` key of the record of an attached catalogue of ``kind``.
META_KEY = "refcat_hats_{kind}"
#: HATS names of the order-29 pixel column (``_hipscat_index``: hipscat, HATS' predecessor).
HEALPIX_COLUMNS = ("_healpix_29", "_hipscat_index")


@dataclass(frozen=True)
class HatsCatalog:
    """The parts of a HATS catalogue folder that xmatch uses."""

    path: str
    properties: dict[str, str]
    pixels: tuple[tuple[int, int], ...]
    names: tuple[str, ...]

    @property
    def n_rows(self) -> int:
        return int(self.properties.get("hats_nrows", "0") or 0)

    @property
    def margin_threshold_arcsec(self) -> float | None:
        value = self.properties.get("hats_margin_threshold")
        return None if value is None else float(value)


@dataclass(frozen=True)
class AttachedRefcat:
    """An attached reference catalogue: where it is and how its columns map."""

    kind: str
    path: str
    columns: dict[str, str | None]
    margin: str | None = None
    margin_threshold_arcsec: float | None = None
    n_rows: int = 0
    n_partitions: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "path": self.path,
            "columns": self.columns,
            "margin": self.margin,
            "margin_threshold_arcsec": self.margin_threshold_arcsec,
            "n_rows": self.n_rows,
            "n_partitions": self.n_partitions,
            "notes": self.notes,
        }


def _properties(folder: Path) -> dict[str, str]:
    for name in ("hats.properties", "properties"):
        p = folder / name
        if p.is_file():
            out: dict[str, str] = {}
            for line in p.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, _, value = line.partition("=")
                    out[key.strip()] = value.strip()
            return out
    raise RefcatError(
        f"{folder}: not a HATS catalogue (no properties or hats.properties "
        "file); give the folder that hats-import wrote (it holds "
        "partition_info.csv and dataset/)"
    )


def open_hats(path: str | Path) -> HatsCatalog:
    """Read the properties, partition list and column names of the HATS catalogue at ``path``.

    Raises
    ------
    RefcatError
        ``path`` is not a HATS catalogue folder.
    """
    folder = Path(path).resolve()
    if not folder.is_dir():
        raise RefcatError(f"{folder}: no such folder (a HATS catalogue is a folder)")
    props = _properties(folder)
    info = folder / "partition_info.csv"
    if not info.is_file():
        raise RefcatError(
            f"{folder}: no partition_info.csv; is this a HATS catalogue written by hats-import?"
        )
    lines = [ln.split(",") for ln in info.read_text().splitlines() if ln.strip()]
    header = [h.strip() for h in lines[0]]
    try:
        io_, ip = header.index("Norder"), header.index("Npix")
    except ValueError:
        raise RefcatError(f"{info}: expected columns Norder and Npix, got {header}") from None
    pixels = tuple(sorted((int(r[io_]), int(r[ip])) for r in lines[1:]))
    common = folder / "dataset" / "_common_metadata"
    if common.is_file():
        names = tuple(pq.read_schema(common).names)
    elif pixels:
        names = tuple(pq.read_schema(leaf_files(str(folder), *pixels[0], props)[0]).names)
    else:
        names = ()
    return HatsCatalog(str(folder), props, pixels, names)


def leaf_files(
    path: str, norder: int, npix: int, properties: Mapping[str, str] | None = None
) -> list[str]:
    """Parquet files of partition ``(norder, npix)``: ``Npix=N.parquet``, or the files of
    the folder ``Npix=N/`` (``hats_npix_suffix=/``). Empty when the partition has none."""
    base = Path(path) / "dataset" / f"Norder={norder}" / f"Dir={partition_dir(npix)}"
    suffix = (properties or {}).get("hats_npix_suffix", ".parquet")
    leaf = base / f"Npix={npix}{'' if suffix == '/' else suffix}"
    if leaf.is_dir():
        return sorted(str(p) for p in leaf.iterdir() if p.suffix in (".parquet", ".pq"))
    if leaf.is_file():
        return [str(leaf)]
    other = base / f"Npix={npix}"
    if other.is_dir():
        return sorted(str(p) for p in other.iterdir() if p.suffix in (".parquet", ".pq"))
    return []


def _find_margin(cat: HatsCatalog) -> HatsCatalog | None:
    """A margin cache of ``cat``: named by a collection, else a sibling folder whose
    properties say ``dataproduct_type=margin`` for this catalogue."""
    folder = Path(cat.path)
    coll = folder.parent / "collection.properties"
    candidates: list[Path] = []
    if coll.is_file():
        props = _properties_file(coll)
        for key in ("default_margin", "all_margins"):
            for name in props.get(key, "").replace(",", " ").split():
                candidates.append(folder.parent / name)
    candidates += sorted(p for p in folder.parent.iterdir() if p.is_dir() and p != folder)
    name = cat.properties.get("obs_collection", folder.name)
    for cand in candidates:
        try:
            props = _properties(cand)
        except RefcatError:
            continue
        if props.get("dataproduct_type") != "margin":
            continue
        primary = props.get("hats_primary_table_url", "")
        if primary and Path(primary).name not in (folder.name, name):
            continue
        return open_hats(cand)
    return None


def _properties_file(p: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in p.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def map_hats_columns(
    cat: HatsCatalog, kind: str, overrides: Mapping[str, str | None] | None = None
) -> dict[str, str | None]:
    """Stored column -> column of ``cat`` (``column_map.json`` names and ``overrides``).

    Raises
    ------
    RefcatError
        A column xmatch needs (:data:`ATTACH_REQUIRED`) is missing; the message names it.
    """

    def unused(name: str) -> tuple[pa.Array, str | None]:  # pragma: no cover - never read
        raise AssertionError(name)

    given = dict(overrides or {})
    missing = [
        c
        for c in ATTACH_REQUIRED[kind]
        if given.get(c) is None and not any(n in cat.names for n in accepted_names(kind, c) or [c])
    ]
    if missing:
        c = missing[0]
        raise RefcatError(
            f"{cat.path}: the HATS catalogue has no column for {kind} column {c!r}, which "
            f"xmatch needs (missing: {missing}; accepted names for {c}: "
            f"{accepted_names(kind, c) or [c]}; the catalogue has {len(cat.names)} columns: "
            f"{', '.join(cat.names[:12])}{', ...' if len(cat.names) > 12 else ''}). Pass "
            f"--column {c}=NAME if it has another name."
        )
    src = SourceTable(Path(cat.path), "hats", cat.n_rows, cat.names, unused)
    sources = dict(resolve_columns(src, kind, overrides).sources)
    # the order-29 pixel column, or None: computed from ra, dec at read time
    sources["_healpix_29"] = next((n for n in HEALPIX_COLUMNS if n in cat.names), None)
    return sources


def attach_hats(
    catalog: Catalog,
    kind: str,
    path: str | Path,
    *,
    margin: str | Path | None = None,
    find_margin: bool = True,
    columns: Mapping[str, str | None] | None = None,
) -> AttachedRefcat:
    """Register the HATS catalogue at ``path`` as table ``kind`` of ``catalog`` (``mode='w'``).

    Nothing is copied: the path, the column mapping and the margin cache (``margin``, else
    one found beside it unless ``find_margin`` is false) are stored in ``catalog_meta``;
    :func:`lamostdb.xmatch.xmatch` then reads only the partitions it needs. Attaching again
    replaces the record.

    Raises
    ------
    RefcatError
        Not a HATS catalogue, or a column xmatch needs is missing.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    cat = open_hats(path)
    if cat.properties.get("dataproduct_type") == "margin":
        raise RefcatError(
            f"{cat.path} is a margin cache; attach its primary catalogue "
            f"({cat.properties.get('hats_primary_table_url', '?')}) instead"
        )
    if not cat.pixels:
        raise RefcatError(f"{cat.path}: partition_info.csv lists no partitions")
    sources = map_hats_columns(cat, kind, columns)
    notes = [
        f"{t}: absent, read as null"
        for t, s in sources.items()
        if s is None and t not in ATTACH_REQUIRED[kind] and t != "_healpix_29"
    ]
    mcat = open_hats(margin) if margin is not None else _find_margin(cat) if find_margin else None
    if mcat is not None and mcat.margin_threshold_arcsec is None:
        raise RefcatError(
            f"{mcat.path}: margin cache without hats_margin_threshold in its properties"
        )
    if mcat is None:
        notes.append("no margin cache: xmatch reads neighbouring partitions whole")
    rec = AttachedRefcat(
        kind,
        cat.path,
        sources,
        None if mcat is None else mcat.path,
        None if mcat is None else mcat.margin_threshold_arcsec,
        cat.n_rows,
        len(cat.pixels),
        notes,
    )
    with catalog.write_lock():
        catalog.con.execute(
            statement("ledger.sql", "set_meta"),
            {"key": META_KEY.format(kind=kind), "value": json.dumps(rec.as_dict(), sort_keys=True)},
        )
        catalog.publish()
    return rec


def attached(catalog: Catalog, kind: str) -> AttachedRefcat | None:
    """The HATS catalogue attached as ``kind``, or ``None``."""
    text = catalog.meta(META_KEY.format(kind=kind))
    if not text:
        return None
    d = json.loads(text)
    return AttachedRefcat(
        d["kind"],
        d["path"],
        dict(d["columns"]),
        d.get("margin"),
        d.get("margin_threshold_arcsec"),
        int(d.get("n_rows", 0)),
        int(d.get("n_partitions", 0)),
        list(d.get("notes", [])),
    )


def read_leaves(files: Sequence[str], kind: str, columns: Mapping[str, str | None]) -> pa.Table:
    """Rows of ``files`` (leaves of an attached catalogue) in the stored columns of ``kind``.

    Only the mapped columns are read. Columns absent from the catalogue are left out (the
    partition function reads them as null, or ``ref_epoch``'s default); ``_healpix_29`` is
    computed from the position when the catalogue has no pixel column.
    """
    wanted = {t: s for t, s in columns.items() if s is not None}
    names = sorted(set(wanted.values()))
    parts = [pq.read_table(f, columns=names) for f in files]
    table = pa.concat_tables(parts) if parts else None
    spec = column_map()[kind]
    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    n = 0 if table is None else table.num_rows
    for target, source in wanted.items():
        if table is not None:
            out[target] = table.column(source)
    for target, cspec in spec["columns"].items():
        if target not in out and cspec.get("default") is not None:
            out[target] = pa.array(np.full(n, cspec["default"]))
    if "_healpix_29" not in out:
        ra = out[spec["ra"]].to_numpy() if n else np.empty(0)
        dec = out[spec["dec"]].to_numpy() if n else np.empty(0)
        out["_healpix_29"] = pa.array(healpix_29(ra, dec), pa.int64())
    return pa.table(out)


def partitions_at(pixels: Iterable[tuple[int, int]], hp29: np.ndarray) -> set[tuple[int, int]]:
    """The partitions of ``pixels`` that contain one of the positions ``hp29``."""
    by_order: dict[int, set[int]] = {}
    for o, p in pixels:
        by_order.setdefault(o, set()).add(p)
    out: set[tuple[int, int]] = set()
    for o, pix in by_order.items():
        own = np.unique(pixel_at_order(hp29, o))
        out |= {(o, int(p)) for p in own.tolist() if int(p) in pix}
    return out
