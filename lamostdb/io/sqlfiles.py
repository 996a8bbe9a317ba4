"""Named SQL statements from ``sql/*.sql``.

A file holds blocks introduced by ``-- name: NAME`` and a one-line ``-- description``;
the statement follows. Values are always bound parameters (``$name``), never pasted.
"""

from __future__ import annotations

import re
from functools import cache

from lamostdb.resources import resource_dir

_NAME_RE = re.compile(r"^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


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
