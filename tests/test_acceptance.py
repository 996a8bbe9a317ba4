"""Tests of the acceptance-table helpers (lamostdb.validate.acceptance): values, not shapes."""

from __future__ import annotations

import numpy as np
import pytest

from lamostdb.validate.acceptance import (
    Figure,
    Target,
    best_rchi2_by_class,
    confusion_counts,
    format_confusion,
    format_table,
    fraction,
)


@pytest.mark.parametrize(
    ("target", "value", "expected"),
    [
        (Target(low=0.995), 0.995, True),
        (Target(low=0.995), 0.9949, False),
        (Target(high=3.0), 3.0, True),
        (Target(high=3.0), 3.01, False),
        (Target(low=0.8, high=1.25), 0.79, False),
        (Target(low=0.8, high=1.25), 1.0, True),
        (Target(low=0.8, high=1.25), 1.26, False),
        (Target(low=0.0, high=0.0), 0.0, True),
        (Target(low=0.0, high=0.0), 1.0, False),
        (Target(low=0.5), None, None),
        (Target(low=0.5), float("nan"), None),
    ],
)
def test_target_met(target: Target, value: float | None, expected: bool | None) -> None:
    assert target.met(value) is expected


def test_figure_verdicts_and_table() -> None:
    figs = [
        Figure("agreement", 0.996, Target(low=0.995), "996/1000", ".2f", True),
        Figure("lost stars", 2.0, Target(low=0.0, high=0.0), "of 900", ".0f"),
        Figure("no value", None, Target(high=3.0)),
        Figure("reported", 0.5, Target()),
    ]
    assert [f.verdict for f in figs] == ["MET", "NOT MET", "n/a", "report"]
    lines = format_table(figs).splitlines()
    assert lines[0].split(" | ")[:4] == ["figure    ", "measured", "target   ", "verdict"]
    assert [c.strip() for c in lines[2].split("|")] == [
        "agreement",
        "99.60 %",
        ">= 99.5 %",
        "MET",
        "996/1000",
    ]
    assert [c.strip() for c in lines[3].split("|")] == [
        "lost stars",
        "2",
        "= 0",
        "NOT MET",
        "of 900",
    ]
    assert [c.strip() for c in lines[4].split("|")][:4] == ["no value", "-", "<= 3", "n/a"]


def test_fraction_and_confusion() -> None:
    assert fraction([]) == (None, 0, 0)
    assert fraction(np.array([1, 0, 0, 0])) == (0.25, 1, 4)
    labels = ["STAR", "STAR", "STAR", "QSO", "GALAXY", "UNKNOWN"]
    ours = ["STAR", "GALAXY", "STAR", "GALAXY", "GALAXY", "STAR"]
    rows, cols = ["STAR", "GALAXY", "QSO", "UNKNOWN"], ["STAR", "GALAXY", "QSO"]
    counts = confusion_counts(labels, ours, rows, cols)
    np.testing.assert_array_equal(counts, [[2, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0]])
    assert counts.sum() == len(labels)
    text = format_confusion(counts, rows, cols).splitlines()
    assert text[1].split() == ["STAR", "2", "1", "0", "3"]


def test_best_rchi2_by_class() -> None:
    objclass = np.array([[0, 1, 0, 2], [2, 2, 1, 1]])
    rchi2 = np.array([[1.0, 1.1, 0.9, 3.0], [1.2, 1.0, np.inf, 2.0]])
    out = best_rchi2_by_class(objclass, rchi2, 3)
    np.testing.assert_array_equal(out, [[0.9, 1.1, 3.0], [np.nan, 2.0, 1.0]])
