"""Make the shipped default star library ``lamostdb/templates/data/lamost_stars.fits``.

Usage::

    python benchmarks/make_default_library.py [--out FILE] [--exclude-obsids FILE]

Members (each chosen by measurement with ``benchmarks/validate_engine.py``):

- A, F and G stars: stacks of real LAMOST DR10 spectra per LAMOST subclass
  (``../shared/data/spectra/lamost/dr10_afg``, ``lamostdb templates build`` kernel), so that
  these subclasses are on LAMOST's own scale;
- O, B and L dwarfs, K and M dwarfs at solar [Fe/H]: Kesseli et al. (2017) empirical
  SDSS/BOSS templates (MIT);
- giants of K and M, white dwarfs, carbon stars: SDSS spEigenStar (the former default).

``--exclude-obsids`` leaves the given LAMOST obsids out of the stacks (5-fold
cross-validation in ``validate_engine.py --cv`` uses the same code through
:func:`build_library_sets`).
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from lamostdb.templates import load_default_templates
from lamostdb.templates.build import BuildConfig, build_from_records, smooth_sequence
from lamostdb.templates.kesseli import load_kesseli_dir
from lamostdb.templates.library import TemplateSet
from lamostdb.templates.libfile import TemplateStats, write_library
from lamostdb.templates.subclass import load_subclass_table, spectral_letter

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
AFG_DIR = SHARED / "spectra" / "lamost" / "dr10_afg"
KESSELI_DIR = SHARED / "templates" / "kesseli2017"
OUT = Path(__file__).resolve().parents[1] / "lamostdb" / "templates" / "data" / "lamost_stars.fits"
BUILT_LETTERS = ("A", "F", "G")
#: Degree of the per-pixel polynomial in subclass ordinal through the stacks (0: none).
SMOOTH_DEGREE = 0  # 4 measured worse: letter 75.8 % vs 78.9 %, within 2 steps 66.9 % vs 69.8 % (5-fold CV)


def read_afg(exclude: Iterable[int] = ()) -> list:
    from lamostdb.io import read_spectrum

    skip = set(exclude)
    recs = []
    for f in sorted(AFG_DIR.glob("*.fits.gz")):
        r = read_spectrum(f)
        if r.obsid not in skip:
            recs.append(r)
    return recs


def subset(ts: TemplateSet, keep: np.ndarray, source: str) -> TemplateSet:
    idx = np.flatnonzero(keep)
    subs = ts.subclasses or tuple(ts.names)
    return TemplateSet("STAR", "single", tuple(ts.names[i] for i in idx), ts.loglam0, ts.dloglam,
                       ts.vectors[idx], source,
                       subclasses=tuple(subs[i] for i in idx),
                       notes=tuple((ts.notes or ("",) * len(ts.names))[i] for i in idx))


def kesseli_members() -> TemplateSet:
    ts = load_kesseli_dir(KESSELI_DIR).templates
    assert ts.subclasses is not None
    keep = np.array([(spectral_letter(s) in ("O", "B", "L"))
                     or (spectral_letter(s) in ("K", "M") and "_+0.0_" in n)
                     for n, s in zip(ts.names, ts.subclasses, strict=True)])
    return subset(ts, keep, "Kesseli et al. 2017 (PyHammer), MIT")


def sdss_members() -> TemplateSet:
    ts = load_default_templates()["STAR"]
    rows = {r.template_name: r for r in load_subclass_table()}
    subs = tuple(rows[n].subclass for n in ts.names)
    keep = np.array([rows[n].letter in ("WD", "Carbon")
                     or (rows[n].letter in ("K", "M") and "I" in rows[n].luminosity_class)
                     for n in ts.names])
    ts = TemplateSet("STAR", "single", ts.names, ts.loglam0, ts.dloglam, ts.vectors, ts.source,
                     subclasses=subs, notes=tuple("SDSS spEigenStar-55734" for _ in ts.names))
    return subset(ts, keep, "SDSS spEigenStar-55734 (idlspec2d), SDSS public data")


def build_library_sets(records: list, smooth_degree: int = SMOOTH_DEGREE
                       ) -> tuple[list[TemplateSet], list, list[str], str]:
    """The member sets, their stats and licences, and a provenance text."""
    result = build_from_records(records, config=BuildConfig(min_spectra=5, min_snr=10.0))
    if smooth_degree:
        result = smooth_sequence(result, degree=smooth_degree)
    built = result.template_set(source="LAMOST DR10 A/F/G stacks (lamostdb templates build)")
    assert built.subclasses is not None
    keep = np.array([spectral_letter(s) in BUILT_LETTERS for s in built.subclasses])
    built = subset(built, keep, built.source)
    stats_built = [TemplateStats(t.n_spectra, t.median_snr, t.scatter)
                   for t in result.templates if spectral_letter(t.label) in BUILT_LETTERS]
    kes = kesseli_members()
    sdss = sdss_members()
    sets = [built, kes, sdss]
    stats = [stats_built, [None] * len(kes.names), [None] * len(sdss.names)]
    licences = ["LAMOST public data (acknowledge LAMOST)", "MIT", "SDSS public data"]
    reported = "; ".join(f"{r.label}: {r.reason}" for r in result.reported)
    prov = (f"lamostdb default star library, made {dt.date.today().isoformat()} by "
            f"benchmarks/make_default_library.py: {len(built.names)} LAMOST DR10 A/F/G stacks from "
            f"{len(records)} spectra (labels not stacked: {reported or 'none'}); "
            f"{len(kes.names)} Kesseli 2017 O/B/L and solar-[Fe/H] K/M dwarfs; "
            f"{len(sdss.names)} SDSS spEigenStar K/M giants, white dwarfs and carbon stars.")
    return sets, stats, licences, prov


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--exclude-obsids", type=Path,
                    help="text file of LAMOST obsids to leave out of the stacks")
    args = ap.parse_args()
    exclude = []
    if args.exclude_obsids:
        exclude = [int(x) for x in args.exclude_obsids.read_text().split()]
    sets, stats, licences, prov = build_library_sets(read_afg(exclude))
    write_library(args.out, sets, name="lamostdb-default-stars", provenance=prov, stats=stats,
                  licences=licences)
    print(prov)
    print(f"wrote {args.out} ({sum(len(s.names) for s in sets)} templates)")


if __name__ == "__main__":
    main()
