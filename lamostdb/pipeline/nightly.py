"""The nightly run: (refcat ingest) -> ingest -> classify -> xmatch -> ids on one night folder.

Each stage is the catalogue stage of its own command (``lamostdb ingest``, ``classify``,
``refcat ingest``, ``xmatch``, ``ids``): idempotent, atomic, and doing only what is
missing. This module adds nothing to them but the order, one write lock held over all of
them, timings, and a summary of the night. Resuming is therefore the same command again:

- a crash (SIGKILL, power loss) or an exception inside a stage leaves that stage's run
  uncommitted; the next open of the catalogue rolls it back (:func:`~lamostdb.catalog.
  commit.recover`), and the next run redoes just that stage and those after it;
- stages committed before the crash are not redone: ingest skips files already in,
  classify fits only spectra without a result of the current engine version, xmatch
  matches only spectra without a cross-match at the radius, ids writes only identifiers
  that changed, and refcat skips files whose bytes are already in.

A second run on the same night therefore ingests, fits, matches and writes nothing and
says so (:attr:`NightlySummary.nothing_new`); it only adds its own ``nightly`` row to the
``runs`` table, whose ``summary`` column holds :meth:`NightlySummary.as_dict` as JSON.

Reference catalogues: ``gaia_files`` / ``ps1_files`` are loaded first. A simulated night
(``lamostdb simulate``) also holds mock ``gaia.parquet`` and ``ps1.parquet``; they are loaded
only when asked (``refcat_from_night=True``, CLI ``--refcat-from-night``), because a real
night folder holds spectra only and a reference extract found next to them by its name is not
something to load silently. When they are present and not loaded the summary says so.

"This night's spectra" are the current spectra whose source file lies under the night
folder (resolved path); the class counts and quarantine list cover them all, including
work committed by an earlier, interrupted run. The per-run counts (``n_fitted``,
``n_matched``) are what the stages did, which includes spectra of earlier nights that an
interrupted run left without a result or cross-match.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lamostdb.catalog import commit
from lamostdb.catalog.compact import compact
from lamostdb.catalog.store import DB_NAME, Catalog, CatalogError
from lamostdb.classify.stage import classify
from lamostdb.ids import assign_ids
from lamostdb.ingest.stage import SPECTRUM_SUFFIXES, discover, ingest
from lamostdb.io.sqlfiles import statement
from lamostdb.io.validate import DEFAULT_LIMITS, ReadLimits
from lamostdb.match.config import DEFAULT_CONFIG, EngineConfig
from lamostdb.refcat import ingest_refcat
from lamostdb.xmatch import xmatch

#: Stages in the order they run (refcat only does something when files are given).
STAGES = ("refcat", "ingest", "classify", "xmatch", "ids")
#: Reference extracts a simulated night holds, loaded with ``refcat_from_night``.
NIGHT_REFCAT_FILES = {"gaia": "gaia.parquet", "ps1": "ps1.parquet"}
_T = TypeVar("_T")


class NightlyError(CatalogError):
    """The night cannot be run, or a stage failed; the message says what to do next."""


@dataclass(frozen=True)
class NightlyOptions:
    """How to run a night.

    Parameters
    ----------
    workers
        Processes for ingest and classify (default: all cores; 1 runs in this process).
    radius_arcsec
        Cross-match radius and friends-of-friends linking length.
    gaia_files, ps1_files
        Reference extracts to load before the cross-match.
    refcat_from_night
        Also load the night folder's ``gaia.parquet`` / ``ps1.parquet``.
    chunk_size
        Files per ingest work unit.
    progress
        Show the stages' progress bars.
    read_limits
        Size caps and validation thresholds of the ingest (a file beyond them is
        quarantined with the reason).
    engine
        The classify engine (templates, continuum, confidence parameters, grids).
    cluster
        Where ingest, classify, xmatch and ids run their partitions: None (the local
        process pool), ``local:N`` (a Dask cluster of N local workers) or
        ``tcp://HOST:PORT`` (a running Dask scheduler); see :mod:`lamostdb.execute`.
    compact
        After the stages, compact the catalogue (:mod:`lamostdb.catalog.compact`).
    """

    workers: int | None = None
    radius_arcsec: float = 3.0
    gaia_files: tuple[Path, ...] = ()
    ps1_files: tuple[Path, ...] = ()
    refcat_from_night: bool = False
    chunk_size: int = 500
    progress: bool = True
    read_limits: ReadLimits = DEFAULT_LIMITS
    engine: EngineConfig = DEFAULT_CONFIG
    cluster: str | None = None
    compact: bool = False


@dataclass
class StageOutcome:
    """What one stage did in this run."""

    name: str
    seconds: float
    n_done: int  # files ingested, rows added, spectra fitted / matched, id rows written
    run_ids: list[str] = field(default_factory=list)  # committed runs; empty: wrote nothing
    message: str = ""
    peak_worker_rss_mb: float = 0.0  # ingest and classify: largest worker (or this process)
    #: where the stage's partitions ran: the stage report's ``executor`` (cluster address,
    #: workers, tasks per worker, retries); None when the stage ran in this process
    executor: dict[str, Any] | None = None


@dataclass
class NightState:
    """The night's spectra as the catalogue holds them after the run."""

    n_files: int  # spectrum files under the night folder
    n_spectra: int  # current spectra from those files
    n_classified: int
    n_matched: int
    n_identified: int
    classes: dict[str, int]  # class of the latest result; "unclassified" for none
    quarantined: list[tuple[str, str]]  # (path, reason)


