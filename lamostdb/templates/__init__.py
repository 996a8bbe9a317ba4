"""Spectral templates: SDSS ``spEigen*``, redrock, Kesseli 2017 and STELIB into one structure.

The classification engine (``lamostdb.match``) and the night simulator
(``lamostdb.sim``) both take their templates from here.
"""

from lamostdb.templates.empirical import ImportedLibrary, LeftOut, air_to_vacuum_angstrom
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
