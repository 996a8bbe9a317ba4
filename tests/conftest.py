"""Shared fixtures: the shipped real spectra, and the larger shared set when present."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED_SPECTRA = REPO / "lamostdb" / "data" / "spectra"
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_SPECTRA = SHARED_DATA / "spectra"
SPECTRUM_GLOBS = ("*.fits", "*.fits.gz")


def _spectrum_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for g in SPECTRUM_GLOBS for p in root.rglob(g))


SHIPPED_FILES = _spectrum_files(SHIPPED_SPECTRA)
SHARED_FILES = _spectrum_files(SHARED_SPECTRA)
#: Every real file we can test on: the shipped subset always, the shared set when present.
REAL_FILES = SHIPPED_FILES + SHARED_FILES
NOT_LAMOST = {"oe270005.fits"}  # a 1-D spectrum from another telescope, in both sets


def pytest_report_header(config: pytest.Config) -> list[str]:
    if SHARED_FILES:
        return [
            f"real spectra: {len(SHIPPED_FILES)} shipped + {len(SHARED_FILES)} from "
            f"{SHARED_SPECTRA}"
        ]
    return [
        f"real spectra: {len(SHIPPED_FILES)} shipped; {SHARED_SPECTRA} is absent, so the "
        "larger real-data set is NOT tested in this run"
    ]


@pytest.fixture(scope="session")
def shipped_dir() -> Path:
    return SHIPPED_SPECTRA


@pytest.fixture()
def catalog_path(tmp_path: Path) -> Path:
    return tmp_path / "cat"


@pytest.fixture(scope="session")
def shipped_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalogue built once from the shipped spectra (read-only use)."""
    from lamostdb.catalog.store import Catalog
    from lamostdb.ingest.stage import ingest

    path = tmp_path_factory.mktemp("shipped") / "cat"
    with Catalog.create(path) as cat:
        ingest(cat, [SHIPPED_SPECTRA], workers=1, progress=False)
    return path
