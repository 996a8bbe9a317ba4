"""The shipped default star library (templates/data/lamost_stars.fits) as a contract."""

from __future__ import annotations

import numpy as np

from lamostdb.match.engine import STAR_GRID, get_engine
from lamostdb.templates import load_default_templates
from lamostdb.templates.grid import WORKING_GRID
from lamostdb.templates.libfile import library_table
from lamostdb.templates.library import (
    DEFAULT_STAR_LIBRARY,
    default_template_dir,
    load_default_star_library,
)
from lamostdb.templates.subclass import parse_subclass, spectral_letter


def test_every_template_has_a_lamost_subclass_a_source_and_a_licence() -> None:
    lib = load_default_star_library()
    assert lib.subclasses is not None and len(lib.subclasses) == len(lib.names)
    for sub in lib.subclasses:
        letter, _ = parse_subclass(sub)
        assert letter is not None, sub
    table = library_table(default_template_dir() / DEFAULT_STAR_LIBRARY)
    assert table.height == len(lib.names)
    assert table["source"].null_count() == 0 and table["licence"].null_count() == 0
    sources = " ".join(table["source"].to_list())
    for member in ("LAMOST", "Kesseli", "SDSS"):
        assert member in sources


def test_the_library_spans_the_types_a_survey_meets() -> None:
    letters = {spectral_letter(s) for s in load_default_star_library().subclasses or ()}
    assert {"O", "B", "A", "F", "G", "K", "M", "L", "WD", "Carbon"} <= letters


def test_templates_cover_the_working_grid_at_every_star_redshift() -> None:
    lib = load_default_star_library()
    assert np.all(np.isfinite(lib.vectors))
    rest = lib.loglam0 + lib.dloglam * np.arange(lib.vectors.shape[1])
    obs = WORKING_GRID.loglam0 + WORKING_GRID.dloglam * np.arange(WORKING_GRID.npix)
    for z in (STAR_GRID.z_min, STAR_GRID.z_max):
        need = obs - np.log10(1 + z)
        assert rest[0] <= need[0] and rest[-1] >= need[-1]


def test_the_engine_fits_with_it_and_the_simulator_keeps_sdss() -> None:
    engine = get_engine()
    assert engine.star.rest[0].source.endswith(DEFAULT_STAR_LIBRARY)
    assert len(engine.star.names) == len(load_default_star_library().names)
    # simulated nights stay made from the SDSS MK templates (their truth subclasses)
    assert "spEigenStar" in load_default_templates()["STAR"].source
