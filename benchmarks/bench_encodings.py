"""Which Parquet encoding for the spectra table? Size and speed of the candidates.

Usage::

    python benchmarks/bench_encodings.py [--n 3000]

Builds the ``spectra`` Arrow table of a simulated night (plus the shipped real LAMOST files)
and writes it with each candidate; prints bytes relative to the FITS input, write and full
read times (median of 3). The choice in ``lamostdb/io/parquet.py`` cites this output.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

BSS = ["flux.list.element", "ivar.list.element", "wavelength.list.element"]
CANDIDATES: dict[str, dict[str, object]] = {
    "snappy": {"compression": "snappy"},
    "zstd-1": {"compression": "zstd", "compression_level": 1},
    "zstd-3": {"compression": "zstd", "compression_level": 3},
    "zstd-9": {"compression": "zstd", "compression_level": 9},
    "zstd-3 + byte_stream_split": {
        "compression": "zstd",
        "compression_level": 3,
        "use_byte_stream_split": BSS,
    },
    "zstd-1 + byte_stream_split": {
        "compression": "zstd",
        "compression_level": 1,
        "use_byte_stream_split": BSS,
    },
    "zstd-9 + byte_stream_split": {
        "compression": "zstd",
        "compression_level": 9,
        "use_byte_stream_split": BSS,
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()

    from lamostdb.ingest.table import records_to_table
    from lamostdb.io import read_spectrum
    from lamostdb.sim import simulate_night

    work = Path(tempfile.mkdtemp(prefix="bench_enc_"))
    simulate_night(work / "night", n=args.n, seed=11)
    shipped = Path(__file__).resolve().parents[1] / "lamostdb" / "data" / "spectra"
    for label, files in (
        ("simulated", sorted((work / "night" / "spectra").glob("*.fits"))),
        ("real LAMOST (shipped)", [p for p in sorted(shipped.rglob("spec-*.fits*"))]),
    ):
        fits_bytes = sum(f.stat().st_size for f in files)
        records = [read_spectrum(f) for f in files]
        table = records_to_table(records, ingest_run="bench")
        print(
            f"\n{label}: {len(files)} files, {fits_bytes / 1e6:.1f} MB of FITS "
            f"(gzipped files count compressed)"
        )
        print(f"{'encoding':30s} {'MB':>8s} {'/FITS':>7s} {'write s':>8s} {'read s':>8s}")
        for name, opts in CANDIDATES.items():
            writes, reads, size = [], [], 0
            for _ in range(3):
                buf = io.BytesIO()
                t0 = time.perf_counter()
                pq.write_table(table, buf, row_group_size=512, use_dictionary=False, **opts)  # type: ignore[arg-type]
                writes.append(time.perf_counter() - t0)
                size = buf.tell()
                t0 = time.perf_counter()
                pq.read_table(io.BytesIO(buf.getvalue()))
                reads.append(time.perf_counter() - t0)
            print(
                f"{name:30s} {size / 1e6:8.2f} {size / fits_bytes:7.3f} "
                f"{statistics.median(writes):8.3f} {statistics.median(reads):8.3f}"
            )


if __name__ == "__main__":
    main()
