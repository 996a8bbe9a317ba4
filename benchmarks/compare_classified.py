"""Compare ``classify_arrays`` outputs of two code versions on the same batches.

Usage::

    python benchmarks/compare_classified.py dump OUT.npz [--n 320] [--seed 21] [--no-real]
        [--threads 1]
    python benchmarks/compare_classified.py compare A.npz B.npz

``dump`` simulates a night (``lamostdb.sim``) and reads the real spectra of ../shared
(``validate_engine.load_real``), classifies them in fixed batches of 32 with one BLAS thread
(``--threads``: another count changes the answers at rounding level), and saves every field
of the ``Classified`` results. ``compare`` reports, per field, the number of differing
entries (strings, integers, booleans: exact) and the largest relative difference of the
floating-point fields (NaN where both are NaN counts as equal; the model's pixels relative
to the largest |model| of their spectrum).
Run ``dump`` with each version's interpreter (before/after a change), then ``compare``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 32
C_KMS = 299792.458
FIT_FIELDS = (
    "objclass",
    "template",
    "z",
    "z_err",
    "chi2",
    "dof",
    "rchi2",
    "delta_rchi2",
    "z_edge",
    "n_good",
    "coeffs",
)
TOP_FIELDS = (
    "subclass",
    "degenerate",
    "conf",
    "conf_blue",
    "conf_red",
    "refined",
    "zwarning",
    "model",
    "groups",
)


def _batches(args: argparse.Namespace) -> dict[str, list[tuple[Any, Any]]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from profile_pipeline import load_batches  # type: ignore[import-not-found]
    from validate_engine import load_real  # type: ignore[import-not-found]

    from lamostdb.match.engine import get_engine
    from lamostdb.sim import simulate_night

    out: dict[str, list[tuple[Any, Any]]] = {}
    night = Path(tempfile.mkdtemp(prefix="compare_classified_")) / "night"
    simulate_night(night, n=args.n, seed=args.seed)
    out["sim"] = load_batches(night)
    if not args.no_real:
        real = load_real(get_engine())
        f, w = real["flux"], real["ivar"]
        out["real"] = [(f[a : a + BATCH], w[a : a + BATCH]) for a in range(0, len(f), BATCH)]
    return out


def dump(args: argparse.Namespace) -> None:
    from threadpoolctl import threadpool_limits

    from lamostdb.match.engine import get_engine
    from lamostdb.match.pipeline import classify_arrays

    engine = get_engine()
    saved: dict[str, np.ndarray] = {}
    with threadpool_limits(limits=args.threads):
        for name, batches in _batches(args).items():
            parts: dict[str, list[np.ndarray]] = {}
            for flux, ivar in batches:
                c = classify_arrays(flux, ivar, engine=engine)
                for k in FIT_FIELDS:
                    parts.setdefault(k, []).append(np.asarray(getattr(c.fit, k)))
                for k in TOP_FIELDS:
                    parts.setdefault(k, []).append(np.asarray(getattr(c, k)))
            for k, v in parts.items():
                arr = np.concatenate(v)
                saved[f"{name}/{k}"] = arr.astype(str) if arr.dtype.kind in "UO" else arr
            print(f"{name}: {sum(len(b[0]) for b in batches)} spectra")
    np.savez_compressed(args.out, **saved)


def compare(args: argparse.Namespace) -> int:
    a, b = np.load(args.a), np.load(args.b)
    bad = 0
    for k in sorted(a.files):
        x, y = a[k], b[k]
        if x.shape != y.shape:
            print(f"{k:24s} SHAPE {x.shape} != {y.shape}")
            bad += 1
            continue
        if x.dtype.kind in "fc":
            both_nan = np.isnan(x) & np.isnan(y)
            with np.errstate(invalid="ignore"):
                same = (x == y) | both_nan
                # the model's pixels relative to its row's scale (values cross zero)
                scale = (
                    np.nanmax(np.abs(x), axis=1, keepdims=True)
                    if k.endswith("/model")
                    else np.maximum(np.abs(x), np.abs(y))
                )
                rel = np.abs(x - y) / np.maximum(scale, 1e-300)
            rel = np.where(same, 0.0, rel)
            worst = float(np.nanmax(np.where(np.isnan(rel), np.inf, rel))) if rel.size else 0.0
            n_diff = int((~same).sum())
            flag = "" if worst <= args.rtol else "  <-- over rtol"
            bad += worst > args.rtol
            print(f"{k:24s} float  differ {n_diff:7d}/{x.size:<8d} max rel {worst:.2e}{flag}")
        else:
            n_diff = int((x != y).sum())
            bad += n_diff > 0
            print(f"{k:24s} exact  differ {n_diff:7d}/{x.size}{'  <--' if n_diff else ''}")
    for name in sorted({k.split("/")[0] for k in a.files}):
        za, zb, err = a[f"{name}/z"], b[f"{name}/z"], a[f"{name}/z_err"]
        dz = np.abs(za - zb)
        with np.errstate(invalid="ignore", divide="ignore"):
            pull = np.where(err > 0, dz / err, np.nan)
        print(
            f"{name}: max |dz| {np.nanmax(dz) * C_KMS:.2e} km/s, "
            f"max |dz| / z_err {np.nanmax(pull):.2e}"
        )
    print("SAME" if not bad else f"{bad} fields differ")
    return int(bad > 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--n", type=int, default=320)
    d.add_argument("--seed", type=int, default=21)
    d.add_argument("--no-real", action="store_true")
    d.add_argument("--threads", type=int, default=1, help="BLAS threads (rounding changes)")
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--rtol", type=float, default=1e-9)
    args = ap.parse_args()
    if args.cmd == "dump":
        dump(args)
    else:
        raise SystemExit(compare(args))


if __name__ == "__main__":
    main()
