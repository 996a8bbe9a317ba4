"""Spectral templates: loading SDSS ``spEigen*`` files into one structure.

The classification engine (``lamostdb.match``) and the night simulator
(``lamostdb.sim``) both take their templates from here.
"""

from lamostdb.templates.library import (
    DEFAULT_TEMPLATE_FILES,
    TemplateSet,
    default_template_dir,
    load_default_templates,
    load_redrock,
    load_sdss_eigen,
    load_template_file,
)

__all__ = [
    "DEFAULT_TEMPLATE_FILES",
    "TemplateSet",
    "default_template_dir",
    "load_default_templates",
    "load_redrock",
    "load_sdss_eigen",
    "load_template_file",
]
