"""Spectral templates: SDSS ``spEigen*``, redrock, Kesseli 2017 and STELIB into one structure.

The classification engine (``lamostdb.match``) and the night simulator
(``lamostdb.sim``) both take their templates from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamostdb.lazy import lazy_attributes

if TYPE_CHECKING:
    from lamostdb.templates.empirical import (
        ImportedLibrary,
        LeftOut,
        air_to_vacuum_angstrom,
    )
    from lamostdb.templates.kesseli import load_kesseli, load_kesseli_dir
    from lamostdb.templates.library import (
        DEFAULT_TEMPLATE_FILES,
        TemplateSet,
        default_template_dir,
        load_default_templates,
        load_redrock,
        load_sdss_eigen,
        load_template_file,
    )
    from lamostdb.templates.stelib import load_stelib, load_stelib_dir

_HOME = {
    "ImportedLibrary": "empirical",
    "LeftOut": "empirical",
    "air_to_vacuum_angstrom": "empirical",
    "load_kesseli": "kesseli",
    "load_kesseli_dir": "kesseli",
    "DEFAULT_TEMPLATE_FILES": "library",
    "TemplateSet": "library",
    "default_template_dir": "library",
    "load_default_templates": "library",
    "load_redrock": "library",
    "load_sdss_eigen": "library",
    "load_template_file": "library",
    "load_stelib": "stelib",
    "load_stelib_dir": "stelib",
}


# lazy: ``lamostdb.templates.grid`` (the working grid, which the classify driver needs)
# must not import the template readers and astropy.io.fits with it
__getattr__ = lazy_attributes(__name__, _HOME)


__all__ = [
    "DEFAULT_TEMPLATE_FILES",
    "ImportedLibrary",
    "LeftOut",
    "TemplateSet",
    "air_to_vacuum_angstrom",
    "default_template_dir",
    "load_default_templates",
    "load_kesseli",
    "load_kesseli_dir",
    "load_redrock",
    "load_sdss_eigen",
    "load_stelib",
    "load_stelib_dir",
    "load_template_file",
]
