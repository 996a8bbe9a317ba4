"""Named SQL statements from ``sql/*.sql`` (see :mod:`lamostdb.resources`, where the reader
lives so that the bottom layer can use it too).

A file holds blocks introduced by ``-- name: NAME`` and a one-line ``-- description``;
the statement follows. Values are always bound parameters (``$name``), never pasted.
"""

from __future__ import annotations

from lamostdb.resources import load_sql, statement

__all__ = ["load_sql", "statement"]
