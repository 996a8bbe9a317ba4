"""The ingest ledger: which paths to read, and what became of every path discovered.

Every discovered path ends in exactly one outcome, recorded in ``ingest_paths`` (one row
per path, its last outcome) and counted in the run's report, whose counts add up to the
number of paths discovered:

- ``ingested``: its content is new and stored, or it re-delivers a stored older version
  that becomes current again (reason ``version N made current again``);
- ``duplicate``: its content is already stored (under another path, or twice in this run);
- ``quarantined``: it cannot be read (the reason says why); identical damaged files are
  each quarantined (one ``quarantine`` row per content, one ``ingest_paths`` row per path);
- ``skipped``: not read, or read and nothing to do, with the reason: ``unchanged`` (same
  size, mtime_ns and inode as last time: not even opened), ``content unchanged`` (touched
  only: hashed once, then the new stat triple is stored), ``withdrawn`` (the same bytes as
  a withdrawn version: not brought back), or ``vanished`` (gone before it could be read).

A path quarantined by another lamostdb version is read again once (its reader may accept
it now). Folders that cannot be listed are reported (``unreadable_dirs``), never silently skipped.
A file that ingests clears the quarantine rows of its path (it was fixed) and of its
content (a reader now accepts it).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from lamostdb.catalog.store import Catalog
from lamostdb.io.bounded import storable_path
from lamostdb.io.sqlfiles import statement
from lamostdb.version import VERSION

_DR_RE = re.compile(r"DR\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input file in a worker."""

    path: str
    size_bytes: int
    mtime_ns: int
    sha256: str
    specid: str | None
    obsid: int | None
    night: int | None
    data_v: str | None
    reason: str | None  # None: read fine


@dataclass
class IngestReport:
    """Summary of one ingest call (also stored as the run's JSON summary).

    Every discovered path is counted once: ``n_inputs == n_ingested + n_duplicate_content
    + n_quarantined + n_skipped`` (see :mod:`lamostdb.catalog.ledger`).
    """

    run_id: str
    n_inputs: int = 0
    n_unchanged: int = 0  # skipped without reading (part of n_skipped)
    n_ingested: int = 0
    n_duplicate_content: int = 0
    n_new_versions: int = 0
    n_restored_versions: int = 0  # older versions made current again (part of n_ingested)
    n_quarantined: int = 0
    n_skipped: int = 0
    n_quarantine_cleared: int = 0
    n_rows_written: int = 0
    bytes_read: int = 0
    peak_worker_rss_mb: float = 0.0
    elapsed_s: float = 0.0
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # all but "unchanged"
    unreadable_dirs: list[tuple[str, str]] = field(default_factory=list)
    #: where the chunks were read (``lamostdb.execute.Executor.summary``)
    executor: dict[str, object] = field(default_factory=dict)

    def skip(self, path: str, reason: str) -> None:
        self.n_skipped += 1
        if reason == "unchanged":
            self.n_unchanged += 1
        else:
            self.skipped.append((path, reason))

    def quarantine(self, path: str, reason: str) -> None:
        self.n_quarantined += 1
        self.quarantined.append((path, reason))

    def duplicate(self) -> None:
        self.n_duplicate_content += 1

    @property
    def n_accounted(self) -> int:
        """Paths with an outcome: equals ``n_inputs`` after the run."""
        return self.n_ingested + self.n_duplicate_content + self.n_quarantined + self.n_skipped

    def as_dict(self) -> dict[str, object]:
        d = dict(self.__dict__)
        for k in ("quarantined", "skipped", "unreadable_dirs"):
            d[k] = [list(q) for q in getattr(self, k)]
        return d


def release_rank(data_v: str | None) -> int:
    """Ordinal of a data release label: ``'LAMOST DR9'`` -> 9; unknown -> 0.

    >>> release_rank("LAMOST DR13 Q1"), release_rank(None)
    (13, 0)
    """
    if not data_v:
        return 0
    m = _DR_RE.search(data_v)
    return int(m.group(1)) if m else 0


Stat = tuple[int, int, int]  # size, mtime_ns, inode
Known = dict[str, tuple[str | None, str, str | None]]  # path -> (sha256, outcome, reason)


def discover(
    inputs: Iterable[str | Path],
    suffixes: tuple[str, ...],
    unreadable: list[tuple[str, str]] | None = None,
) -> list[Path]:
    """Expand files, folders (recursively) and glob patterns into spectrum files.

    Folders that cannot be listed are appended to ``unreadable`` as ``(folder, reason)``
    (raised as ``PermissionError`` when ``unreadable`` is None).
    """
    import glob

    found: dict[str, Path] = {}

    def on_error(exc: OSError) -> None:
        what = f"{exc.strerror or exc}; fix its permissions and ingest again"
        if unreadable is None:
            raise PermissionError(f"folder {exc.filename}: {what}")
        unreadable.append((str(exc.filename), what))

    for item in inputs:
        s = str(item)
        if any(ch in s for ch in "*?["):
            matches = [Path(m) for m in glob.glob(s, recursive=True)]
            if not matches:
                raise FileNotFoundError(f"pattern {s!r} matches no file")
        else:
            p = Path(s)
            if not p.exists():
                raise FileNotFoundError(f"{s}: no such file or folder")
            matches = [p]
        for m in matches:
            if m.is_dir():
                for folder, dirs, names in os.walk(m, onerror=on_error):
                    dirs.sort()
                    for name in names:
                        f = Path(folder) / name
                        if name.lower().endswith(suffixes) and f.is_file():
                            found.setdefault(str(f.resolve()), f.resolve())
            elif m.is_file():
                found.setdefault(str(m.resolve()), m.resolve())
    return [found[k] for k in sorted(found)]


