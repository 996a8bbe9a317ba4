"""lamostdb: a columnar catalogue toolkit for LAMOST low-resolution spectra.

>>> import lamostdb
>>> callable(lamostdb.open)
True
"""

from lamostdb.version import VERSION as __version__

__all__ = ["__version__", "open"]


def open(path, *, mode="r", allow_files=()):  # noqa: A001 - the public name users expect
    """Open a catalogue folder (``mode='r'`` for queries, ``'w'`` for writing stages).

    Returns a :class:`lamostdb.catalog.store.Catalog` with ``.sql(query, params)``,
    ``.cone(ra_deg, dec_deg, radius_arcsec)`` and ``.spectrum(obsid)``. ``allow_files``:
    folders whose local files ``.sql`` may read (by default it reads the catalogue only).
    """
    from lamostdb.catalog.store import open_catalog

    return open_catalog(path, mode=mode, allow_files=allow_files)