@dataclass
class NightlySummary:
    """Summary of one nightly run; stored as JSON in the ``runs`` table (stage ``nightly``)."""

    run_id: str
    catalog: str
    night_dir: str
    started_at: str
    night: NightState
    stages: list[StageOutcome]
    total_s: float
    n_new_spectra: int
    n_new_quarantined: int
    n_fitted: int
    n_matched: int
    n_ids_written: int
    n_reference_rows_added: int
    spectra_per_s: float  # new spectra of this run per second of the whole run
    missing_references: list[str]
    notes: list[str]
    locations: dict[str, str]
    #: (folder, reason) of sub-folders of the night that could not be read (exit status 3)
    unreadable_dirs: list[tuple[str, str]] = field(default_factory=list)
    #: ``--cluster`` as given (None: the local process pool)
    cluster: str | None = None

    @property
    def nothing_new(self) -> bool:
        """True when no stage had anything to do (the night was already complete)."""
        return not (
            self.n_new_spectra
            or self.n_new_quarantined
            or self.n_fitted
            or self.n_matched
            or self.n_ids_written
            or self.n_reference_rows_added
        )

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Wall time of each stage, in run order."""
        return {s.name: s.seconds for s in self.stages}

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (tuples become lists), with ``nothing_new`` and timings."""
        d = asdict(self)
        d["nothing_new"] = self.nothing_new
        d["stage_seconds"] = self.stage_seconds
        d["night"]["quarantined"] = [list(q) for q in self.night.quarantined]
        return d


def night_folder(night_dir: str | Path) -> tuple[Path, list[Path]]:
    """The resolved night folder and its spectrum files; :class:`NightlyError` if unusable."""
    night = Path(night_dir)
    if not night.exists():
        raise NightlyError(
            f"{night}: no such folder; give the folder that holds the night's spectrum files"
        )
    if not night.is_dir():
        raise NightlyError(
            f"{night} is a file, not a night folder; add single files with "
            "`lamostdb ingest CATALOG FILE...`"
        )
    night = night.resolve()
    files = discover([night], [])  # unreadable sub-folders: reported by the ingest stage
    if not files:
        raise NightlyError(
            f"{night} holds no spectrum files ({', '.join(SPECTRUM_SUFFIXES)}) "
            "in it or its subfolders: nothing to run; check the folder name"
        )
    return night, files


