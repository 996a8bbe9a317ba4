"""The SQL macros of sky geometry, created on every DuckDB connection the project opens.

``sep_arcsec(ra1, dec1, ra2, dec2)``: angular separation in arcsec (haversine) of two
positions in degrees; ``pixel_at_order(hp29, k)``: the nested pixel at order ``k`` of an
order-29 pixel. Both are written once, in ``sql/healpix.sql``; every statement that
measures a separation or coarsens a pixel calls them. They are ``TEMP`` macros: they
live in the connection, never in a catalogue file, so a catalogue written by one version
is read with the macros of the version that reads it.

>>> import duckdb
>>> con = duckdb.connect()
>>> create_macros(con)
>>> round(con.execute("SELECT sep_arcsec(10.0, 0.0, 10.0, 1.0 / 3600)").fetchone()[0], 9)
1.0
>>> con.execute("SELECT pixel_at_order(3458764513820540927, 0)").fetchone()[0]
11
"""

from __future__ import annotations

import duckdb

from lamostdb.resources import statement

#: Blocks of ``sql/healpix.sql`` that define a macro.
MACROS = ("macro_sep_arcsec", "macro_pixel_at_order")


def create_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Create (or replace) the sky macros on ``con``; cheap, and safe to call again."""
    for name in MACROS:
        con.execute(statement("healpix.sql", name))
