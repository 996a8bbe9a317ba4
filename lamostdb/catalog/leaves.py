"""Leaves of mixed HEALPix order: planning them by row count, and putting new files in them.

A table's leaves (``Norder=K/Dir=D/Npix=N`` folders) never overlap: every sky position lies
in at most one leaf. Stages write new files at the catalogue's ``partition_order``, but
after :mod:`lamostdb.catalog.compact` a table's leaves have the order its density asks for
(HATS-style: a leaf over the row threshold is split into its four children, small
siblings are merged into their parent). :func:`align_staged` keeps the rule when a stage
commits into such a table: a staged file whose pixel lies inside an existing coarser leaf
is moved into that leaf (its final path only: no rewrite), and one whose pixel holds finer
leaves is split by row among them (rows outside every finer leaf get leaves of their own,
at the coarsest order that overlaps none).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from lamostdb.catalog.hats import leaf_relpath
from lamostdb.healpix import SPATIAL_INDEX_ORDER, parent_pixel, pixel_at_order
from lamostdb.io.parquet import SPECTRA_ENCODING, ParquetEncoding, write_parquet


class _Staged(Protocol):
    """What :func:`align_staged` uses of a :class:`lamostdb.catalog.commit.StagedFile`
    (a frozen dataclass; not imported here: commit imports this module)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def table(self) -> str: ...
    @property
    def staged(self) -> str: ...
    @property
    def final(self) -> str: ...
    @property
    def norder(self) -> int: ...
    @property
    def npix(self) -> int: ...


StagedFile = TypeVar("StagedFile", bound=_Staged)

#: Deepest leaf order the planner makes; a denser leaf is written as several files.
MAX_LEAF_ORDER = 13

Pixel = tuple[int, int]  # (norder, npix)


def table_encoding(table: str) -> ParquetEncoding:
    """The Parquet encoding of a table's files (spectra: the measured pixel-array one)."""
    if table == "spectra":
        return SPECTRA_ENCODING
    return {"row_group_size": 65_536}


def pixel_range(norder: int, npix: int) -> tuple[int, int]:
    """The ``_healpix_29`` values ``[lo, hi)`` a pixel covers."""
    shift = 2 * (SPATIAL_INDEX_ORDER - norder)
    return npix << shift, (npix + 1) << shift


@dataclass(frozen=True)
class PlannedLeaf:
    """One leaf of a planned partitioning: its pixel and the rows it will hold."""

    norder: int
    npix: int
    n_rows: int


def plan_leaves(
    hp29_sorted: npt.NDArray[np.int64],
    threshold: int,
    *,
    min_order: int = 0,
    max_order: int = MAX_LEAF_ORDER,
) -> list[PlannedLeaf]:
    """Partition rows (their sorted ``_healpix_29``) into leaves of at most ``threshold`` rows.

    Top down, as HATS catalogues are partitioned: a pixel at order ``min_order`` or deeper
    holding at most ``threshold`` rows is a leaf; a fuller one is split into its four
    children, down to ``max_order``, where it stays one (over-full) leaf. Empty pixels get
    no leaf. The result is in ``_healpix_29`` order and its leaves never overlap.
    """
    if threshold < 1:
        raise ValueError(f"threshold must be >= 1 row, got {threshold}")
    out: list[PlannedLeaf] = []

    def visit(norder: int, npix: int) -> None:
        lo, hi = pixel_range(norder, npix)
        n = int(np.searchsorted(hp29_sorted, hi) - np.searchsorted(hp29_sorted, lo))
        if n == 0:
            return
        if norder >= max_order or (norder >= min_order and n <= threshold):
            out.append(PlannedLeaf(norder, npix, n))
            return
        for child in range(4 * npix, 4 * npix + 4):
            visit(norder + 1, child)

    for base in range(12):
        visit(0, base)
    return out