def reference_files(
    night: Path, options: NightlyOptions
) -> tuple[dict[str, list[Path]], list[str]]:
    """Reference files to load per table, and notes for the summary.

    Raises
    ------
    NightlyError
        A given file does not exist, or ``refcat_from_night`` finds no extract.
    """
    refs = {
        "gaia": [Path(p).resolve() for p in options.gaia_files],
        "ps1": [Path(p).resolve() for p in options.ps1_files],
    }
    for kind, paths in refs.items():
        for p in paths:
            if not p.is_file():
                raise NightlyError(f"--{kind} {p}: no such file")
    in_night = {
        k: night / name for k, name in NIGHT_REFCAT_FILES.items() if (night / name).is_file()
    }
    notes: list[str] = []
    if options.refcat_from_night:
        if not in_night:
            raise NightlyError(
                f"--refcat-from-night: {night} holds neither "
                + " nor ".join(NIGHT_REFCAT_FILES.values())
            )
        for kind, p in in_night.items():
            if p not in refs[kind]:
                refs[kind].append(p)
    elif in_night:
        names = ", ".join(p.name for p in in_night.values())
        notes.append(
            f"{night} holds {names}: not loaded (pass --refcat-from-night to load "
            "a simulated night's mock references)"
        )
    return refs, notes


def open_for_nightly(catalog: str | Path) -> Catalog:
    """Open ``catalog`` for writing (recovering an interrupted run), creating it if new."""
    root = Path(catalog)
    if (root / DB_NAME).exists():
        return Catalog(root, mode="w")
    return Catalog.create(root)


def _timed(name: str, fn: Callable[[], _T]) -> tuple[_T, float]:
    """Run one stage; any failure becomes a :class:`NightlyError` that says how to resume."""
    t0 = time.perf_counter()
    try:
        out = fn()
    except NightlyError:
        raise
    except Exception as exc:
        raise NightlyError(
            f"stage {name} failed: {type(exc).__name__}: {exc}. What earlier stages committed "
            f"is kept and the {name} run is rolled back when the catalogue is next opened; "
            "fix the cause and run the same command again to resume"
        ) from exc
    return out, round(time.perf_counter() - t0, 3)


def _refcat_stage(cat: Catalog, refs: dict[str, list[Path]], progress: bool) -> StageOutcome:
    def run() -> StageOutcome:
        out = StageOutcome("refcat", 0.0, 0)
        parts = []
        for kind, paths in refs.items():
            if not paths:
                continue
            rep = ingest_refcat(cat, kind, paths, progress=progress)
            out.n_done += rep.n_added
            if rep.n_files > rep.n_unchanged:
                out.run_ids.append(rep.run_id)
            parts.append(
                f"{kind} {rep.n_added} rows added ({rep.n_unchanged} of "
                f"{rep.n_files} files already in)"
            )
        out.message = "; ".join(parts) or "no reference files given"
        return out

    out, seconds = _timed("refcat", run)
    out.seconds = seconds
    return out


