"""The on-disk catalogue: one folder, Parquet tables plus ``catalog.duckdb``.

:class:`Catalog` opens the folder, keeps the DuckDB connection, registers every table
from its *committed* file list (so a crashed run's leftovers are never read) and the
views of ``sql/views.sql``, and answers SQL, cone searches and spectrum look-ups.

A writer (``mode='w'``) opens ``catalog.duckdb``. A reader (``mode='r'``) never does: it
reads the snapshot the last commit published (:mod:`lamostdb.catalog.snapshot`) into an
in-memory DuckDB, so it neither waits for a writer nor holds a lock a writer waits for.
User SQL (:meth:`Catalog.sql`) runs through the read-only path of
:mod:`lamostdb.catalog.readonly`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from lamostdb.catalog import readonly, registry, retire, snapshot
from lamostdb.catalog.errors import CatalogError
from lamostdb.catalog.hats import TableFile, write_table_metadata
from lamostdb.catalog.recovery import recover
from lamostdb.catalog.schema import all_schema_names, load_schema
from lamostdb.healpix import cone_pixels, pixel_at_order
from lamostdb.healpix.macros import create_macros
from lamostdb.io.record import SpectrumRecord
from lamostdb.io.sqlfiles import statement
from lamostdb.version import VERSION

_T = TypeVar("_T")
DB_NAME = "catalog.duckdb"
FORMAT_VERSION = "1"
DEFAULT_PARTITION_ORDER = 4
#: Tables stored as HATS Parquet (name -> schema name); later stages add theirs.
#: Tables whose schema file does not exist (a stage not built yet) are skipped.
PARQUET_TABLES = {
    "spectra_history": "spectra",
    "results_history": "results",
    "candidates_history": "candidates",
    "gaia": "gaia",
    "ps1": "ps1",
    "xmatch_history": "xmatch",
    "objects_history": "objects",
}
#: Names users' SQL may rely on that exist today (DESIGN.md section 3); checked by the tests.
PUBLIC_NAMES = (
    "spectra",
    "spectra_history",
    "quarantine",
    "results",
    "results_history",
    "candidates",
    "candidates_history",
    "gaia",
    "ps1",
    "xmatch",
    "xmatch_history",
    "objects",
    "objects_history",
    "uid_aliases",
    "lrs",
    "mec",
    "withdrawn",
)
#: The allow-list of table and view names of the whole pipeline: the names above plus those
#: the later stages create (classify: results, candidates; refcat: gaia, ps1; xmatch;
#: ids: objects; views lrs and mec). Code that takes a table name checks it against this.
TABLE_NAMES = PUBLIC_NAMES + ("refcat_ledger",)
#: Bookkeeping tables of later stages, created with the catalogue so they are always queryable.
_STAGE_DDL = (
    ("refcat.sql", "create_refcat_ledger"),
    ("ids.sql", "create_uid_aliases"),
    ("withdraw.sql", "create_withdrawn"),
    ("compact.sql", "create_retired_files"),
)
_DDL = (
    "create_catalog_meta",
    "create_runs",
    "create_files",
    "create_ingest_ledger",
    "create_spectrum_versions",
    "create_quarantine",
    "create_ingest_paths",
)
_ALL_DDL = tuple(("ledger.sql", n) for n in _DDL) + _STAGE_DDL


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Catalog:
    """A lamostdb catalogue folder.

    Use :func:`lamostdb.open` (read-only, for queries) or :meth:`Catalog.create` /
    ``Catalog(path, mode="w")`` (for stages that write).

    Parameters
    ----------
    path
        Catalogue folder.
    mode
        ``'r'``: read the last published snapshot (never opens ``catalog.duckdb``);
        ``'w'``: open ``catalog.duckdb`` for a writing stage.
    allow_files
        Folders outside the catalogue whose files :meth:`sql` may read (``read_csv``, ...);
        by default a query reads the catalogue only.
    """

    def __init__(
        self, path: str | Path, *, mode: str = "r", allow_files: Sequence[str | Path] = ()
    ) -> None:
        if mode not in ("r", "w"):
            raise ValueError(f"mode must be 'r' or 'w', got {mode!r}")
        self.root = Path(path).resolve()
        self.mode = mode
        self.allow_files = tuple(allow_files)
        self._lock_fh: Any = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._query_con: duckdb.DuckDBPyConnection | None = None
        self._partition_order: int | None = None
        self._snapshot: snapshot.Snapshot | None = None
        self._legacy: dict[str, pa.Table] = {}
        db = self.root / DB_NAME
        if not db.exists():
            raise CatalogError(
                f"{self.root} is not a lamostdb catalogue (no {DB_NAME}); "
                f"create one with `lamostdb ingest {path} FILES...`"
            )
        if mode == "r":
            self._load_snapshot()
            return
        try:
            self._con = duckdb.connect(str(db))
        except duckdb.IOException as exc:
            raise CatalogError(
                f"cannot open {db}: {exc}. Another process may be writing to "
                "this catalogue; wait for it to finish."
            ) from None
        create_macros(self._con)
        self._ensure_tables()
        with self.write_lock():
            recover(self)
        self.refresh_views()
        self.publish()  # a recovery or migration changed what readers must see

    # -- creation ---------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        partition_order: int = DEFAULT_PARTITION_ORDER,
        exist_ok: bool = True,
    ) -> Catalog:
        """Create an empty catalogue (or open an existing one for writing)."""
        root = Path(path)
        if (root / DB_NAME).exists():
            if not exist_ok:
                raise CatalogError(f"{root} already holds a catalogue")
            return cls(root, mode="w")
        if root.exists() and any(root.iterdir()):
            raise CatalogError(
                f"{root} exists and is not empty, and is not a lamostdb "
                "catalogue; choose a new folder"
            )
        if not 0 <= partition_order <= 10:
            raise ValueError(f"partition_order must be in 0..10, got {partition_order}")
        root.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(root / DB_NAME))
        for name in _DDL:
            con.execute(statement("ledger.sql", name))
        for fname, name in _STAGE_DDL:
            con.execute(statement(fname, name))
        for key, value in (
            ("format_version", FORMAT_VERSION),
            ("partition_order", str(partition_order)),
            ("created_at", utcnow().isoformat()),
            ("created_by", f"lamostdb {VERSION}"),
        ):
            con.execute(statement("ledger.sql", "set_meta"), {"key": key, "value": value})
        con.close()
        return cls(root, mode="w")

    def _ensure_tables(self) -> None:
        for name in _DDL:
            self.con.execute(statement("ledger.sql", name))
        for fname, name in _STAGE_DDL:
            self.con.execute(statement(fname, name))

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection the stages and the API's own statements use.

        Writers: ``catalog.duckdb``. Readers: an in-memory database over the snapshot
        (built on first use).
        """
        if self._con is None:
            if self.mode == "w":
                raise CatalogError(f"{self.root}: the catalogue is closed")
            self._con = duckdb.connect(
                ":memory:",
                config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
            )
            create_macros(self._con)
            self._attach_snapshot(self._con)
        return self._con

    @property
    def partition_order(self) -> int:
        if self._partition_order is None:
            self._partition_order = int(self.meta("partition_order") or DEFAULT_PARTITION_ORDER)
        return self._partition_order

    def publish(self) -> str:
        """Publish the committed state for readers (writers only; commits call this)."""
        if self.mode != "w":
            raise CatalogError("catalogue opened read-only; only a writer publishes")
        return snapshot.publish(self.con, self.root)

    def close(self) -> None:
        for con in (self._con, self._query_con):
            if con is not None:
                con.close()
        self._con = self._query_con = None
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None and self.mode == "w" and self._con is not None:
                self.publish()  # a write outside commit_run is seen too (no-op otherwise)
        finally:
            self.close()

    # -- settings and locking ------------------------------------------------------
    def meta(self, key: str) -> str | None:
        rows = self.con.execute(statement("ledger.sql", "get_meta"), {"key": key}).fetchall()
        return None if not rows else str(rows[0][0])

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Exclusive lock for a writing stage (one writer per catalogue)."""
        if self.mode != "w":
            raise CatalogError("catalogue opened read-only; open it with mode='w' to write")
        if self._lock_fh is not None:  # re-entrant within this object
            yield
            return
        fh = open(self.root / ".lock", "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise CatalogError(f"{self.root} is locked by another writing process") from None
        self._lock_fh = fh
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()
            self._lock_fh = None

    # -- tables and views ------------------------------------------------------------
    def table_files(self, table: str) -> list[TableFile]:
        rows = self.con.execute(
            statement("ledger.sql", "table_files"), {"table_name": table}
        ).fetchall()
        return [TableFile(str(p), int(o), int(n), int(r)) for p, o, n, r in rows]

    def _load_snapshot(self) -> None:
        """Read ``CURRENT`` (once) and remember that snapshot's files (readers)."""
        snap = snapshot.load_current(self.root)
        if snap is not None:
            self._snapshot, self._legacy = snap, {}
            return
        # a catalogue no writer of this version has opened yet: copy its bookkeeping
        # (holding catalog.duckdb for these few milliseconds only)
        db = self.root / DB_NAME
        try:
            self._legacy = registry.legacy_tables(db)
        except duckdb.IOException as exc:
            raise CatalogError(
                f"cannot open {db}: {exc}. This catalogue was written by an "
                "older lamostdb and has no reader snapshot yet; the next "
                "writing command publishes one."
            ) from None
        self._snapshot = None

    def _committed_files(self) -> dict[str, list[str]]:
        if self._snapshot is not None:
            return self._snapshot.files
        out: dict[str, list[str]] = {}
        files = self._legacy["files"]
        for t, p in sorted(
            zip(
                files.column("table_name").to_pylist(),
                files.column("path").to_pylist(),
                strict=True,
            )
        ):
            out.setdefault(t, []).append(p)
        return out

    def _attach_snapshot(self, con: duckdb.DuckDBPyConnection) -> None:
        """Register the snapshot's tables, the Parquet tables and the views on ``con``."""
        if self._snapshot is not None:
            for name, path in self._snapshot.tables.items():
                registry.register(con, name, con.read_parquet(str(path)))
        else:
            for name, tbl in self._legacy.items():
                registry.register(con, name, tbl)
        # a bookkeeping table that this version creates but the snapshot predates: empty
        have = set(self._snapshot.tables if self._snapshot is not None else self._legacy)
        for table, ddl in registry.bookkeeping_ddl(_ALL_DDL):
            if table not in have:
                con.execute(ddl)
        committed = self._committed_files()
        for name, schema_name in PARQUET_TABLES.items():
            if schema_name in all_schema_names():
                files = [self._data_path(p) for p in committed.get(schema_name, [])]
                registry.register_parquet(con, name, schema_name, files)
        registry.create_views(con)

    def _data_path(self, path: str) -> str:
        """Where a data file of this catalogue is: in its leaf or, retired by a compaction
        after this reader's snapshot, under ``_retired/`` (:mod:`lamostdb.catalog.retire`)."""
        if self.mode == "r" and (self.root / retire.RETIRED).is_dir():
            return str(retire.resolve(self.root, path))
        return str(self.root / path)

    def _reattach(self) -> None:
        """Register the same snapshot again, finding files a compaction has moved since."""
        for con in (self._con, self._query_con):
            if con is not None:
                self._attach_snapshot(con)

    def _retrying(self, run: Callable[[], _T]) -> _T:
        """``run()``; a reader whose files a compaction moved meanwhile re-registers them
        (same snapshot, same rows) and runs it once more."""
        try:
            return run()
        except duckdb.IOException:
            if self.mode != "r" or not (self.root / retire.RETIRED).is_dir():
                raise
        self._reattach()
        return run()

    def _register_parquet(self, name: str, schema_name: str, files: Sequence[str]) -> None:
        registry.register_parquet(self.con, name, schema_name, files)

    def refresh_views(self) -> None:
        """(Re)register tables from their committed files, then the SQL views.

        A reader moves to the newest published snapshot.
        """
        if self.mode == "r":
            self._load_snapshot()
            for con in (self._con, self._query_con):
                if con is not None:
                    self._attach_snapshot(con)
            return
        for name, schema_name in PARQUET_TABLES.items():
            if schema_name not in all_schema_names():
                continue
            files = [str(self.root / f.path) for f in self.table_files(schema_name)]
            registry.register_parquet(self.con, name, schema_name, files)
        registry.create_views(self.con)

    def write_hats_metadata(self, table: str) -> None:
        schema = load_schema(table)
        write_table_metadata(
            self.root,
            table,
            self.table_files(table),
            schema.arrow_schema(),
            ra_column=schema.ra_column,
            dec_column=schema.dec_column,
        )

    # -- queries ---------------------------------------------------------------------
    def _user_con(self) -> duckdb.DuckDBPyConnection:
        """The locked-down connection user SQL runs on (readers; built on first use)."""
        if self._query_con is None:
            con = readonly.restricted_connection(self.root, self.allow_files)
            self._attach_snapshot(con)
            readonly.lock(con)
            self._query_con = con
        return self._query_con

    def sql(
        self, query: str, params: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> pl.DataFrame:
        """Run one read-only SQL query over the catalogue and return a Polars DataFrame.

        Parameters are bound, never pasted: ``cat.sql("SELECT * FROM spectra WHERE
        obsid = $obsid", {"obsid": 101001})``. Exactly one query statement is run
        (``SELECT``, ``WITH``, ``FROM``, ``DESCRIBE``, ...); anything else is refused with
        :class:`~lamostdb.catalog.readonly.QueryRefused`. A reader's query can read the
        catalogue's files only, plus those of the ``allow_files`` folders.
        """
        readonly.check_query(query)
        con = self._user_con() if self.mode == "r" else self.con

        def run() -> pl.DataFrame:
            res = con.sql(query, params=params) if params is not None else con.sql(query)
            return res.pl() if res is not None else pl.DataFrame()

        try:
            return self._retrying(run)
        except duckdb.PermissionException as exc:
            raise readonly.explain_permission_error(exc) from None
        except duckdb.InvalidInputException as exc:
            if readonly.LOCKED in str(exc):
                raise readonly.explain_locked(exc) from None
            raise
        except duckdb.ParserException as exc:  # the text passed query(...) at run time
            raise readonly.QueryRefused(
                f"refused: a query given as text (query(...)) is not one SELECT statement: {exc}"
            ) from None

    def cone(
        self,
        ra_deg: float,
        dec_deg: float,
        radius_arcsec: float,
        *,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Current spectra within ``radius_arcsec`` of a position, nearest first.

        Only the partitions that overlap the cone are read. By default the pixel
        arrays and the header are left out; name them in ``columns`` to get them.
        """
        if not (0 <= ra_deg <= 360 and -90 <= dec_deg <= 90):
            raise ValueError(f"position ({ra_deg}, {dec_deg}) is not in degrees")
        table_files = self.table_files("spectra")
        # leaves may be of any order (lamostdb compact): pixels at the deepest one, coarser
        # when the cone would need more than a few thousand of them
        k = min(max([self.partition_order, *(f.norder for f in table_files)]), 10)
        cone_sr = min(np.pi * np.radians(radius_arcsec / 3600.0) ** 2, 4 * np.pi)
        while k > 0 and cone_sr / (np.pi / (3 * 4**k)) > 4096:
            k -= 1
        pixels = cone_pixels(ra_deg, dec_deg, radius_arcsec, k)
        at_order = {o: set(pixel_at_order(pixels, o, from_order=k).tolist()) for o in range(k + 1)}
        files = [
            self._data_path(f.path)
            for f in table_files
            if (
                int(pixel_at_order(f.npix, k, from_order=f.norder)) in at_order[k]
                if f.norder > k
                else f.npix in at_order[f.norder]
            )
        ]
        schema = load_schema("spectra")
        wanted = (
            list(columns)
            if columns is not None
            else [
                c.name
                for c in schema.columns
                if not c.type.startswith("list") and c.name != "header"
            ]
        )
        unknown = set(wanted) - set(schema.names)
        if unknown:
            raise KeyError(f"spectra has no column(s) {sorted(unknown)}")
        self._register_parquet("cone_history", "spectra", files)
        self.con.execute(statement("query.sql", "cone_source_view"))
        out = self._retrying(
            lambda: self.con.sql(
                statement("query.sql", "cone"),
                params={"ra_deg": ra_deg, "dec_deg": dec_deg, "radius_arcsec": radius_arcsec},
            ).pl()
        )
        return out.select([*wanted, "sep_arcsec"])

    def spectrum(self, obsid: int | None = None, *, specid: str | None = None) -> SpectrumRecord:
        """The current stored version of one spectrum, as a :class:`SpectrumRecord`."""
        if (obsid is None) == (specid is None):
            raise ValueError("give exactly one of obsid or specid")
        if obsid is not None:
            tbl = self._retrying(
                lambda: self.con.sql(
                    statement("query.sql", "spectrum_by_obsid"), params={"obsid": int(obsid)}
                ).to_arrow_table()
            )
        else:
            tbl = self._retrying(
                lambda: self.con.sql(
                    statement("query.sql", "spectrum_by_specid"), params={"specid": specid}
                ).to_arrow_table()
            )
        if tbl.num_rows == 0:
            what = f"obsid {obsid}" if obsid is not None else f"specid {specid!r}"
            raise KeyError(f"no spectrum with {what} in {self.root}")
        if tbl.num_rows > 1:
            raise KeyError(f"obsid {obsid} matches {tbl.num_rows} spectra; use specid=")
        return row_to_record(tbl)


def row_to_record(tbl: pa.Table, i: int = 0) -> SpectrumRecord:
    """One row of a ``spectra`` table back to a :class:`SpectrumRecord`."""
    row = {name: tbl.column(name)[i] for name in tbl.column_names}

    def arr(name: str, dtype: type) -> np.ndarray | None:
        v = row[name]
        return (
            None
            if not v.is_valid
            else v.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
        )

    fields = SpectrumRecord.__dataclass_fields__
    kwargs = {
        k: row[k].as_py()
        for k in fields
        if k in row and k not in ("flux", "ivar", "andmask", "ormask", "wavelength")
    }
    kwargs.update(
        flux=arr("flux", np.float32),
        ivar=arr("ivar", np.float32),
        andmask=arr("andmask", np.int32),
        ormask=arr("ormask", np.int32),
        wavelength=arr("wavelength", np.float64),
        source_bytes=0,
    )
    return SpectrumRecord(**kwargs)


def open_catalog(
    path: str | Path, *, mode: str = "r", allow_files: Sequence[str | Path] = ()
) -> Catalog:
    """Open a catalogue folder; ``mode='r'`` for queries (default), ``'w'`` to write.

    Exported as :func:`lamostdb.open`; ``allow_files`` as in :class:`Catalog`.
    """
    return Catalog(path, mode=mode, allow_files=allow_files)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def dumps(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
