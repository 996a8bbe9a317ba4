"""Where the project's data files live: ``sql/`` and ``schemas/``; named SQL statements.

In a source checkout (or an editable install) they sit at the repository root beside
the package; a built wheel carries them as ``lamostdb/sql`` and ``lamostdb/schemas``.

A file of ``sql/`` holds blocks introduced by ``-- name: NAME`` and a one-line
``-- description``; the statement follows. Values are always bound parameters
(``$name``), never pasted. The reader lives here, at the bottom layer, so that the pixel
join and the SQL macros of :mod:`lamostdb.healpix` can use their statements too;
:mod:`lamostdb.io.sqlfiles` re-exports it.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

_NAME_RE = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


def resource_dir(name: str) -> Path:
    """Folder ``name`` (``"sql"`` or ``"schemas"``) of the installed project."""
    if name not in ("sql", "schemas"):
        raise ValueError(f"unknown resource folder {name!r}")
    here = Path(__file__).resolve().parent
    checkout = here.parent / name
    if checkout.is_dir() and any(checkout.iterdir()):
        return checkout
    return Path(str(resources.files("lamostdb") / name))


@cache
def load_sql(filename: str) -> dict[str, str]:
    """All named statements of ``sql/<filename>``, in file order."""
    path = resource_dir("sql") / filename
    blocks: dict[str, list[str]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        m = _NAME_RE.match(line)
        if m:
            current = m.group(1)
            if current in blocks:
                raise ValueError(f"{path}: statement {current!r} defined twice")
            blocks[current] = []
        elif current is not None and not line.startswith("--"):
            blocks[current].append(line)
    out = {k: "\n".join(v).strip() for k, v in blocks.items()}
    empty = [k for k, v in out.items() if not v]
    if empty:
        raise ValueError(f"{path}: empty statement(s) {empty}")
    return out


def statement(filename: str, name: str) -> str:
    """One named statement."""
    stmts = load_sql(filename)
    if name not in stmts:
        raise KeyError(f"sql/{filename} has no statement named {name!r}")
    return stmts[name]
