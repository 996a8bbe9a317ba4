"""The read-only query path: what ``lamostdb sql`` and ``Catalog.sql`` let a query do.

Two independent guards:

1. :func:`check_query` parses the text with DuckDB's own parser and lets through exactly one
   statement, which must be a query (``SELECT``, ``WITH ... SELECT``, ``FROM``, ``VALUES``,
   ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``). Anything else (``COPY``, ``EXPORT``, ``INSTALL``,
   ``LOAD``, ``ATTACH``, ``SET``, ``PRAGMA``, ``CALL``, ``CREATE``, ...) is refused with a
   message naming it; comments cannot hide a second statement from the parser.
2. :func:`restricted_connection` opens the in-memory DuckDB a reader queries with external
   access off: only the catalogue folder (and folders the user names with ``--allow-files``
   / ``allow_files=``) can be read, no extension is installed or loaded, and the
   configuration is locked once the catalogue's tables are registered, so a query cannot
   undo any of it.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import duckdb

from lamostdb.healpix.macros import create_macros

#: Statement types a read-only query may have (DESCRIBE, SHOW, SUMMARIZE parse as SELECT).
ALLOWED = (duckdb.StatementType.SELECT,)
#: What DuckDB says when a query tries to change a setting after :func:`lock`.
LOCKED = "the configuration has been locked"
_LEADING = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_]+")


class QueryRefused(ValueError):
    """A query that the read-only path does not run; the message says what and why."""


def _keyword(text: str) -> str:
    """The first keyword of a statement, past whitespace and comments (for messages)."""
    rest = text[_LEADING.match(text).end() :]  # type: ignore[union-attr]  # always matches
    m = _WORD.match(rest)
    return m.group(0).upper() if m else rest[:20]


def check_query(query: str) -> None:
    """Refuse ``query`` unless it is exactly one read-only query statement.

    Raises
    ------
    QueryRefused
        With a message naming the statement (``COPY``, ``INSTALL``, ...) that was refused.
    duckdb.ParserException
        When the text does not parse (as DuckDB would say when running it).
    """
    statements = duckdb.extract_statements(query)
    if not statements:
        raise QueryRefused("empty query: give one SELECT statement")
    if len(statements) > 1:
        kinds = ", ".join(_keyword(s.query) for s in statements)
        raise QueryRefused(
            f"refused {len(statements)} statements ({kinds}): the catalogue is "
            "queried one statement at a time; give exactly one SELECT"
        )
    stmt = statements[0]
    try:
        kind = stmt.type
    except ValueError:  # a statement type the Python API does not know (UPDATE EXTENSIONS)
        kind = None
    if kind not in ALLOWED:
        word = _keyword(stmt.query)
        what = f"a {kind.name} statement" if kind is not None else "not a query"
        raise QueryRefused(
            f"refused {word} ({what}): the catalogue is queried "
            "read-only, so statements that write files, change settings, load extensions or "
            "attach databases are not run; give one SELECT statement (to save results use "
            "`lamostdb sql --output FILE --format parquet|csv|json`)"
        )


def restricted_connection(
    root: Path, allow_files: Sequence[str | Path] = ()
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can read only ``root`` and the ``allow_files`` folders.

    The caller registers the catalogue's tables and views, then calls :func:`lock`.
    """
    allowed = [str(Path(root).resolve()) + "/"]
    for d in allow_files:
        p = Path(d).expanduser().resolve()
        if not p.is_dir():
            raise FileNotFoundError(
                f"--allow-files {d}: no such folder; name a folder whose files your query reads"
            )
        allowed.append(str(p) + "/")
    # spilling goes to a private folder that DuckDB creates only when needed
    spill = Path(tempfile.gettempdir()) / f"lamostdb-sql-{uuid.uuid4().hex}"
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "temp_directory": str(spill),
        },
    )
    con.execute("SET allowed_directories = $dirs", {"dirs": allowed})
    con.execute("SET enable_external_access = false")
    create_macros(con)  # sep_arcsec and pixel_at_order, for users' queries too
    return con


def lock(con: duckdb.DuckDBPyConnection) -> None:
    """Lock the configuration of ``con``: no later statement can change a setting."""
    con.execute("SET lock_configuration = true")


def explain_permission_error(exc: duckdb.Error) -> QueryRefused:
    """The error a query that touched a file outside the allowed folders gets."""
    return QueryRefused(
        f"refused: the query reads a file outside the catalogue ({exc}). "
        "Local files can be read only from folders you allow: "
        "`lamostdb sql --allow-files DIR` or `lamostdb.open(path, "
        "allow_files=[DIR])`"
    )


def explain_locked(exc: duckdb.Error) -> QueryRefused:
    """The error a query that tried to change a setting (``enable_logging()``, ...) gets."""
    return QueryRefused(
        f"refused: the query tries to change a setting ({exc}); settings are "
        "locked on the read-only path"
    )
