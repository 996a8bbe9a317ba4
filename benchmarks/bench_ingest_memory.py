"""Peak memory of the ingest on hostile inputs: a gzip bomb and a sparse 3 GiB file.

Writes both (plus one good spectrum) into a temporary folder and ingests them in a
child process, then prints the quarantine reasons, the workers' peak RSS that the
ingest reports, and the child's peak RSS as the kernel saw it (``VmHWM``).
Before issue 11 the bomb took a worker to 2.4 GB and the sparse file to 3.4 GB.

Usage: ``python benchmarks/bench_ingest_memory.py [--workers N] [--bomb-gib G]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from astropy.io import fits

GOOD = (
    Path(__file__).resolve().parents[1]
    / "lamostdb"
    / "data"
    / "spectra"
    / "spectraml"
    / "spec-55919-B5591903_sp01-005.fits"
)
_MEMBER = 64 << 20


def write_gzip_bomb(path: Path, gib: float = 1.0) -> int:
    """A FITS-looking gzip stream of ``gib`` GiB of zeros (about 1 MB per GiB); returns its size.

    Built from repeated gzip members (a valid multi-member gzip file), so it takes
    well under a second to write.
    """
    head = fits.PrimaryHDU().header.tostring().encode()
    first = gzip.compress(head + b"\0" * (_MEMBER - len(head)), compresslevel=9, mtime=0)
    rest = gzip.compress(b"\0" * _MEMBER, compresslevel=9, mtime=0)
    n = max(1, int(gib * (1 << 30) // _MEMBER))
    with open(path, "wb") as fh:
        fh.write(first)
        for _ in range(n - 1):
            fh.write(rest)
    return path.stat().st_size


def write_sparse(path: Path, size: int = 3 << 30) -> None:
    """A sparse file of ``size`` bytes that starts with a FITS header (no disk used)."""
    head = fits.PrimaryHDU().header.tostring().encode()
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(size)


_CHILD = """
import json, sys
from lamostdb.ingest.stage import _peak_rss_mb, ingest
from lamostdb.catalog.store import Catalog
with Catalog.create(sys.argv[1]) as cat:
    rep = ingest(cat, [sys.argv[2]], workers=int(sys.argv[3]), chunk_size=1, progress=False)
print(json.dumps({"quarantined": rep.quarantined, "n_ingested": rep.n_ingested,
                  "peak_worker_rss_mb": rep.peak_worker_rss_mb,
                  "child_peak_rss_mb": _peak_rss_mb()}))
"""


def measure(folder: Path, workers: int) -> dict[str, object]:
    """Ingest ``folder`` in a child process: its report, and peak RSS (MB) as the kernel saw it.

    ``peak_worker_rss_mb``: the largest peak RSS (``VmHWM``) of the reading processes, as
    the ingest reports it (forkserver workers are not the child's children, so they
    report themselves); ``child_peak_rss_mb``: the child process itself (with one worker
    it does the reading). ``ru_maxrss`` is not used: it survives ``exec``, so a child of
    a big process (pytest) would report its parent's size.
    """
    cat = folder.parent / "cat"
    shutil.rmtree(cat, ignore_errors=True)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(cat), str(folder), str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bomb-gib", type=float, default=2.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        night = Path(tmp) / "night"
        night.mkdir()
        size = write_gzip_bomb(night / "spec-bomb.fits.gz", args.bomb_gib)
        write_sparse(night / "spec-sparse.fits")
        shutil.copyfile(GOOD, night / GOOD.name)
        print(
            f"gzip bomb: {size / 1e6:.2f} MB expanding to {args.bomb_gib:g} GiB; "
            "sparse file: 3 GiB; one good spectrum"
        )
        res = measure(night, args.workers)
    for path, reason in res["quarantined"]:  # type: ignore[union-attr]
        print(f"quarantined {Path(path).name}: {reason}")
    print(
        f"ingested {res['n_ingested']} with {args.workers} worker(s); peak RSS: reported by "
        f"the ingest workers {res['peak_worker_rss_mb']:.0f} MB, ingest process "
        f"{res['child_peak_rss_mb']:.0f} MB; {res['seconds']} s"
    )


if __name__ == "__main__":
    main()
