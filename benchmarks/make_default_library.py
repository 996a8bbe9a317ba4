"""Make the shipped default star library ``lamostdb/templates/data/lamost_stars.fits`` and
the typing table ``lamostdb/templates/data/lamost_typing.fits``.

Usage::

    python benchmarks/make_default_library.py [--out FILE] [--typing-out FILE]
                                              [--exclude-obsids FILE]

Members (each chosen by measurement with ``benchmarks/validate_engine.py``):

- A, F and G stars: stacks of real LAMOST spectra per LAMOST subclass (every labelled
  LAMOST star of ``../shared/data/spectra/lamost`` with S/N_g >= 10, most of them from
  ``dr10_afg``; ``lamostdb templates build`` kernel);
- O, B and L dwarfs, K and M dwarfs at solar [Fe/H]: Kesseli et al. (2017) empirical
  SDSS/BOSS templates (MIT);
- giants of K and M, white dwarfs, carbon stars: SDSS spEigenStar (the former default).

Then every template of a normal type (O-L) is put on LAMOST's scale: the same labelled
spectra are fitted with the assembled library, and a template that is the best fit of at
least ``MIN_WINS`` of them (S/N_g >= 10) takes the median of their LAMOST subclasses
(measured by 5-fold cross-validation, ``validate_engine.py``: same letter 78.9 % -> 81.2 %,
within two steps 69.8 % -> 72.0 % on a development run). WD and carbon templates keep theirs.

The typing table holds the line indices (``lamostdb.match.indices``) of every labelled LAMOST
star at its LAMOST redshift, with LAMOST's subclass: the engine reads a star's subclass from
its nearest neighbours there (``lamostdb.match.spectype``).

``--exclude-obsids`` leaves the given LAMOST obsids out (5-fold cross-validation in
``validate_engine.py --cv`` uses the same code through :func:`build_library_sets`).
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from lamostdb.templates import load_default_templates
from lamostdb.templates.build import BuildConfig, build_from_records
from lamostdb.templates.kesseli import load_kesseli_dir
from lamostdb.templates.libfile import TemplateStats, write_library
from lamostdb.templates.library import TemplateSet
from lamostdb.templates.subclass import (
    load_subclass_table,
    parse_subclass,
    spectral_letter,
    spell_subclass,
)
from lamostdb.templates.typeset import TypingSet, write_typing_set

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
KESSELI_DIR = SHARED / "templates" / "kesseli2017"
DATA = Path(__file__).resolve().parents[1] / "lamostdb" / "templates" / "data"
OUT = DATA / "lamost_stars.fits"
TYPING_OUT = DATA / "lamost_typing.fits"
BUILT_LETTERS = ("A", "F", "G")
#: Degree of the per-pixel polynomial in subclass ordinal through the stacks (0: none).


def lamost_star_files() -> list[Path]:
    """Every LAMOST file of ``../shared`` (all folders), sorted."""
    root = SHARED / "spectra" / "lamost"
    return sorted(p for g in ("*.fits", "*.fits.gz") for p in root.rglob(g))


def read_lamost_stars(files: Iterable[Path] | None = None, exclude: Iterable[int] = ()) -> list:
    """Readable LAMOST records labelled STAR with a subclass (unreadable files are skipped)."""
    from lamostdb.io import SpectrumReadError, read_spectrum

    skip = set(exclude)
    recs = []
    for f in lamost_star_files() if files is None else files:
        try:
            r = read_spectrum(f)
        except SpectrumReadError:
            continue
        if (
            (r.lasp_class or "").strip().upper() == "STAR"
            and r.lasp_subclass
            and r.obsid not in skip
        ):
            recs.append(r)
    return recs


def subset(ts: TemplateSet, keep: np.ndarray, source: str) -> TemplateSet:
    idx = np.flatnonzero(keep)
    subs = ts.subclasses or tuple(ts.names)
    return TemplateSet(
        "STAR",
        "single",
        tuple(ts.names[i] for i in idx),
        ts.loglam0,
        ts.dloglam,
        ts.vectors[idx],
        source,
        subclasses=tuple(subs[i] for i in idx),
        notes=tuple((ts.notes or ("",) * len(ts.names))[i] for i in idx),
    )


def kesseli_members() -> TemplateSet:
    ts = load_kesseli_dir(KESSELI_DIR).templates
    assert ts.subclasses is not None
    keep = np.array(
        [
            (spectral_letter(s) in ("O", "B", "L"))
            or (spectral_letter(s) in ("K", "M") and "_+0.0_" in n)
            for n, s in zip(ts.names, ts.subclasses, strict=True)
        ]
    )
    return subset(ts, keep, "Kesseli et al. 2017 (PyHammer), MIT")


def sdss_members() -> TemplateSet:
    ts = load_default_templates()["STAR"]
    rows = {r.template_name: r for r in load_subclass_table()}
    subs = tuple(rows[n].subclass for n in ts.names)
    keep = np.array(
        [
            rows[n].letter in ("WD", "Carbon")
            or (rows[n].letter in ("K", "M") and "I" in rows[n].luminosity_class)
            for n in ts.names
        ]
    )
    ts = TemplateSet(
        "STAR",
        "single",
        ts.names,
        ts.loglam0,
        ts.dloglam,
        ts.vectors,
        ts.source,
        subclasses=subs,
        notes=tuple("SDSS spEigenStar-55734" for _ in ts.names),
    )
    return subset(ts, keep, "SDSS spEigenStar-55734 (idlspec2d), SDSS public data")


def on_lamost_scale(
    sets: list[TemplateSet], records: list, *, min_wins: int = 3, min_snr: float = 10.0
) -> tuple[TemplateSet, int]:
    """The sets as one library whose normal-type templates carry LAMOST's subclass scale.

    Each template that is the best star fit of at least ``min_wins`` of the labelled
    ``records`` (S/N_g >= ``min_snr``) takes the median ordinal of their LAMOST subclasses.
    Returns the library and the number of templates relabelled.
    """
    import tempfile

    from lamostdb.match.engine import prepare_engine
    from lamostdb.match.fit import fit_spectra, weighted_inputs
    from lamostdb.templates.grid import batch_to_working_grid
    from lamostdb.templates.libfile import load_library

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lib.fits"
        write_library(path, sets, name="scale", provenance="relabelling")
        lib = load_library(path)
    templates = load_default_templates()
    templates["STAR"] = lib
    engine = prepare_engine(templates)
    use = [
        r
        for r in records
        if r.snrg is not None
        and r.snrg >= min_snr
        and parse_subclass(r.lasp_subclass)[1] is not None
    ]
    wins: dict[int, list[int]] = {}
    for a in range(0, len(use), 64):
        batch = use[a : a + 64]
        flux, ivar = batch_to_working_grid(batch, grid=engine.grid)
        f, w = weighted_inputs(engine, flux, ivar)
        fit = fit_spectra(f, w, engine=engine)
        first_star = np.argmax(fit.objclass == 0, axis=1)
        best = fit.template[np.arange(len(batch)), first_star]
        for r, t in zip(batch, best, strict=True):
            wins.setdefault(int(t), []).append(int(parse_subclass(r.lasp_subclass)[1]))
    assert lib.subclasses is not None and lib.notes is not None
    subs, notes = list(lib.subclasses), list(lib.notes)
    changed = 0
    for t, got in wins.items():
        own = parse_subclass(subs[t])[1]
        if len(got) < min_wins or own is None or own >= 100:
            continue
        new = spell_subclass(float(np.median(got)))
        if new != subs[t]:
            notes[t] += f"; on LAMOST's scale {new} (was {subs[t]}; median of {len(got)} fits)"
            subs[t] = new
            changed += 1
    return replace(lib, subclasses=tuple(subs), notes=tuple(notes)), changed


def build_library_sets(records: list) -> tuple[list[TemplateSet], list, list[str], str]:
    """The member sets (on LAMOST's scale), their stats and licences, and a provenance."""
    result = build_from_records(records, config=BuildConfig(min_spectra=5, min_snr=10.0))
    built = result.template_set(source="LAMOST A, F and G stacks (lamostdb templates build)")
    assert built.subclasses is not None
    keep = np.array([spectral_letter(s) in BUILT_LETTERS for s in built.subclasses])
    built = subset(built, keep, built.source)
    stats_built = [
        TemplateStats(t.n_spectra, t.median_snr, t.scatter)
        for t in result.templates
        if spectral_letter(t.label) in BUILT_LETTERS
    ]
    kes = kesseli_members()
    sdss = sdss_members()
    sets = [built, kes, sdss]
    stats = [stats_built, [None] * len(kes.names), [None] * len(sdss.names)]
    licences = ["LAMOST public data (acknowledge LAMOST)", "MIT", "SDSS public data"]
    lib, changed = on_lamost_scale(sets, records)
    assert lib.subclasses is not None and lib.notes is not None
    start, scaled = 0, []
    for ts in sets:  # the library file keeps each member's source and licence
        n = len(ts.names)
        scaled.append(
            replace(
                ts, subclasses=lib.subclasses[start : start + n], notes=lib.notes[start : start + n]
            )
        )
        start += n
    reported = "; ".join(f"{r.label}: {r.reason}" for r in result.reported)
    prov = (
        f"lamostdb default star library, made {dt.date.today().isoformat()} by "
        f"benchmarks/make_default_library.py: {len(built.names)} LAMOST A/F/G stacks from "
        f"{len(records)} labelled LAMOST stars (labels not stacked: {reported or 'none'}); "
        f"{len(kes.names)} Kesseli 2017 O/B/L and solar-[Fe/H] K/M dwarfs; "
        f"{len(sdss.names)} SDSS spEigenStar K/M giants, white dwarfs and carbon stars; "
        f"{changed} templates relabelled onto LAMOST's subclass scale."
    )
    return scaled, stats, licences, prov


def build_typing_set(records: list) -> TypingSet:
    """Line indices of the labelled LAMOST stars at their LAMOST redshift (the typing table).

    Every record with a normal-type subclass (O-L with a subtype) and a redshift is used,
    whatever its S/N: the typing then learns how LAMOST labels noisy spectra too.
    """
    from lamostdb.match.engine import SKY_TELLURIC_MASK_ANGSTROM, mask_weight
    from lamostdb.match.indices import INDEX_NAMES, line_indices
    from lamostdb.templates.grid import WORKING_GRID, batch_to_working_grid

    use = [
        r
        for r in records
        if r.lasp_z is not None and (parse_subclass(r.lasp_subclass)[1] or 999) < 100
    ]
    pixel_weight = mask_weight(WORKING_GRID, SKY_TELLURIC_MASK_ANGSTROM)
    parts = []
    for a in range(0, len(use), 256):  # ~16 MB of pixels a chunk
        flux, ivar = batch_to_working_grid(use[a : a + 256], grid=WORKING_GRID)
        good = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
        w = np.where(good, ivar, 0.0) * pixel_weight
        z = np.array([r.lasp_z for r in use[a : a + 256]], dtype=np.float64)
        parts.append(line_indices(WORKING_GRID.wave_angstrom, np.where(good, flux, 0.0), w, z))
    prov = (
        f"lamostdb typing table, made {dt.date.today().isoformat()} by "
        f"benchmarks/make_default_library.py: line indices (lamostdb.match.indices) of "
        f"{len(use)} labelled LAMOST stars of ../shared/data/spectra/lamost at their "
        "LAMOST redshift, with LAMOST's SUBCLASS (LAMOST public data; acknowledge LAMOST)."
    )
    return TypingSet(
        index_names=INDEX_NAMES,
        indices=np.concatenate(parts) if parts else np.zeros((0, len(INDEX_NAMES))),
        labels=tuple(str(r.lasp_subclass).strip() for r in use),
        ordinals=np.array([parse_subclass(r.lasp_subclass)[1] for r in use], dtype=np.int64),
        obsids=np.array([r.obsid if r.obsid is not None else -1 for r in use], dtype=np.int64),
        snrg=np.array([np.nan if r.snrg is None else r.snrg for r in use], dtype=np.float64),
        provenance=prov,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--typing-out", type=Path, default=TYPING_OUT)
    ap.add_argument(
        "--exclude-obsids", type=Path, help="text file of LAMOST obsids to leave out of the stacks"
    )
    args = ap.parse_args()
    exclude = []
    if args.exclude_obsids:
        exclude = [int(x) for x in args.exclude_obsids.read_text().split()]
    records = read_lamost_stars(exclude=exclude)
    sets, stats, licences, prov = build_library_sets(records)
    write_library(
        args.out,
        sets,
        name="lamostdb-default-stars",
        provenance=prov,
        stats=stats,
        licences=licences,
    )
    print(prov)
    print(f"wrote {args.out} ({sum(len(s.names) for s in sets)} templates)")
    typing = build_typing_set(records)
    write_typing_set(args.typing_out, typing)
    print(typing.provenance)
    print(
        f"wrote {args.typing_out} ({len(typing.labels)} stars x {len(typing.index_names)} indices)"
    )


if __name__ == "__main__":
    main()
