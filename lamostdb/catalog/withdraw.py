"""Withdraw stored spectra: take them out of every view and stage, atomically and audited.

A withdrawal names spectra by specid; what is withdrawn is each one's *current version*
(its content, by SHA-256). The rows stay in ``spectra_history`` (nothing is deleted), one
row per version goes into the ``withdrawn`` table with the reason, who withdrew it and the
run, and the ``spectra`` view (and so ``results``, ``candidates``, ``xmatch``, ``objects``,
``lrs``, ``mec``, and the classify, xmatch, ids and export stages, which all read through
it) leaves those versions out. The rows are written by one commit of the usual machinery
(:func:`lamostdb.catalog.commit.commit_run`, a run of stage ``withdraw`` with no files), so
a crash leaves the catalogue as before or after, never between.

Re-delivery: ingesting the same bytes again does not bring a withdrawn version back (the
ingest report lists the path as skipped, "withdrawn"); a delivery with *other* bytes is a
new version and becomes current and visible like any re-delivery.
"""

from __future__ import annotations

import os
import pwd
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from lamostdb.catalog.commit import commit_run, new_run_id
from lamostdb.catalog.store import Catalog
from lamostdb.io.sqlfiles import statement
from lamostdb.version import VERSION

_WITHDRAWN_SCHEMA = pa.schema(
    [
        ("specid", pa.string()),
        ("sha256", pa.string()),
        ("version", pa.int32()),
        ("obsid", pa.int64()),
        ("reason", pa.string()),
        ("withdrawn_by", pa.string()),
        ("run_id", pa.string()),
    ]
)


class WithdrawError(ValueError):
    """Nothing was withdrawn; the message says why and what to do."""


@dataclass
class WithdrawReport:
    """What one withdrawal did."""

    run_id: str | None
    withdrawn: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # withdrawn by an earlier run

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def default_actor(tool: str = "lamostdb.catalog.withdraw") -> str:
    """``user@host (tool, lamostdb VERSION)``: who and what withdrew, for the audit row."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = f"uid {os.geteuid()}"
    return f"{user}@{socket.gethostname()} ({tool}, lamostdb {VERSION})"


def withdraw(
    catalog: Catalog, specids: Iterable[str], *, reason: str, by: str | None = None
) -> WithdrawReport:
    """Withdraw the current version of each of ``specids`` from ``catalog``.

    Parameters
    ----------
    catalog
        The catalogue, opened with ``mode='w'``.
    specids
        Spectra to withdraw. Every one must be stored, or nothing is written.
    reason
        Why (required; kept in the ``withdrawn`` table).
    by
        Who and what withdraws them (default: :func:`default_actor`).

    Returns
    -------
    WithdrawReport
        The specids withdrawn now, and those withdrawn already by an earlier run.

    Raises
    ------
    WithdrawError
        No specid given, an empty reason, or unknown specids (all named).
    """
    wanted = sorted(set(specids))
    if not wanted:
        raise WithdrawError("no SPECID given; name the spectra to withdraw")
    if not reason or not reason.strip():
        raise WithdrawError("--reason is empty; say why the spectra are withdrawn")
    actor = by or default_actor()
    with catalog.write_lock():
        rows = catalog.con.execute(
            statement("withdraw.sql", "current_versions_of"), {"specids": wanted}
        ).fetchall()
        found = {r[0] for r in rows}
        unknown = [s for s in wanted if s not in found]
        if unknown:
            shown = ", ".join(unknown[:10]) + (
                f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            )
            raise WithdrawError(
                f"{len(unknown)} of the {len(wanted)} specids are not in "
                f"{catalog.root}: {shown}; nothing was withdrawn (check the "
                'specids with `lamostdb sql CATALOG "SELECT specid FROM '
                'spectra_history WHERE ..."`)'
            )
        run_id = new_run_id()
        report = WithdrawReport(run_id)
        new_rows = []
        for specid, sha, version, obsid, earlier_run in rows:
            if earlier_run is not None:
                report.already.append(specid)
                continue
            report.withdrawn.append(specid)
            new_rows.append(
                {
                    "specid": specid,
                    "sha256": sha,
                    "version": int(version),
                    "obsid": obsid,
                    "reason": reason.strip(),
                    "withdrawn_by": actor,
                    "run_id": run_id,
                }
            )
        if not new_rows:
            report.run_id = None
            return report
        table = pa.Table.from_pylist(new_rows, schema=_WITHDRAWN_SCHEMA)

        def ledger_writes() -> None:
            catalog.con.register("staged_withdrawn", table)
            try:
                catalog.con.execute(statement("withdraw.sql", "insert_withdrawn"))
            finally:
                catalog.con.unregister("staged_withdrawn")

        commit_run(
            catalog,
            run_id,
            "withdraw",
            [],
            ledger_writes,
            {
                "withdrawn": report.withdrawn,
                "already": report.already,
                "reason": reason.strip(),
                "by": actor,
            },
        )
    return report
