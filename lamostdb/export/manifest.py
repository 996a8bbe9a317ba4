"""The release manifest (``manifest.json``) and checksum list (``SHA256SUMS``).

``manifest.json`` says what the release is (name, creation date, lamostdb and engine
versions, catalogue, the selection query, options, counts) and lists every file with
its kind, size, SHA-256 and, for tables, row count. ``SHA256SUMS`` lists the same
files and the manifest itself in the format of ``sha256sum -c``.

Entries are spooled to disk as files are written, so memory stays flat however many
spectra a release holds; :meth:`ManifestWriter.close` assembles the JSON from the spool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from lamostdb.io.fits_write import file_sha256

MANIFEST = "manifest.json"
CHECKSUMS = "SHA256SUMS"
FORMAT = "lamostdb-release-manifest/1"


class ManifestWriter:
    """Collects file entries of a release being written under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._spool_path = root / f".{MANIFEST}.entries"
        self._spool: TextIO = open(self._spool_path, "w")  # noqa: SIM115 - closed in close()
        self._sums: TextIO = open(root / CHECKSUMS, "w")  # noqa: SIM115
        self.n_files = 0
        self.nbytes = 0

    def add(
        self, relpath: str, *, kind: str, nbytes: int, sha256: str, rows: int | None = None
    ) -> None:
        """Record one file of the release (``relpath`` relative to the release root)."""
        entry: dict[str, Any] = {"path": relpath, "kind": kind, "bytes": nbytes, "sha256": sha256}
        if rows is not None:
            entry["rows"] = rows
        if self.n_files:
            self._spool.write(",\n")
        self._spool.write("  " + json.dumps(entry, sort_keys=True))
        self._sums.write(f"{sha256}  {relpath}\n")
        self.n_files += 1
        self.nbytes += nbytes

    def add_file(self, relpath: str, *, kind: str, rows: int | None = None) -> None:
        """Record a file already on disk (its size and SHA-256 are read from it)."""
        path = self.root / relpath
        self.add(
            relpath, kind=kind, nbytes=path.stat().st_size, sha256=file_sha256(path), rows=rows
        )

    def close(self, head: dict[str, Any]) -> Path:
        """Write ``manifest.json`` (``head`` + ``files``) and finish ``SHA256SUMS``."""
        self._spool.close()
        text = json.dumps(
            {"format": FORMAT, **head, "n_files": self.n_files, "bytes": self.nbytes}, indent=1
        )
        path = self.root / MANIFEST
        with open(path, "w") as out, open(self._spool_path) as entries:
            out.write(text[: text.rindex("}")].rstrip() + ',\n "files": [\n')
            while chunk := entries.read(1 << 20):
                out.write(chunk)
            out.write("\n ]\n}\n")
        self._spool_path.unlink()
        self._sums.write(f"{file_sha256(path)}  {MANIFEST}\n")
        self._sums.close()
        return path

    def abort(self) -> None:
        """Close the open files (the caller removes the unfinished release)."""
        self._spool.close()
        self._sums.close()
