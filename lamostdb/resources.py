"""Where the project's data files live: ``sql/`` and ``schemas/``.

In a source checkout (or an editable install) they sit at the repository root beside
the package; a built wheel carries them as ``lamostdb/sql`` and ``lamostdb/schemas``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resource_dir(name: str) -> Path:
    """Folder ``name`` (``"sql"`` or ``"schemas"``) of the installed project."""
    if name not in ("sql", "schemas"):
        raise ValueError(f"unknown resource folder {name!r}")
    here = Path(__file__).resolve().parent
    checkout = here.parent / name
    if checkout.is_dir() and any(checkout.iterdir()):
        return checkout
    return Path(str(resources.files("lamostdb") / name))
