"""Implementations of the ``lamostdb`` subcommands (argument parsing is in ``main``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from lamostdb.catalog.store import DB_NAME, Catalog, open_catalog
from lamostdb.cli.exits import EXIT_INCOMPLETE
from lamostdb.cli.options import engine_config

if TYPE_CHECKING:
    pass


def _typed(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _params(items: list[str]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = _typed(v)
    return out or None


def print_frame(df: pl.DataFrame, *, max_rows: int = 50, file: Any = None) -> None:
    with pl.Config(
        tbl_rows=max_rows,
        tbl_cols=20,
        fmt_str_lengths=40,
        tbl_width_chars=160,
        tbl_hide_dataframe_shape=False,
    ):
        print(df, file=file or sys.stdout)


def open_for_write(path: str, order: int | None = None) -> Catalog:
    if (Path(path) / DB_NAME).exists():
        cat = Catalog(path, mode="w")
        if order is not None and order != cat.partition_order:
            raise ValueError(
                f"{path} is partitioned at order {cat.partition_order}; "
                f"--order {order} applies only to new catalogues"
            )
        return cat
    if order is None:
        return Catalog.create(path)
    return Catalog.create(path, partition_order=order)


def cmd_ingest(args: argparse.Namespace) -> int:
    from lamostdb.ingest.stage import ingest

    with open_for_write(args.catalog, args.order) as cat:
        rep = ingest(
            cat,
            args.paths,
            workers=args.workers,
            chunk_size=args.chunk_size,
            progress=not args.quiet,
            cluster=args.cluster,
        )
    rate = rep.n_ingested / rep.elapsed_s if rep.elapsed_s else 0.0
    restored = (
        f", {rep.n_restored_versions} older versions current again"
        if rep.n_restored_versions
        else ""
    )
    print(
        f"run {rep.run_id}: {rep.n_inputs} files seen, {rep.n_ingested} ingested "
        f"({rep.n_new_versions} new versions of known spectra{restored}), "
        f"{rep.n_duplicate_content} duplicate, {rep.n_quarantined} quarantined, "
        f"{rep.n_skipped} skipped ({rep.n_unchanged} unchanged); "
        f"{rep.elapsed_s:.1f} s, {rate:.0f} spectra/s"
    )
    if rep.n_quarantine_cleared:
        print(f"  {rep.n_quarantine_cleared} quarantine rows cleared: their files ingested now")
    for what, items in (("quarantined", rep.quarantined), ("skipped", rep.skipped)):
        for path, reason in items[:20]:
            print(f"  {what} {path}: {reason}")
        if len(items) > 20:
            print(
                f"  ... and {len(items) - 20} more: SELECT * FROM ingest_paths "
                f"WHERE outcome = '{what}'"
            )
    if rep.unreadable_dirs:
        for folder, reason in rep.unreadable_dirs:
            print(
                f"lamostdb ingest: warning: folder {folder} could not be read ({reason}); "
                "its files were not ingested",
                file=sys.stderr,
            )
        return EXIT_INCOMPLETE
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt == "parquet" and not args.output:
        raise ValueError("--format parquet needs --output FILE")
    root = Path(args.catalog).resolve()
    if args.output and Path(args.output).resolve().is_relative_to(root):
        raise ValueError(
            f"--output {args.output} is inside the catalogue {args.catalog}, "
            "which queries never write to; write the results outside it"
        )
    with open_catalog(args.catalog, allow_files=args.allow_files) as cat:
        df = cat.sql(args.query, _params(args.param))
    if args.output:
        out = Path(args.output)
        if fmt == "parquet":
            df.write_parquet(out)
        elif fmt == "csv":
            df.write_csv(out)
        elif fmt == "json":
            df.write_json(out)
        else:
            with open(out, "w") as fh:
                print_frame(df, max_rows=args.max_rows, file=fh)
        print(f"{df.height} rows written to {out}", file=sys.stderr)
    elif fmt == "csv":
        sys.stdout.write(df.write_csv())
    elif fmt == "json":
        sys.stdout.write(df.write_json() + "\n")
    else:
        print_frame(df, max_rows=args.max_rows)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from lamostdb.sim import Artefacts, simulate_night

    t0 = time.perf_counter()
    rate = getattr(args, "artefacts", None)
    artefacts = None if rate is None else Artefacts() if rate < 0 else Artefacts.at_rate(rate)
    summary = simulate_night(
        args.out,
        n=args.n,
        seed=args.seed,
        layout=args.layout,
        gzip=args.gzip,
        arm_mismatch_max=args.arm_mismatch_max,
        tilt_max=args.tilt_max,
        artefacts=artefacts,
        progress=not args.quiet,
    )
    counts = summary.get("counts", summary)
    print(f"wrote {args.n} spectra to {args.out} in {time.perf_counter() - t0:.1f} s: {counts}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with open_catalog(args.catalog) as cat:
        print(f"catalogue {cat.root} (HEALPix partition order {cat.partition_order})")
        print_frame(
            cat.sql(
                "SELECT 'spectra' AS name, count(*) AS n_rows FROM spectra "
                "UNION ALL SELECT 'spectra_history', count(*) FROM spectra_history "
                "UNION ALL SELECT 'quarantine', count(*) FROM quarantine "
                "UNION ALL SELECT 'results', count(*) FROM results "
                "UNION ALL SELECT 'gaia', count(*) FROM gaia "
                "UNION ALL SELECT 'ps1', count(*) FROM ps1 "
                "UNION ALL SELECT 'xmatch', count(*) FROM xmatch "
                "UNION ALL SELECT 'objects', count(*) FROM objects "
                "UNION ALL SELECT 'mec (objects)', count(*) FROM mec"
            ),
            max_rows=20,
        )
        print_frame(
            cat.sql(
                "SELECT run_id, stage, state, started_at, finished_at FROM runs "
                "ORDER BY started_at DESC LIMIT 10"
            )
        )
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from lamostdb.classify import classify

    config = engine_config(args)
    with Catalog(args.catalog, mode="w") as cat:
        rep = classify(
            cat,
            config=config,
            rerun=args.rerun,
            workers=args.workers,
            progress=not args.quiet,
            cluster=args.cluster,
        )
    print(
        f"run {rep.run_id}: {rep.n_fitted} spectra classified ({rep.n_todo} to do) in "
        f"{rep.elapsed_s:.1f} s, {rep.spectra_per_s:.0f} spectra/s; classes {rep.counts}"
    )
    for specid, reason in rep.unusable[:20]:
        print(f"  unusable {specid}: {reason} (zwarning UNPLUGGED)")
    if len(rep.unusable) > 20:
        print(f"  ... and {len(rep.unusable) - 20} more: see the run summary in the runs table")
    return 0


def cmd_templates_list(args: argparse.Namespace) -> int:
    from lamostdb.match.continuum import default_basis
    from lamostdb.templates import load_default_templates, load_template_file
    from lamostdb.templates.libfile import is_library_file, library_table
    from lamostdb.templates.subclass import subclass_of_template

    rows = []
    files = [*args.files, *args.file]
    sets = list(load_default_templates().values()) + [load_template_file(f) for f in files]
    for ts in sets:
        wave = ts.wave_angstrom
        rows.append(
            {
                "class": ts.objclass,
                "subclass": ts.subclass or "",
                "kind": ts.kind,
                "n_vectors": ts.vectors.shape[0],
                "rest_min_A": round(float(wave[0]), 1),
                "rest_max_A": round(float(wave[-1]), 1),
                "file": Path(ts.source).name,
            }
        )
    print_frame(pl.DataFrame(rows))
    basis = default_basis()
    print(f"star continuum vectors: {', '.join(basis.names)} ({basis.source}, {basis.n_bins} bins)")
    for f in files:
        if is_library_file(f):
            print(f"{f}:")
            print_frame(library_table(f), max_rows=500)
    if args.stars:
        names = load_default_templates()["STAR"].names
        print_frame(
            pl.DataFrame(
                {"template": list(names), "subclass": [subclass_of_template(n) for n in names]}
            ),
            max_rows=200,
        )
    return 0


def cmd_templates_calibrate(args: argparse.Namespace) -> int:
    import datetime as dt

    from lamostdb.match.batch import ENGINE_COLUMNS, batch_to_matrices
    from lamostdb.match.calibrate import learn_from_spectra

    cols = ", ".join(ENGINE_COLUMNS)  # fixed column list, not user input
    with open_catalog(args.catalog) as cat:
        df = cat.sql(
            f"SELECT {cols} FROM spectra WHERE snrg >= $snr ORDER BY specid LIMIT $n",
            {"snr": args.min_snr, "n": args.max_spectra},
        )
    if df.height == 0:
        raise ValueError(f"no spectrum with snrg >= {args.min_snr} in {args.catalog}")
    flux, ivar = batch_to_matrices(df)
    basis = learn_from_spectra(
        flux,
        ivar,
        n_vectors=args.n_vectors,
        legendre_order=args.legendre_order,
        source=f"learned from {args.source_label or Path(args.catalog).name}",
    )
    basis.save(
        args.output,
        provenance={
            "catalog": args.source_label or str(Path(args.catalog).resolve()),
            "n_input_spectra": df.height,
            "min_snrg": args.min_snr,
            "n_vectors": args.n_vectors,
            "legendre_order": args.legendre_order,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    )
    print(
        f"learned {basis.n_vectors} vectors ({', '.join(basis.names)}) from {basis.source}; "
        f"wrote {args.output}"
    )
    return 0