def _run_stages(
    cat: Catalog,
    night: Path,
    refs: dict[str, list[Path]],
    options: NightlyOptions,
    on_stage: Callable[[StageOutcome], None] | None,
) -> tuple[list[StageOutcome], dict[str, Any]]:
    """Run the stages in order; return their outcomes and the numbers the summary needs."""
    outcomes: list[StageOutcome] = []
    facts: dict[str, Any] = {}

    def done(outcome: StageOutcome) -> None:
        outcomes.append(outcome)
        if on_stage is not None:
            on_stage(outcome)
        commit.fault(f"after_{outcome.name}", "nightly")

    done(_refcat_stage(cat, refs, options.progress))

    irep, secs = _timed(
        "ingest",
        lambda: ingest(
            cat,
            [night],
            workers=options.workers,
            chunk_size=options.chunk_size,
            progress=options.progress,
            limits=options.read_limits,
            cluster=options.cluster,
        ),
    )
    facts["n_new_spectra"], facts["n_new_quarantined"] = irep.n_ingested, irep.n_quarantined
    facts["unreadable_dirs"] = irep.unreadable_dirs
    done(
        StageOutcome(
            "ingest",
            secs,
            irep.n_ingested,
            [irep.run_id] if irep.n_ingested or irep.n_quarantined else [],
            f"{irep.n_ingested} new spectra, {irep.n_quarantined} quarantined, "
            f"{irep.n_unchanged} of {irep.n_inputs} files already in",
            round(irep.peak_worker_rss_mb, 1),
            _executor(irep),
        )
    )

    crep, secs = _timed(
        "classify",
        lambda: classify(
            cat,
            config=options.engine,
            workers=options.workers,
            progress=options.progress,
            cluster=options.cluster,
        ),
    )
    facts["n_fitted"] = crep.n_fitted
    done(
        StageOutcome(
            "classify",
            secs,
            crep.n_fitted,
            [crep.run_id] if crep.n_fitted else [],
            f"{crep.n_fitted} spectra fitted"
            + (f" ({crep.spectra_per_s:.0f} spectra/s)" if crep.n_fitted else ""),
            round(crep.peak_worker_rss_mb, 1),
            _executor(crep),
        )
    )

    xrep, secs = _timed(
        "xmatch",
        lambda: xmatch(
            cat,
            radius_arcsec=options.radius_arcsec,
            progress=options.progress,
            cluster=options.cluster,
        ),
    )
    facts["n_matched"], facts["missing_references"] = xrep.n_todo, xrep.missing_references
    matched = ", ".join(f"{k} {v}" for k, v in xrep.n_matched.items())
    done(
        StageOutcome(
            "xmatch",
            secs,
            xrep.n_todo,
            [xrep.run_id] if xrep.n_todo else [],
            f"{xrep.n_todo} spectra matched"
            + (f" (counterparts: {matched})" if xrep.n_todo else ""),
            executor=_executor(xrep),
        )
    )

    drep, secs = _timed(
        "ids",
        lambda: assign_ids(
            cat,
            radius_arcsec=options.radius_arcsec,
            progress=options.progress,
            cluster=options.cluster,
        ),
    )
    facts["n_ids_written"] = drep.n_written
    done(
        StageOutcome(
            "ids",
            secs,
            drep.n_written,
            [drep.run_id] if drep.committed else [],
            f"{drep.n_written} identifier rows written, {drep.n_objects} objects, "
            f"{drep.n_aliases} new UID aliases",
            executor=_executor(drep),
        )
    )
    return outcomes, facts


def _executor(report: object) -> dict[str, Any] | None:
    """A stage report's ``executor`` summary; None for a stage that ran in this process."""
    summary = getattr(report, "executor", None)
    return dict(summary) if summary else None


def night_state(cat: Catalog, night: Path, n_files: int) -> NightState:
    """What the catalogue holds for the spectra of ``night`` (a resolved folder)."""
    params = {"prefix": str(night).rstrip("/") + "/"}
    progress = cat.sql(statement("nightly.sql", "night_progress"), params).row(0, named=True)
    classes = {
        ("unclassified" if c is None else str(c)): int(n)
        for c, n in cat.sql(statement("nightly.sql", "night_classes"), params).iter_rows()
    }
    quarantined = [
        (str(p), str(r))
        for p, r in cat.sql(statement("nightly.sql", "night_quarantine"), params).iter_rows()
    ]
    return NightState(
        n_files,
        int(progress["n_spectra"]),
        int(progress["n_classified"]),
        int(progress["n_matched"]),
        int(progress["n_identified"]),
        classes,
        quarantined,
    )


