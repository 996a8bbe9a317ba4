"""The typing table: line indices of labelled LAMOST stars, the data behind subclass typing.

Layout (FITS):

- primary HDU, no data: ``TYPEFMT = 'lamostdb-typing'``, ``TYPEVERS``, and the provenance
  (how the table was made, from which spectra, under which licence) as ``HISTORY`` cards;
- binary table ``EXTNAME = 'TYPING'``, one row per star: ``OBSID``, ``LABEL`` (LAMOST's
  ``SUBCLASS``), ``ORDINAL`` (on :mod:`lamostdb.templates.subclass`'s scale), ``SNRG``, then
  one float column per index (``lamostdb.match.indices.INDEX_NAMES``, NaN where a band had
  no good pixels).

The shipped table (``data/lamost_typing.fits``) is made by
``benchmarks/make_default_library.py`` together with the star library;
``lamostdb.match.spectype`` reads subclasses from it.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from lamostdb.templates.library import default_template_dir

TYPEFMT = "lamostdb-typing"
TYPEVERS = 1
EXTNAME = "TYPING"
DEFAULT_TYPING_TABLE = "lamost_typing.fits"
_FIXED = ("OBSID", "LABEL", "ORDINAL", "SNRG")


@dataclass(frozen=True)
class TypingSet:
    """Indices (N, F) of N labelled stars, with their labels and where they came from."""

    index_names: tuple[str, ...]
    indices: npt.NDArray[np.float64] = field(repr=False)
    labels: tuple[str, ...]
    ordinals: npt.NDArray[np.int64] = field(repr=False)
    obsids: npt.NDArray[np.int64] = field(repr=False)
    snrg: npt.NDArray[np.float64] = field(repr=False)
    provenance: str = ""

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.indices.shape != (n, len(self.index_names)):
            raise ValueError(
                f"typing set: indices {self.indices.shape}, expected ({n}, {len(self.index_names)})"
            )
        for name in ("ordinals", "obsids", "snrg"):
            if getattr(self, name).shape != (n,):
                raise ValueError(
                    f"typing set: {name} has shape {getattr(self, name).shape}, expected ({n},)"
                )


def write_typing_set(path: str | Path, ts: TypingSet) -> None:
    """Write ``ts`` atomically (temporary file, then rename), with checksums."""
    path = Path(path)
    primary = fits.PrimaryHDU()
    primary.header["TYPEFMT"] = TYPEFMT
    primary.header["TYPEVERS"] = TYPEVERS
    for line in textwrap.wrap(ts.provenance.encode("ascii", "replace").decode(), 70):
        primary.header.add_history(line)
    width = max([1, *(len(s) for s in ts.labels)])
    cols = [
        fits.Column(name="OBSID", format="K", array=ts.obsids.astype(np.int64)),
        fits.Column(name="LABEL", format=f"{width}A", array=np.array(ts.labels)),
        fits.Column(name="ORDINAL", format="J", array=ts.ordinals.astype(np.int32)),
        fits.Column(name="SNRG", format="E", array=ts.snrg.astype(np.float32)),
    ]
    cols += [
        fits.Column(name=n, format="E", array=ts.indices[:, k].astype(np.float32))
        for k, n in enumerate(ts.index_names)
    ]
    table = fits.BinTableHDU.from_columns(cols, name=EXTNAME)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fits.HDUList([primary, table]).writeto(tmp, overwrite=True, checksum=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_typing_set(path: str | Path) -> TypingSet:
    """Read a typing table written by :func:`write_typing_set`."""
    with fits.open(path, memmap=False) as hdul:
        if hdul[0].header.get("TYPEFMT") != TYPEFMT or EXTNAME not in hdul:
            raise ValueError(
                f"{path}: not a lamostdb typing table (TYPEFMT = "
                f"{hdul[0].header.get('TYPEFMT')!r}, expected {TYPEFMT!r} and "
                f"an HDU {EXTNAME!r}); make one with "
                "benchmarks/make_default_library.py"
            )
        prov = " ".join(str(c) for c in hdul[0].header.get("HISTORY", []))
        data = hdul[EXTNAME].data
        names = tuple(n for n in data.columns.names if n not in _FIXED)
        return TypingSet(
            index_names=names,
            indices=np.column_stack([np.asarray(data[n], np.float64) for n in names]),
            labels=tuple(str(s).strip() for s in data["LABEL"]),
            ordinals=np.asarray(data["ORDINAL"], np.int64),
            obsids=np.asarray(data["OBSID"], np.int64),
            snrg=np.asarray(data["SNRG"], np.float64),
            provenance=prov,
        )


def load_default_typing_set() -> TypingSet:
    """The shipped typing table of labelled LAMOST stars."""
    return load_typing_set(default_template_dir() / DEFAULT_TYPING_TABLE)
