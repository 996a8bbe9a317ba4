"""Candidate reordering: degenerate neighbours go to the end of the candidate list.

Neighbouring star templates (G2 and G3, K3 and K5) fit a spectrum almost equally well, so the
raw top-N list is often the same answer N times and says nothing about the alternatives. The
rule (DESIGN.md section 5 item 5), as implemented here:

- walk the candidates in chi-square order; candidate ``j`` is *degenerate* when it and the
  candidate just before it in the original list, ``j - 1``, are both stars whose
  ``|chi2_j - chi2_{j-1}| < 1 %`` of ``chi2_{j-1}`` and whose subclasses are at most 5 steps apart
  on the ordinal scale of ``lamostdb.templates.subclass`` (so a run G2, G3, G5 of near-equal
  chi-square makes G3 and G5 degenerate);
- the first candidate is never moved (it is the best fit); degenerate candidates keep their
  relative order and move behind all the others;
- ``delta_rchi2`` is recomputed on the new order, so the best fit's ``delta_rchi2`` is measured
  against the next *different* answer.

Galaxy and QSO candidates have no subclass and are never degenerate under this rule.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from lamostdb.match.fit import FitResult

CHI2_FRACTION = 0.01
MAX_SUBCLASS_STEPS = 5


def degenerate_mask(fit: FitResult, ordinals: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """(S, N) True where a candidate is degenerate with the one before it.

    ``ordinals`` gives the subclass ordinal of every star template (NaN when unknown).

    >>> from lamostdb.match.fit import FitResult
    >>> one = lambda *v: np.array([v])
    >>> f = FitResult(one(0, 0, 0, 1), one(0, 1, 2, -1), one(0., 0, 0, .1), one(0., 0, 0, 0),
    ...               one(100., 100.5, 103, 104), one(10, 10, 10, 10), one(10., 10.05, 10.3, 10.4),
    ...               one(.05, .25, .1, np.nan), one(*[False] * 4), np.zeros((1, 4, 1)),
    ...               np.array([10]))
    >>> degenerate_mask(f, np.array([42.0, 43.0, 44.0])).tolist()
    [[False, True, False, False]]
    """
    cls, tpl, chi2 = fit.objclass, fit.template, fit.chi2
    ords = np.append(np.asarray(ordinals, dtype=np.float64), np.nan)
    o = ords[np.where(tpl >= 0, tpl, ords.size - 1)]
    both_star = (cls[:, 1:] == 0) & (cls[:, :-1] == 0) & (tpl[:, 1:] >= 0) & (tpl[:, :-1] >= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        close = np.abs(chi2[:, 1:] - chi2[:, :-1]) < CHI2_FRACTION * np.abs(chi2[:, :-1])
        near = np.abs(o[:, 1:] - o[:, :-1]) <= MAX_SUBCLASS_STEPS
    deg = both_star & close & near
    return np.concatenate([np.zeros((cls.shape[0], 1), dtype=bool), deg], axis=1)


def reorder(
    fit: FitResult, ordinals: npt.NDArray[np.float64]
) -> tuple[FitResult, npt.NDArray[np.bool_]]:
    """The candidates with degenerate ones moved to the end, and the flag in the new order."""
    deg = degenerate_mask(fit, ordinals)
    n = deg.shape[1]
    key = deg * n + np.arange(n)[None, :]  # non-degenerate first, then original order
    order = np.argsort(key, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, 1)  # noqa: E731
    rchi2 = take(fit.rchi2)
    with np.errstate(invalid="ignore"):  # inf - inf where a spectrum has no weight
        delta = np.concatenate(
            [rchi2[:, 1:] - rchi2[:, :-1], np.full((rchi2.shape[0], 1), np.nan)], axis=1
        )
    out = replace(
        fit,
        objclass=take(fit.objclass),
        template=take(fit.template),
        z=take(fit.z),
        z_err=take(fit.z_err),
        chi2=take(fit.chi2),
        dof=take(fit.dof),
        rchi2=rchi2,
        delta_rchi2=delta,
        z_edge=take(fit.z_edge),
        coeffs=np.take_along_axis(fit.coeffs, order[:, :, None], 1),
    )
    return out, take(deg)


def best_chain_spans_letters(
    fit: FitResult, ordinals: npt.NDArray[np.float64], subclass: npt.NDArray[np.str_]
) -> npt.NDArray[np.bool_]:
    """(S,) True where the best fit's run of degenerate neighbours crosses a spectral letter.

    The run is candidates 1, 2, ... of the original order for as long as each is degenerate
    with the one before it. G2 followed by degenerate G3 and G5 is the usual case (same
    letter, nothing to warn about); G9 followed by a degenerate K0 means the letter itself is
    undecided (ZWARNING bit DEGENERATE_CANDIDATES).
    """
    deg = degenerate_mask(fit, ordinals)
    chain = np.cumprod(deg[:, 1:], axis=1).astype(bool)  # still in the best's run
    letters = letters_of(subclass)
    other = letters[:, 1:] != letters[:, :1]
    return np.any(chain & other, axis=1)


def letters_of(subclass: npt.NDArray[np.str_]) -> npt.NDArray[np.object_]:
    """Spectral letter of every label (``''`` for none), parsed once per distinct label.

    >>> letters_of(np.array([["G2", "K0", "G2"], ["Non", "dM3", "WD"]])).tolist()
    [['G', 'K', 'G'], ['', 'M', 'WD']]
    """
    from lamostdb.templates.subclass import spectral_letter

    labels = np.asarray(subclass)
    uniq, inverse = np.unique(labels, return_inverse=True)
    table = np.array([spectral_letter(str(s)) or "" for s in uniq], dtype=object)
    return table[inverse.ravel()].reshape(labels.shape)
