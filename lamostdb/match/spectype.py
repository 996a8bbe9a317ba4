"""Stellar subclass on LAMOST's scale from line indices: the k nearest labelled LAMOST stars.

The best-fitting template decides that a spectrum is a star and gives its velocity; its
subclass is then read from line strengths (:mod:`lamostdb.match.indices`), against a table of
real LAMOST stars whose indices and LAMOST subclasses are known (a :class:`TypingSet`, shipped
as ``templates/data/lamost_typing.fits``). Each index is standardised by the table's spread;
the subclass is the median subclass of the ``k`` nearest stars in that space.

Why not the template's own subclass: neighbouring LAMOST stacks (F9 and G0, say) are nearly
the same spectrum, so which of them fits best is decided by details that have nothing to do
with the type, and whole-spectrum fits are pulled by flux calibration. Measured by 5-fold
cross-validation on every labelled LAMOST star of ../shared (``benchmarks/validate_engine.py``),
the index typing agrees with LAMOST's letter and subclass far more often than the template's
label does; see README for the figures.

The table only speaks for the letters it holds enough stars of (``min_per_letter``): a star
whose template says O, B, M, L, WD or carbon keeps the template's subclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lamostdb.templates.subclass import LETTER_BASE, spell_subclass

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class IndexTyper:
    """A typing table made ready: standardised indices and the LAMOST ordinals."""

    index_names: tuple[str, ...]
    features: F64 = field(repr=False)  # (N, F) standardised; NaN replaced by 0 (the mean)
    ordinals: F64 = field(repr=False)  # (N,) LAMOST subclass ordinals (G5 = 45)
    mean: F64 = field(repr=False)
    scale: F64 = field(repr=False)
    letters: tuple[str, ...]  # letters with at least min_per_letter stars in the table
    k: int = 7
    source: str = ""

    def standardise(self, indices: F64) -> F64:
        z = (np.asarray(indices, dtype=np.float64) - self.mean) / self.scale
        return np.where(np.isfinite(z), z, 0.0)


def prepare_typer(
    index_names: tuple[str, ...],
    indices: npt.ArrayLike,
    ordinals: npt.ArrayLike,
    *,
    k: int = 7,
    min_per_letter: int = 30,
    source: str = "",
) -> IndexTyper:
    """An :class:`IndexTyper` from a table of indices (N, F) and LAMOST subclass ordinals."""
    x = np.asarray(indices, dtype=np.float64)
    o = np.asarray(ordinals, dtype=np.float64)
    if x.ndim != 2 or x.shape != (o.size, len(index_names)):
        raise ValueError(
            f"typing table: indices {x.shape} do not match {o.size} stars x "
            f"{len(index_names)} index names"
        )
    if o.size < k:
        raise ValueError(f"typing table: {o.size} stars, fewer than k = {k}")
    mean = np.nanmean(x, axis=0)
    scale = np.nanstd(x, axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    base = {v: name for name, v in LETTER_BASE.items() if v < 100}
    decade = (o // 10) * 10
    letters = tuple(base[d] for d in sorted(base) if int(np.sum(decade == d)) >= min_per_letter)
    typer = IndexTyper(tuple(index_names), np.zeros(0), o, mean, scale, letters, k, source)
    return IndexTyper(typer.index_names, typer.standardise(x), o, mean, scale, letters, k, source)


def type_ordinals(typer: IndexTyper, indices: npt.ArrayLike) -> F64:
    """Median LAMOST ordinal of the ``k`` nearest table stars of each row (S, F) -> (S,)."""
    q = typer.standardise(np.atleast_2d(indices))
    t = typer.features
    # squared distances through one BLAS product: |q|^2 + |t|^2 - 2 q.t
    d2 = (q * q).sum(axis=1)[:, None] + (t * t).sum(axis=1)[None, :] - 2.0 * (q @ t.T)
    k = min(typer.k, t.shape[0])
    near = np.argpartition(d2, k - 1, axis=1)[:, :k]
    return np.median(typer.ordinals[near], axis=1)


def type_subclasses(typer: IndexTyper, indices: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """LAMOST-spelled subclasses (``'G5'``) of rows of indices."""
    return np.array([spell_subclass(o) for o in type_ordinals(typer, indices)], dtype="U8")