def skip_unchanged(
    catalog: Catalog, files: list[str], report: IngestReport
) -> tuple[list[str], dict[str, Stat], Known]:
    """The files to read, their stat triple, and what the ledger knew of each.

    A path whose (size, mtime_ns, inode) equals the stored one, and whose content was
    hashed then, is skipped without opening it (``inode`` is not compared for paths
    ingested before it was recorded). The known state is ``(sha256, outcome, reason)``.
    """
    if not files:
        return [], {}, {}
    # the ledger stores paths as storable_path writes them (undecodable bytes as \x escapes);
    # the file itself is reached by its real path
    names = [storable_path(f) for f in files]
    rows = catalog.con.execute(statement("ledger.sql", "known_paths"), {"paths": names}).fetchall()
    known = {r[0]: r[1:] for r in rows}
    todo: list[str] = []
    stats: dict[str, Stat] = {}
    prior: Known = {}
    for f, name in zip(files, names, strict=True):
        try:
            st = os.stat(f)
        except OSError as exc:
            report.skip(name, f"vanished: {exc.strerror or exc}")
            continue
        stats[name] = (st.st_size, st.st_mtime_ns, st.st_ino)
        k = known.get(name)
        if k is not None:
            size, mtime, inode, sha, outcome, reason, version = k
            prior[name] = (sha, outcome, reason)
            # a file quarantined by another lamostdb version is read again: its reader may
            # accept it now, or give a better reason
            rejudge = outcome == "quarantined" and version != VERSION
            if (
                sha is not None
                and not rejudge
                and (size, mtime) == (st.st_size, st.st_mtime_ns)
                and (inode is None or inode == st.st_ino)
            ):
                report.skip(name, "unchanged")
                continue
        todo.append(f)
    return todo, stats, prior


def unreadable_sha(path: str) -> str:
    """The stand-in checksum of a file that could not be read at all (see ``_process_chunk``)."""
    return hashlib.sha256(f"unreadable:{path}".encode()).hexdigest()


_PATHS_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size_bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("inode", pa.int64()),
        ("sha256", pa.string()),
        ("outcome", pa.string()),
        ("reason", pa.string()),
        ("ingest_run", pa.string()),
    ]
)


