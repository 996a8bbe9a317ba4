"""The HATS layout of one table: leaves, ``partition_info.csv``, ``properties``,
``dataset/_metadata`` and ``dataset/_common_metadata``.

A table is a folder::

    <table>/properties, hats.properties, partition_info.csv
    <table>/dataset/_metadata, _common_metadata
    <table>/dataset/Norder=K/Dir=D/Npix=N/<one Parquet file per ingest chunk>

Leaves are folders (``hats_npix_suffix=/``) so that each observing night adds files
to a leaf without rewriting it; ``hats.read_hats`` and ``lsdb.read_hats`` read that.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lamostdb.healpix import partition_dir
from lamostdb.io.parquet import atomic_write_bytes
from lamostdb.version import VERSION


@dataclass(frozen=True)
class TableFile:
    """One committed Parquet file of a table (path relative to the catalogue root)."""

    path: str
    norder: int
    npix: int
    n_rows: int


def leaf_relpath(table: str, norder: int, npix: int) -> str:
    """Leaf folder of a pixel, relative to the catalogue root."""
    return f"{table}/dataset/Norder={norder}/Dir={partition_dir(npix)}/Npix={npix}"


def write_table_metadata(
    root: Path,
    table: str,
    files: Sequence[TableFile],
    schema: pa.Schema,
    *,
    ra_column: str = "ra",
    dec_column: str = "dec",
) -> None:
    """Rewrite the HATS metadata of ``table`` from its committed file list."""
    tdir = root / table
    dataset = tdir / "dataset"
    dataset.mkdir(parents=True, exist_ok=True)
    pixels = sorted({(f.norder, f.npix) for f in files})
    rows_per_pixel: dict[tuple[int, int], int] = {}
    for f in files:
        rows_per_pixel[(f.norder, f.npix)] = rows_per_pixel.get((f.norder, f.npix), 0) + f.n_rows
    csv = "Norder,Npix\n" + "".join(f"{o},{p}\n" for o, p in pixels)
    atomic_write_bytes(tdir / "partition_info.csv", csv.encode())

    meta: pq.FileMetaData | None = None
    total_bytes = 0
    for f in sorted(files, key=lambda x: x.path):
        full = root / f.path
        total_bytes += full.stat().st_size
        md = pq.read_metadata(full)
        md.set_file_path(str(full.relative_to(dataset)))
        if meta is None:
            meta = md
        else:
            meta.append_row_groups(md)
    buf = io.BytesIO()
    if meta is not None:
        meta.write_metadata_file(buf)
        atomic_write_bytes(dataset / "_metadata", buf.getvalue())
    elif (dataset / "_metadata").exists():
        (dataset / "_metadata").unlink()
    buf = io.BytesIO()
    pq.write_metadata(schema, buf)
    atomic_write_bytes(dataset / "_common_metadata", buf.getvalue())

    total_rows = sum(f.n_rows for f in files)
    props = {
        "obs_collection": table,
        "dataproduct_type": "object",
        "hats_nrows": str(total_rows),
        "hats_col_ra": ra_column,
        "hats_col_dec": dec_column,
        "hats_col_healpix": "_healpix_29",
        "hats_col_healpix_order": "29",
        "hats_npix_suffix": "/",
        "hats_max_rows": str(max(rows_per_pixel.values(), default=0)),
        "hats_estsize": str(total_bytes // 1024),
        "hats_builder": f"lamostdb v{VERSION}",
    }
    text = "#HATS catalog\n" + "".join(f"{k}={v}\n" for k, v in props.items())
    atomic_write_bytes(tdir / "properties", text.encode())
    atomic_write_bytes(tdir / "hats.properties", text.encode())
