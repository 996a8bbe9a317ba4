"""``lamostdb demo``: the whole chain on shipped data, then the queries astronomers ask.

Three simulated nights that revisit one survey field (so objects get several epochs, and the
simulated binaries get a radial-velocity scatter), each with its mock Gaia DR3 and
Pan-STARRS1 extract, plus the real LAMOST spectra shipped in the package, go through
``lamostdb nightly`` (refcat -> ingest -> classify -> xmatch -> ids); then a few typical
queries are run and printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lamostdb.catalog.store import open_catalog
from lamostdb.cli.nightly_cmd import format_summary
from lamostdb.ingest.stage import ingest
from lamostdb.pipeline.nightly import NightlyOptions, open_for_nightly, run_nightly

#: Night seeds whose single plate observes the same field (246) for n <= 4000.
DEMO_SEEDS = (1, 32, 37)

QUERIES: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    (
        "Classes and how sure we are (conf) per class",
        "SELECT class, count(*) AS n, round(median(conf), 3) AS median_conf, "
        "count(*) FILTER (WHERE zwarning = 0) AS n_no_warning FROM results GROUP BY ALL "
        "ORDER BY n DESC",
        None,
    ),
    (
        "All QSOs with z > $zmin, best first",
        "SELECT obsid, round(z, 4) AS z, round(z_err, 5) AS z_err, round(conf, 3) AS conf, snrg "
        "FROM results WHERE class = 'QSO' AND z > $zmin ORDER BY snrg DESC LIMIT 10",
        {"zmin": 2.0},
    ),
    (
        "Stars with >= $n epochs and an RV scatter > $rv km/s (binary candidates, from the mec)",
        "SELECT uid, n_epochs, round(rv_mean_kms, 1) AS rv_mean, round(rv_std_kms, 1) AS rv_std, "
        "gaia_source_id, round(gaia_g_mag, 2) AS g FROM mec "
        "WHERE class = 'STAR' AND n_epochs >= $n AND rv_std_kms > $rv "
        "ORDER BY rv_std_kms DESC LIMIT 10",
        {"n": 3, "rv": 20.0},
    ),
    (
        "Objects with no Gaia counterpart within 3 arcsec (what are they?)",
        "SELECT class, count(*) AS n_objects, count(ps1_objid) AS with_ps1 FROM mec "
        "WHERE gaia_source_id IS NULL GROUP BY ALL ORDER BY n_objects DESC",
        None,
    ),
    (
        "Warnings raised (ZWARNING bits), over all spectra",
        "SELECT bit, name, count(*) FILTER (WHERE zwarning & (1 << bit) != 0) AS n "
        "FROM results, (VALUES (2, 'SMALL_DELTA_CHI2'), (4, 'MANY_OUTLIERS'), "
        "(8, 'LOW_CONFIDENCE'), (9, 'POLY_REFINED'), (12, 'ARM_MISMATCH')) AS b(bit, name) "
        "GROUP BY ALL ORDER BY bit",
        None,
    ),
    (
        "Real LAMOST spectra: our class and subclass against the LAMOST pipeline's",
        "SELECT s.obsid, s.lasp_class, s.lasp_subclass, r.class, r.subclass, "
        "round(r.rv_kms, 1) AS rv_kms, round(r.conf, 3) AS conf FROM spectra s "
        "JOIN results r USING (specid, source_sha256) WHERE s.survey = 'LAMOST' "
        "AND s.obsid < $sim_obsids ORDER BY s.snrg DESC LIMIT 10",
        {"sim_obsids": 10_000_000_000},
    ),
    (
        "Files the ingest refused, and why (nothing is lost: they wait in the quarantine)",
        "SELECT regexp_extract(path, '[^/]+$') AS file, reason FROM quarantine",
        None,
    ),
    (
        "The general catalogue (lrs): one row per spectrum, with identifiers and photometry",
        "SELECT designation, obsid, uid, gp_type, class, subclass, round(z, 5) AS z, "
        "round(gaia_g_mag, 2) AS g FROM lrs WHERE gaia_source_id IS NOT NULL "
        "ORDER BY snrg DESC LIMIT 5",
        None,
    ),
)


def _night(work: Path, seed: int, n: int, quiet: bool) -> Path:
    from lamostdb.sim import simulate_night

    night = work / f"night-sim-{seed:05d}"
    if not (night / "truth.parquet").exists():
        print(f"simulating night {seed} ({n} spectra) into {night} ...")
        simulate_night(night, n=n, seed=seed, progress=not quiet)
    return night


def cmd_demo(args: argparse.Namespace) -> int:
    from lamostdb.cli.commands import print_frame

    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    shipped = Path(__file__).resolve().parents[1] / "data" / "spectra"
    nights = [_night(work, seed, args.n, args.quiet) for seed in DEMO_SEEDS]
    root = work / "catalog"
    with open_for_nightly(root) as cat:  # the real spectra first; classified with night 1
        rep = ingest(cat, [shipped], progress=not args.quiet)
    print(
        f"\n== shipped real LAMOST/SDSS spectra: {rep.n_ingested} new, "
        f"{rep.n_quarantined} quarantined"
    )
    for night in nights:
        print(f"\n== lamostdb nightly {root} {night} --refcat-from-night")
        summary = run_nightly(
            root, night, NightlyOptions(refcat_from_night=True, progress=not args.quiet)
        )
        print(format_summary(summary))
    with open_catalog(root) as cat:
        for title, q, params in QUERIES:
            print(f"\n-- {title}\n{q}")
            print_frame(cat.sql(q, params), max_rows=20)
        print("\n-- Cone search: 10 arcmin around LAMOST J220848.54-020324.3 (obsid 101001)")
        print_frame(
            cat.cone(332.202274, -2.056767, 600).select(
                "specid", "obsid", "lasp_class", "lasp_subclass", "sep_arcsec"
            )
        )
    print(f"\ncatalogue: {root}")
    print(f'  lamostdb sql {root} "SELECT * FROM mec WHERE n_epochs >= 3 LIMIT 5"')
    print(f"  lamostdb plot {root} OBSID              # spectrum, model, residuals -> PNG")
    print(f"  lamostdb validate {root} --truth {nights[0] / 'truth.parquet'} --out report")
    return 0
