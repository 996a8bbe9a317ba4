"""Continuum vectors: the fallback basis, SVD learning, and the shipped default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lamostdb.match.continuum import (
    default_basis,
    learn_basis,
    legendre_basis,
    load_basis,
    uniform_bins,
)
from lamostdb.templates.grid import WORKING_GRID


def test_bins_cover_the_grid_with_an_edge_at_the_arm_join() -> None:
    starts = uniform_bins()
    assert starts[0] == 0 and np.all(np.diff(starts) > 40) and np.all(np.diff(starts) < 80)
    join = int(np.searchsorted(WORKING_GRID.wave_angstrom, 5800.0))
    assert join in starts


def test_legendre_basis_values() -> None:
    b = legendre_basis(2)
    assert b.names == ("P0", "P1", "P2", "red_arm")
    assert np.allclose(b.vectors[0], 1.0)
    assert b.vectors[1][0] < -0.95 and b.vectors[1][-1] > 0.95
    assert set(np.unique(b.vectors[3])) == {0.0, 1.0}
    per_pixel = b.per_pixel()
    assert per_pixel.shape == (4, WORKING_GRID.npix)


def test_svd_recovers_the_injected_calibration_modes() -> None:
    rng = np.random.default_rng(9)
    starts = uniform_bins()
    j = starts.size
    x = np.linspace(-1, 1, j)
    mode1 = np.exp(-(((x - 0.7) / 0.2) ** 2))  # a bump no low-order polynomial has
    mode2 = np.sin(3 * x)
    amp = rng.normal(size=(300, 2))
    curves = amp[:, :1] * mode1 + amp[:, 1:] * mode2 + 0.3 * rng.normal(size=(300, 1))
    curves += rng.normal(scale=0.01, size=curves.shape)
    b = learn_basis(
        curves, np.ones_like(curves), starts, n_vectors=2, legendre_order=-1, arm_vector=False
    )
    assert b.names == ("const", "svd1", "svd2")
    span = b.vectors.T  # (J, 3)
    for mode in (mode1, mode2):
        coef, res, *_ = np.linalg.lstsq(span, mode, rcond=None)
        assert np.linalg.norm(span @ coef - mode) < 0.05 * np.linalg.norm(mode)


def test_shipped_default_is_learned_and_has_the_fallback_inside() -> None:
    b = default_basis()
    assert b.names == ("P0", "P1", "P2", "P3", "svd1", "svd2", "red_arm")
    assert "learned" in b.source and "LAMOST" in b.source
    fallback = legendre_basis(3)
    assert np.array_equal(b.bin_starts, fallback.bin_starts)
    assert np.allclose(b.vectors[:4], fallback.vectors[:4])
    assert np.array_equal(b.vectors[-1], fallback.vectors[-1])
    # the learned vectors are new directions, not combinations of the polynomials
    coef, *_ = np.linalg.lstsq(fallback.vectors[:4].T, b.vectors[4], rcond=None)
    assert np.linalg.norm(fallback.vectors[:4].T @ coef - b.vectors[4]) > 0.1


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_calibrate_cli_writes_a_basis_classify_can_use(tmp_path: Path) -> None:
    from conftest import SHIPPED_SPECTRA

    cat = tmp_path / "cat"
    run = [sys.executable, "-m", "lamostdb.cli"]
    assert (
        subprocess.run(
            [*run, "ingest", str(cat), str(SHIPPED_SPECTRA), "--quiet"],
            capture_output=True,
            timeout=120,
        ).returncode
        == 0
    )
    out = tmp_path / "cv.npz"
    r = subprocess.run(
        [
            *run,
            "templates",
            "calibrate",
            str(cat),
            "--output",
            str(out),
            "--min-snr",
            "5",
            "--n-vectors",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    b = load_basis(out)
    assert b.names == ("P0", "P1", "P2", "P3", "svd1", "red_arm")
    r = subprocess.run(
        [*run, "classify", str(cat), "--continuum", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and "18 spectra classified" in r.stdout
