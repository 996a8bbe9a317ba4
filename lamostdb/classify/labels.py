"""Which ``spectra`` columns a data-driven template library may take its labels from.

Its own module so that the command line can offer them as choices without importing the
library builder (:mod:`lamostdb.classify.templates_build`) at every start.
"""

#: columns naming a spectrum's type (``lamostdb templates build --label``)
LABEL_COLUMNS = ("lasp_subclass", "objtype")
#: columns giving a spectrum's redshift (``--z``)
Z_COLUMNS = ("lasp_z",)
