"""The package version, at the bottom of the import layers.

Modules take it from here (``from lamostdb.version import VERSION``), not from the
``lamostdb`` package itself, whose :func:`lamostdb.open` imports the catalogue: that way no
module of the package imports the package's top. ``lamostdb.__version__`` is the same string.
"""

VERSION = "0.1.0"
