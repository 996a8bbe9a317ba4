"""Acceptance figures: a measured value, its target, and whether it is met (pure functions).

Used by ``benchmarks/validate_engine.py`` to print one table; nothing here reads a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lamostdb.validate.metrics import robust_scatter

__all__ = [
    "Figure",
    "Target",
    "best_rchi2_by_class",
    "confusion_counts",
    "format_confusion",
    "format_table",
    "fraction",
    "robust_scatter",
]


@dataclass(frozen=True)
class Target:
    """An interval the value must fall in: ``low <= value <= high`` (either end may be open).

    >>> Target(low=0.995).met(0.996), Target(high=0.0).met(2.0), Target(low=0.8).met(None)
    (True, False, None)
    >>> Target(low=0.8, high=1.25).text(".2f"), Target(low=0, high=0).text(".0f")
    ('[0.80, 1.25]', '= 0')
    """

    low: float | None = None
    high: float | None = None

    def met(self, value: float | None) -> bool | None:
        """Whether ``value`` is in the interval; None when there is no value."""
        if value is None or not np.isfinite(value):
            return None
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def text(self, fmt: str = ".4g", *, percent: bool = False) -> str:
        """``>= 99.5 %``, ``<= 3``, ``[0.8, 1.25]`` or ``= 0``."""

        def show(v: float) -> str:
            return f"{100 * v:{fmt}} %" if percent else f"{v:{fmt}}"

        if self.low is not None and self.high is not None:
            if self.low == self.high:
                return f"= {show(self.low)}"
            return f"[{show(self.low)}, {show(self.high)}]"
        if self.low is not None:
            return f">= {show(self.low)}"
        if self.high is not None:
            return f"<= {show(self.high)}"
        return "report"


@dataclass(frozen=True)
class Figure:
    """One row of the acceptance table."""

    name: str
    value: float | None
    target: Target
    detail: str = ""
    fmt: str = ".4f"
    percent: bool = False

    @property
    def verdict(self) -> str:
        """``MET``, ``NOT MET`` or ``n/a`` (no value, or nothing to compare with)."""
        if self.target.low is None and self.target.high is None:
            return "report"
        ok = self.target.met(self.value)
        return "n/a" if ok is None else "MET" if ok else "NOT MET"

    def value_text(self) -> str:
        """The value in the row's format (``-`` when there is none)."""
        if self.value is None or not np.isfinite(self.value):
            return "-"
        return f"{100 * self.value:{self.fmt}} %" if self.percent else f"{self.value:{self.fmt}}"


def format_table(figures: Sequence[Figure]) -> str:
    """A fixed-width text table: figure | measured | target | verdict | detail."""
    rows = [("figure", "measured", "target", "verdict", "detail")]
    rows += [
        (f.name, f.value_text(), f.target.text(".4g", percent=f.percent), f.verdict, f.detail)
        for f in figures
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for k, r in enumerate(rows):
        lines.append(
            " | ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
            + (" | " + r[4] if r[4] else "")
        )
        if k == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def fraction(ok: npt.ArrayLike) -> tuple[float | None, int, int]:
    """Fraction of True in ``ok``, the count and the total (None when empty).

    >>> fraction([True, False, True, True])
    (0.75, 3, 4)
    """
    a = np.asarray(ok, dtype=bool)
    return (float(a.mean()) if a.size else None), int(a.sum()), int(a.size)


def confusion_counts(
    labels: npt.ArrayLike, ours: npt.ArrayLike, rows: Sequence[str], cols: Sequence[str]
) -> npt.NDArray[np.int64]:
    """Counts of (label, our answer) pairs, rows ``rows`` by columns ``cols``.

    >>> confusion_counts(["STAR", "STAR", "QSO"], ["STAR", "GALAXY", "QSO"],
    ...                  ["STAR", "QSO"], ["STAR", "GALAXY", "QSO"]).tolist()
    [[1, 1, 0], [0, 0, 1]]
    """
    lab = np.asarray(labels, dtype=object)
    our = np.asarray(ours, dtype=object)
    out = np.zeros((len(rows), len(cols)), dtype=np.int64)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            out[i, j] = int(np.sum((lab == r) & (our == c)))
    return out


def format_confusion(
    counts: npt.NDArray[np.int64],
    rows: Sequence[str],
    cols: Sequence[str],
    corner: str = "label \\ ours",
) -> str:
    """A confusion matrix as text, with row totals."""
    w = max(len(corner), *(len(r) for r in rows)) + 1
    cw = max(8, *(len(c) + 1 for c in cols))
    head = corner.ljust(w) + "".join(c.rjust(cw) for c in cols) + "total".rjust(cw)
    lines = [head]
    for r, counts_row in zip(rows, counts, strict=True):
        lines.append(
            r.ljust(w)
            + "".join(str(v).rjust(cw) for v in counts_row)
            + str(int(counts_row.sum())).rjust(cw)
        )
    return "\n".join(lines)


def best_rchi2_by_class(
    objclass: npt.NDArray[np.integer], rchi2: npt.NDArray[np.floating], n_classes: int
) -> npt.NDArray[np.float64]:
    """(S, n_classes): lowest reduced chi2 among each spectrum's candidates of each class.

    NaN where a spectrum has no candidate of that class.

    >>> best_rchi2_by_class(np.array([[0, 1, 0]]), np.array([[1.0, 1.5, 1.2]]), 3).tolist()
    [[1.0, 1.5, nan]]
    """
    out = np.full((objclass.shape[0], n_classes), np.nan)
    for c in range(n_classes):
        vals = np.where(objclass == c, rchi2, np.inf)
        best = vals.min(axis=1)
        out[:, c] = np.where(np.isfinite(best), best, np.nan)
    return out