class LeafSet:
    """The leaves of one table, and their ancestors, to route rows into (see the module)."""

    def __init__(self, leaves: Iterable[Pixel] = ()) -> None:
        self.leaves: set[Pixel] = set()
        self.interior: set[Pixel] = set()  # strict ancestors of some leaf
        for leaf in leaves:
            self.add(leaf)

    def add(self, leaf: Pixel) -> None:
        self.leaves.add(leaf)
        norder, npix = leaf
        for k in range(norder):
            self.interior.add((k, parent_pixel(npix, norder, k)))

    def ancestor(self, pixel: Pixel) -> Pixel | None:
        """The leaf that holds ``pixel`` (itself or a coarser one), None when none does."""
        norder, npix = pixel
        for k in range(norder, -1, -1):
            if (k, parent_pixel(npix, norder, k)) in self.leaves:
                return k, parent_pixel(npix, norder, k)
        return None

    def route(
        self, hp29: npt.NDArray[np.int64], start_order: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(norder, npix) of the leaf each row goes to, for rows of one pixel at
        ``start_order`` that holds finer leaves: an existing leaf, else the coarsest pixel
        that overlaps no leaf (added to the set)."""
        n = hp29.size
        orders = np.full(n, -1, np.int64)
        pix = np.zeros(n, np.int64)
        pending = np.ones(n, bool)
        k = start_order
        while pending.any():
            q = pixel_at_order(hp29, k)
            for p in np.unique(q[pending]).tolist():
                if (
                    (k, p) not in self.leaves
                    and (k, p) in self.interior
                    and k < SPATIAL_INDEX_ORDER
                ):
                    continue  # finer leaves below: decide at k + 1
                rows = pending & (q == p)
                orders[rows], pix[rows] = k, p
                pending &= ~rows
                if (k, p) not in self.leaves:
                    self.add((k, p))
            k += 1
        return orders, pix


def align_staged(
    root: Path, files: Sequence[StagedFile], existing: dict[str, LeafSet]
) -> list[StagedFile]:
    """``files`` placed in the leaves of ``existing`` (table -> its leaves; updated).

    A file whose pixel is a leaf, or overlaps none, is kept; one inside a coarser leaf is
    given that leaf as its final place; one holding finer leaves is split into staged
    files beside it (the original is removed). Only staging is written: nothing a reader
    or a recovery sees changes.
    """
    out: list[StagedFile] = []
    for f in files:
        leaves = existing.setdefault(f.table, LeafSet())
        pixel = (f.norder, f.npix)
        owner = leaves.ancestor(pixel)
        if owner is not None:
            if owner != pixel:
                name = f.final.rsplit("/", 1)[-1]
                f = dataclasses.replace(
                    f,
                    norder=owner[0],
                    npix=owner[1],
                    final=f"{leaf_relpath(f.table, *owner)}/{name}",
                )
            out.append(f)
        elif pixel not in leaves.interior:
            leaves.add(pixel)
            out.append(f)
        else:
            out += _split(root, f, leaves)
    return out


def _split(root: Path, f: StagedFile, leaves: LeafSet) -> list[StagedFile]:
    """Split one staged file by the leaves its rows fall in (rows stay in their order)."""
    staged = root / f.staged
    table = pq.read_table(staged)
    orders, pix = leaves.route(table.column("_healpix_29").to_numpy(), f.norder)
    out: list[StagedFile] = []
    keys = sorted(set(zip(orders.tolist(), pix.tolist(), strict=True)))
    stem = f.staged.rsplit("/", 1)[0]
    name = f.final.rsplit("/", 1)[-1].removesuffix(".parquet")
    for i, (k, p) in enumerate(keys):
        piece = table.filter(pa.array((orders == k) & (pix == p)))
        piece_name = f"{name}-{i:03d}.parquet"
        rel = f"{stem}/{piece_name}"
        nbytes = write_parquet(piece, root / rel, **table_encoding(f.table))
        out.append(
            dataclasses.replace(
                f,
                staged=rel,
                final=f"{leaf_relpath(f.table, k, p)}/{piece_name}",
                norder=k,
                npix=p,
                n_rows=piece.num_rows,
                n_bytes=nbytes,
            )
        )
    os.unlink(staged)
    return out
