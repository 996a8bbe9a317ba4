"""The pruned search against the exhaustive one: same answers, and how much faster.

Usage::

    python benchmarks/validate_search.py [--n 5000] [--seed 21] [--no-real] [--fit-only]

Classifies a simulated night (``--n`` spectra, ``lamostdb.sim``) and every readable real
spectrum of ../shared (LAMOST and SDSS) twice, with the default pruned search and with
``SearchConfig(exhaustive=True)``, in the same batches of 32 on one BLAS thread (the engine's
answers move at rounding level with the thread count and the batch's other spectra, so both
are held fixed). Prints, per set, the agreement of the best answers:

- class: same class (target >= 99.9 %);
- subclass +-1: stars whose subclass ordinals differ by at most one step (other classes:
  the same subclass string);
- z within z_err: |z_pruned - z_exhaustive| <= the exhaustive answer's z_err (the pruned
  one's where the exhaustive has none; equal to 1e-6 where neither has one);
- "all three" (target >= 99 %);

and the time of each search (medians of interleaved batches) with their ratio. Every
disagreement is listed. ``--fit-only`` compares ``fit_spectra``'s best candidates instead
of the whole method (faster, for tuning the search's knobs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH = 32


def _answers(engine: Any, flux: np.ndarray, ivar: np.ndarray, ft: Any, fit_only: bool) -> dict:
    from lamostdb.match.fit import CLASS_CODES, fit_spectra
    from lamostdb.match.pipeline import classify_arrays, template_subclasses

    if fit_only:
        fit = fit_spectra(flux, ivar, engine=engine)
        subs, _ = template_subclasses(engine)
        table = np.array([*subs, "Non"], dtype=object)
        sub = table[np.where(fit.template[:, 0] >= 0, fit.template[:, 0], len(subs))]
    else:
        out = classify_arrays(flux, ivar, engine=engine, fibertype=ft)
        fit = out.fit
        sub = out.subclass[:, 0]
    return {
        "class": np.array(CLASS_CODES)[fit.objclass[:, 0]],
        "subclass": np.asarray(sub, dtype=str),
        "z": fit.z[:, 0],
        "z_err": fit.z_err[:, 0],
        "rchi2": fit.rchi2[:, 0],
    }


def run_both(
    flux: np.ndarray,
    ivar: np.ndarray,
    ft: Any,
    *,
    fit_only: bool = False,
    label: str = "",
    knobs: dict[str, Any] | None = None,
    cache: Path | None = None,
) -> tuple[dict, dict, float, float]:
    """Pruned and exhaustive answers over the same batches; median seconds per batch.

    ``knobs`` override fields of the pruned search's ``SearchConfig``; ``cache`` is a file
    keeping the exhaustive answers and times (loaded instead of computed when it exists).
    """
    from threadpoolctl import threadpool_limits

    from lamostdb.match.config import SearchConfig
    from lamostdb.match.engine import get_engine

    base = get_engine()
    pruned = replace(base, search=replace(base.search, **(knobs or {})))
    exhaustive = replace(base, search=SearchConfig(exhaustive=True))
    cached = None
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            cached = {k: z[k] for k in z.files}
    parts_p: list[dict] = []
    parts_e: list[dict] = []
    t_p: list[float] = []
    t_e: list[float] = []
    n = flux.shape[0]
    ft = np.asarray(ft if ft is not None else [""] * n, dtype=object)
    t_start = time.perf_counter()
    with threadpool_limits(limits=1):
        for k, a in enumerate(range(0, n, BATCH)):
            sl = slice(a, a + BATCH)
            # alternate the order, so that a busy neighbour or a warm cache favours neither
            order = ("p", "e") if k % 2 == 0 else ("e", "p")
            for which in order:
                if which == "e" and cached is not None:
                    continue
                t0 = time.perf_counter()
                if which == "p":
                    parts_p.append(_answers(pruned, flux[sl], ivar[sl], ft[sl], fit_only))
                    t_p.append(time.perf_counter() - t0)
                else:
                    parts_e.append(_answers(exhaustive, flux[sl], ivar[sl], ft[sl], fit_only))
                    t_e.append(time.perf_counter() - t0)
            if k % 20 == 19:
                print(
                    f"  {label}: {a + BATCH}/{n} spectra [{time.perf_counter() - t_start:.0f} s]",
                    file=sys.stderr,
                )

    def cat(parts: list[dict]) -> dict:
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    if cached is not None:
        t_med = float(cached.pop("_t_median"))
        return cat(parts_p), cached, statistics.median(t_p), t_med
    answers = cat(parts_e)
    if cache is not None:
        np.savez(cache, _t_median=statistics.median(t_e), **answers)
    return cat(parts_p), answers, statistics.median(t_p), statistics.median(t_e)


def agreement(p: dict, e: dict) -> dict[str, np.ndarray]:
    """Per-spectrum booleans: same class, subclass +-1, z within z_err, all three."""
    from lamostdb.templates.subclass import subclass_ordinal

    same_class = p["class"] == e["class"]
    sub_ok = np.zeros(same_class.size, dtype=bool)
    for i, (a, b) in enumerate(zip(p["subclass"], e["subclass"], strict=True)):
        if p["class"][i] == "STAR" and e["class"][i] == "STAR":
            oa, ob = subclass_ordinal(a), subclass_ordinal(b)
            sub_ok[i] = a == b or (oa is not None and ob is not None and abs(oa - ob) <= 1)
        else:
            sub_ok[i] = a == b
    tol = np.where(np.isfinite(e["z_err"]) & (e["z_err"] > 0), e["z_err"], p["z_err"])
    tol = np.where(np.isfinite(tol) & (tol > 0), tol, 1e-6)
    with np.errstate(invalid="ignore"):
        z_ok = np.abs(p["z"] - e["z"]) <= tol
    z_ok |= np.isnan(p["z"]) & np.isnan(e["z"])
    return {
        "class": same_class,
        "subclass": same_class & sub_ok,
        "z": same_class & z_ok,
        "all": same_class & sub_ok & z_ok,
    }


def report(
    name: str, p: dict, e: dict, t_p: float, t_e: float, files: Any = None, max_list: int = 40
) -> dict[str, float]:
    ok = agreement(p, e)
    n = ok["class"].size
    print(f"\n== {name}: {n} spectra")
    figs = {}
    for key, goal in (("class", 99.9), ("subclass", 99.0), ("z", 99.0), ("all", 99.0)):
        k = int(ok[key].sum())
        figs[key] = 100.0 * k / max(n, 1)
        verdict = "MET" if figs[key] >= goal else "NOT MET"
        print(f"  {key:9s} {k:6d}/{n}  {figs[key]:7.3f} %  (target >= {goal} %)  {verdict}")
    print(
        f"  time per batch of {BATCH} (median): pruned {t_p * 1e3:.0f} ms, exhaustive "
        f"{t_e * 1e3:.0f} ms; exhaustive/pruned {t_e / t_p:.2f}x "
        f"({BATCH / t_p:.0f} vs {BATCH / t_e:.0f} spectra/s on one core)"
    )
    bad = np.flatnonzero(~ok["all"])
    if bad.size:
        print(f"  disagreements ({bad.size}, first {min(bad.size, max_list)}):")
        print("    # | pruned: class subclass z z_err rchi2 | exhaustive: the same")
    for i in bad[:max_list]:
        tag = files[i] if files is not None else str(i)
        print(
            f"    {tag} | {p['class'][i]} {p['subclass'][i]} {p['z'][i]:.5f} "
            f"{p['z_err'][i]:.1e} {p['rchi2'][i]:.4f} | {e['class'][i]} {e['subclass'][i]} "
            f"{e['z'][i]:.5f} {e['z_err'][i]:.1e} {e['rchi2'][i]:.4f}"
        )
    return figs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="spectra in the simulated night")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--no-real", action="store_true", help="skip the real spectra of ../shared")
    ap.add_argument("--no-sim", action="store_true", help="skip the simulated night")
    ap.add_argument("--fit-only", action="store_true", help="compare fit_spectra only")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="override a SearchConfig field of the pruned search (repeatable)",
    )
    ap.add_argument(
        "--cache",
        type=Path,
        help="folder keeping the exhaustive answers between runs (same sets, same batches)",
    )
    args = ap.parse_args()
    knobs: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if value in ("True", "False"):
            knobs[key] = value == "True"
        else:
            knobs[key] = float(value) if "." in value else int(value)
    if args.cache is not None:
        args.cache.mkdir(parents=True, exist_ok=True)

    def cache_file(name: str) -> Path | None:
        if args.cache is None:
            return None
        return args.cache / f"{name}_{'fit' if args.fit_only else 'all'}.npz"

    from validate_engine import _night_matrices, load_real  # type: ignore[import-not-found]

    from lamostdb.match.engine import get_engine
    from lamostdb.sim import simulate_night

    engine = get_engine()
    if not args.no_sim:
        with tempfile.TemporaryDirectory(prefix="validate_search_") as tmp:
            t0 = time.perf_counter()
            simulate_night(Path(tmp) / "night", n=args.n, seed=args.seed)
            truth, flux, ivar = _night_matrices(Path(tmp) / "night", engine)
            dt = time.perf_counter() - t0
            print(f"simulated night of {args.n} (seed {args.seed}) [{dt:.0f} s]")
        p, e, t_p, t_e = run_both(
            flux,
            ivar,
            truth["fiber_type"].to_numpy(),
            fit_only=args.fit_only,
            label="sim",
            knobs=knobs,
            cache=cache_file(f"sim{args.n}_{args.seed}"),
        )
        report(f"simulated night (seed {args.seed})", p, e, t_p, t_e)
    if not args.no_real:
        d = load_real(engine)
        p, e, t_p, t_e = run_both(
            d["flux"],
            d["ivar"],
            d["fibertype"],
            fit_only=args.fit_only,
            label="real",
            knobs=knobs,
            cache=cache_file("real"),
        )
        report(
            f"real spectra of ../shared ({int((d['survey'] == 'LAMOST').sum())} LAMOST, "
            f"{int((d['survey'] == 'SDSS').sum())} SDSS)",
            p,
            e,
            t_p,
            t_e,
            files=d["file"],
        )


if __name__ == "__main__":
    main()