def sort_outcomes(
    catalog: Catalog,
    outcomes: list[FileOutcome],
    stats: dict[str, Stat],
    prior: Known,
    run_id: str,
    report: IngestReport,
) -> tuple[list[FileOutcome], list[FileOutcome], dict[str, tuple[int, str]], set[str], pa.Table]:
    """Give every outcome its ledger outcome.

    Returns the fresh contents to store, the new quarantine rows, the versions to make
    current again (specid -> (version, path)), the paths whose staged rows must be dropped,
    and the ``ingest_paths`` rows (without the fresh and restored ones' final reason, which
    :func:`finish_paths` adds).
    """
    con = catalog.con
    shas = sorted({o.sha256 for o in outcomes})
    stored = (
        {
            r[0]: r[1:]
            for r in con.execute(
                statement("ledger.sql", "known_contents"), {"shas": shas}
            ).fetchall()
        }
        if shas
        else {}
    )
    in_quarantine = (
        {
            r[0]
            for r in con.execute(
                statement("ledger.sql", "quarantined_contents"), {"shas": shas}
            ).fetchall()
        }
        if shas
        else set()
    )
    withdrawn = (
        {
            r[0]: r[1:]
            for r in con.execute(
                statement("withdraw.sql", "withdrawn_contents"), {"shas": shas}
            ).fetchall()
        }
        if shas
        else {}
    )
    fresh: list[FileOutcome] = []
    quarantine: list[FileOutcome] = []
    restore: dict[str, tuple[int, str]] = {}
    drop: set[str] = set()
    first_path: dict[str, str] = {}
    rows: list[dict[str, object]] = []

    def row(o: FileOutcome, sha: str | None, outcome: str, reason: str | None) -> None:
        size, mtime, inode = stats.get(o.path, (o.size_bytes, o.mtime_ns, 0))
        rows.append(
            {
                "path": o.path,
                "size_bytes": size,
                "mtime_ns": mtime,
                "inode": inode,
                "sha256": sha,
                "outcome": outcome,
                "reason": reason,
                "ingest_run": run_id,
            }
        )

    restore_candidates: list[FileOutcome] = []
    for o in outcomes:
        unreadable = o.reason is not None and o.sha256 == unreadable_sha(o.path)
        sha = None if unreadable else o.sha256
        before = prior.get(o.path)
        if o.reason is None:
            drop.add(o.path)  # kept again below if it is fresh
        if (
            sha is not None
            and before is not None
            and before[0] == sha
            and (before[1] != "quarantined" or o.reason is not None)
        ):
            report.skip(o.path, "content unchanged")
            # touched only (or re-judged by a new version): store the new stat triple
            row(o, sha, before[1], o.reason if before[1] == "quarantined" else before[2])
            continue
        if o.sha256 in stored and o.reason is None:
            restore_candidates.append(o)
            continue
        if o.sha256 in stored:  # stored once, refused by today's reader: leave it as it is
            report.duplicate()
            row(o, sha, "duplicate", f"same content as {stored[o.sha256][4]}")
            continue
        if o.reason is not None:
            if o.sha256 not in in_quarantine and o.sha256 not in first_path:
                quarantine.append(o)
            first_path.setdefault(o.sha256, o.path)
            report.quarantine(o.path, o.reason)
            row(o, sha, "quarantined", o.reason)
            continue
        if o.sha256 in first_path:
            report.duplicate()
            row(o, sha, "duplicate", f"same content as {first_path[o.sha256]}")
            continue
        first_path[o.sha256] = o.path
        fresh.append(o)
        drop.discard(o.path)
    fresh_specids = {o.specid for o in fresh}
    current = _current_versions(
        catalog, sorted({str(stored[o.sha256][0]) for o in restore_candidates})
    )
    for o in restore_candidates:
        specid, version, is_current, data_v, stored_path = stored[o.sha256]
        if o.sha256 in withdrawn:
            w_specid, w_run, w_reason = withdrawn[o.sha256]
            report.skip(
                o.path,
                f"withdrawn: the same bytes as {w_specid}, withdrawn in run "
                f"{w_run} ({w_reason}); not brought back",
            )
            row(o, o.sha256, "skipped", "withdrawn")
            continue
        cur = current.get(specid)
        if (
            not is_current
            and specid not in fresh_specids
            and cur is not None
            and _rank(data_v) >= _rank(cur[1])
        ):
            old = restore.get(specid)
            if old is not None:  # an earlier path of this run re-delivered another version
                report.n_ingested -= 1
                report.n_restored_versions -= 1
                report.duplicate()
                _relabel(rows, old[1], "duplicate", "another older version was re-delivered")
            restore[specid] = (int(version), o.path)
            report.n_ingested += 1
            report.n_restored_versions += 1
            row(o, o.sha256, "ingested", f"re-delivery: version {version} made current again")
            continue
        report.duplicate()
        row(o, o.sha256, "duplicate", f"same content as {stored_path}")
    report.n_ingested += len(fresh)
    return fresh, quarantine, restore, drop, pa.Table.from_pylist(rows, schema=_PATHS_SCHEMA)


def _relabel(rows: list[dict[str, object]], path: str, outcome: str, reason: str) -> None:
    for r in rows:
        if r["path"] == path:
            r["outcome"], r["reason"] = outcome, reason


def _rank(data_v: str | None) -> int:
    return release_rank(data_v)


def _current_versions(catalog: Catalog, specids: list[str]) -> dict[str, tuple[int, str | None]]:
    if not specids:
        return {}
    rows = catalog.con.execute(
        statement("ledger.sql", "current_versions"), {"specids": specids}
    ).fetchall()
    return {r[0]: (int(r[1]), r[2]) for r in rows}


def fresh_path_rows(fresh: list[FileOutcome], stats: dict[str, Stat], run_id: str) -> pa.Table:
    """``ingest_paths`` rows of the freshly stored contents."""
    return pa.Table.from_pylist(
        [
            {
                "path": o.path,
                "size_bytes": stats.get(o.path, (o.size_bytes, 0, 0))[0],
                "mtime_ns": stats.get(o.path, (0, o.mtime_ns, 0))[1],
                "inode": stats.get(o.path, (0, 0, 0))[2],
                "sha256": o.sha256,
                "outcome": "ingested",
                "reason": None,
                "ingest_run": run_id,
            }
            for o in fresh
        ],
        schema=_PATHS_SCHEMA,
    )


def restored_table(restore: dict[str, tuple[int, str]], run_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [{"specid": s, "version": v, "ingest_run": run_id} for s, (v, _) in restore.items()],
        schema=pa.schema(
            [("specid", pa.string()), ("version", pa.int32()), ("ingest_run", pa.string())]
        ),
    )


def cleared_table(
    fresh: list[FileOutcome], restore: dict[str, tuple[int, str]], paths: pa.Table
) -> pa.Table:
    """(path, sha256) of every file that is in now: their quarantine rows are cleared."""
    restored_paths = {p for _, p in restore.values()}
    by_path: dict[str, str] = defaultdict(str)
    for r in paths.to_pylist():
        if r["path"] in restored_paths:
            by_path[str(r["path"])] = str(r["sha256"])
    for o in fresh:
        by_path[o.path] = o.sha256
    return pa.Table.from_pylist(
        [{"path": p, "sha256": s} for p, s in sorted(by_path.items())],
        schema=pa.schema([("path", pa.string()), ("sha256", pa.string())]),
    )