def run_nightly(
    catalog: str | Path,
    night_dir: str | Path,
    options: NightlyOptions | None = None,
    *,
    on_stage: Callable[[StageOutcome], None] | None = None,
) -> NightlySummary:
    """Run every stage on one night folder; resumable, see the module docstring.

    Parameters
    ----------
    catalog
        Catalogue folder (created when missing).
    night_dir
        Folder of the night's spectrum files (searched recursively).
    options
        Workers, radius, reference files, progress bars.
    on_stage
        Called with each stage's outcome as soon as the stage is done.

    Returns
    -------
    NightlySummary
        Also stored as the JSON ``summary`` of the ``nightly`` run in the ``runs`` table.

    Raises
    ------
    NightlyError
        The night folder is missing or empty, a reference file is missing, or a stage
        failed (the message names it; run again to resume).
    CatalogError
        The catalogue is locked by another writer, or the folder is not a catalogue.
    """
    opts = options or NightlyOptions()
    if not opts.radius_arcsec > 0:
        raise NightlyError(f"radius_arcsec must be > 0, got {opts.radius_arcsec}")
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    night, files = night_folder(night_dir)
    refs, notes = reference_files(night, opts)
    run_id = commit.new_run_id()
    with open_for_nightly(catalog) as cat, cat.write_lock():
        outcomes, facts = _run_stages(cat, night, refs, opts, on_stage)
        if opts.compact:
            rep, secs = _timed("compact", lambda: compact(cat))
            outcomes.append(
                StageOutcome(
                    "compact",
                    secs,
                    rep.files_before - rep.files_after,
                    [t.run_id for t in rep.tables if t.run_id],
                    f"files {rep.files_before} -> {rep.files_after}",
                )
            )
            if on_stage is not None:
                on_stage(outcomes[-1])
        state = night_state(cat, night, len(files))
        missing = list(facts["missing_references"])
        if missing:
            notes.append(
                "no rows in " + ", ".join(missing) + ": those cross-match columns are "
                "null; load the references (--gaia/--ps1 or `lamostdb refcat ingest`) "
                "and run `lamostdb xmatch --rerun`"
            )
        if state.n_classified < state.n_spectra:
            notes.append(
                f"{state.n_spectra - state.n_classified} of the night's spectra have no result"
            )
        if facts.get("unreadable_dirs"):
            notes.append(
                f"{len(facts['unreadable_dirs'])} folders of the night could not be "
                "read, their files were not ingested: "
                + "; ".join(f"{d} ({why})" for d, why in facts["unreadable_dirs"])
            )
        total_s = round(time.perf_counter() - t0, 3)
        summary = NightlySummary(
            run_id=run_id,
            catalog=str(cat.root),
            night_dir=str(night),
            started_at=started,
            night=state,
            stages=outcomes,
            total_s=total_s,
            n_new_spectra=facts["n_new_spectra"],
            n_new_quarantined=facts["n_new_quarantined"],
            n_fitted=facts["n_fitted"],
            n_matched=facts["n_matched"],
            n_ids_written=facts["n_ids_written"],
            n_reference_rows_added=outcomes[0].n_done,
            spectra_per_s=round(facts["n_new_spectra"] / max(total_s, 1e-9), 1),
            missing_references=missing,
            notes=notes,
            locations=_locations(cat, run_id),
            unreadable_dirs=facts.get("unreadable_dirs", []),
            cluster=opts.cluster,
        )
        commit.commit_run(cat, run_id, "nightly", [], lambda: None, summary.as_dict())
    return summary


def _locations(cat: Catalog, run_id: str) -> dict[str, str]:
    out = {"catalog": str(cat.root), "database": str(cat.root / DB_NAME)}
    for table in ("spectra", "results", "candidates", "gaia", "ps1", "xmatch", "objects"):
        if cat.table_files(table):
            out[table] = str(cat.root / table)
    out["summary"] = f"SELECT summary FROM runs WHERE run_id = '{run_id}'"
    out["views"] = 'lrs, mec (lamostdb sql CATALOG "SELECT * FROM lrs")'
    return out
