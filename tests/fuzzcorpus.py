"""A seeded corpus of damaged spectrum files, made from good ones (a test helper, not a test).

:func:`build_corpus` writes, next to the good files it is given, damaged copies of
every kind issue 11 lists: structural nonsense (NAXIS, BITPIX), header integers beyond
their columns, unsafe PLANIDs, bit flips in header and data, NaN/Inf/negative pixels,
1- and 10-pixel spectra, bad or short wavelength/IVAR/ANDMASK columns, a duplicated
COADD table, truncated, empty, random and gzip-damaged files, a small gzip bomb, a
sparse oversized file, and file names that are not UTF-8. Each file comes with what
the ingest must do with it: ``quarantine`` (with a reason naming ``mention``), or
``either`` (quarantined, or stored and then passing validation), or ``good``.
The same seed gives the same files.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

BLOCK = 2880
CARD = 80


@dataclass(frozen=True)
class Case:
    """One corpus file and what the ingest must do with it."""

    path: Path
    kind: str
    expect: str  # "good", "quarantine" or "either"
    mention: str | None = None  # text the quarantine reason must contain (case-insensitive)


def fits_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def _header_end(data: bytes, start: int = 0) -> int:
    """Offset of the END card of the header starting at ``start``."""
    pos = start
    while True:
        block = data[pos : pos + BLOCK]
        for j in range(0, BLOCK, CARD):
            if block[j : j + 8] == b"END     ":
                return pos + j
        pos += BLOCK


def set_card(
    data: bytes, key: str, value: str, *, hdu_start: int = 0, insert: bool = False
) -> bytes | None:
    """``data`` with card ``key`` of the header at ``hdu_start`` set to the raw ``value``.

    ``value`` is written verbatim in columns 11-30 (right-aligned, like a number).
    Absent key: inserted before END when ``insert`` and there is room, else None.
    """
    end = _header_end(data, hdu_start)
    card = f"{key:<8}= {value:>20}".ljust(CARD).encode("latin-1")[:CARD]
    for pos in range(hdu_start, end, CARD):
        if data[pos : pos + 8] == f"{key:<8}".encode():
            return data[:pos] + card + data[pos + CARD :]
    if not insert or (end + CARD) % BLOCK == 0:
        return None
    return data[:end] + card + b"END".ljust(CARD) + data[end + 2 * CARD :]


def _hdul(data: bytes) -> fits.HDUList:
    return fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)


def _write(hdul: fits.HDUList) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdul.writeto(buf, output_verify="silentfix", checksum=False)
    return buf.getvalue()


def _is_coadd(data: bytes) -> bool:
    return b"XTENSION" in data[BLOCK : BLOCK * 40]


def pixels_edited(
    data: bytes, edit: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray] | None]
) -> bytes | None:
    """Apply ``edit`` to the pixel arrays (flux, ivar, wave, andmask, ormask) and rewrite.

    ``edit`` gets copies and returns the arrays to write (any lengths for a COADD table;
    one common length for an image), or None to skip this base file.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdul = _hdul(data)
        if _is_coadd(data):
            names = {n.upper(): n for n in hdul[1].columns.names}
            row = {
                k.lower(): np.array(hdul[1].data[names[k]][0], dtype=np.float32)
                for k in ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK")
            }
            row["wave"] = row.pop("wavelength")
            new = edit(row)
            if new is None:
                return None
            cols = [
                fits.Column(name=k, format=f"{len(new[v])}E", array=[new[v]])
                for k, v in (
                    ("FLUX", "flux"),
                    ("IVAR", "ivar"),
                    ("WAVELENGTH", "wave"),
                    ("ANDMASK", "andmask"),
                    ("ORMASK", "ormask"),
                )
            ]
            table = fits.BinTableHDU.from_columns(cols, name="COADD")
            return _write(fits.HDUList([hdul[0], table]))
        img = np.array(hdul[0].data, dtype=np.float32)
        row = dict(zip(("flux", "ivar", "wave", "andmask", "ormask"), img[:5].copy(), strict=True))
        new = edit(row)
        if new is None:
            return None
        hdul[0].data = np.stack(
            [new[k] for k in ("flux", "ivar", "wave", "andmask", "ormask")]
        ).astype(np.float32)
        return _write(hdul)


def _some(rng: np.random.Generator, n: int, frac: float) -> np.ndarray:
    return rng.choice(n, size=max(1, int(frac * n)), replace=False)


def _pixel_kinds(
    rng: np.random.Generator,
) -> list[
    tuple[str, str, str | None, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray] | None]]
]:
    """(kind, expect, mention, edit) of every pixel-level damage."""

    def at(key: str, frac: float, value: float) -> Callable[..., dict[str, np.ndarray]]:
        def edit(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            a[key][_some(rng, a[key].size, frac)] = value
            return a

        return edit

    def whole(key: str, value: float) -> Callable[..., dict[str, np.ndarray]]:
        def edit(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            a[key][:] = value
            return a

        return edit

    def shorten(n: int) -> Callable[..., dict[str, np.ndarray]]:
        return lambda a: {k: v[:n] for k, v in a.items()}

    def short(key: str) -> Callable[..., dict[str, np.ndarray] | None]:
        def edit(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            a[key] = a[key][:-7]
            return a

        return edit

    def reverse_wave(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        a["wave"] = a["wave"][::-1].copy()
        return a

    return [
        ("nan_flux_some", "either", None, at("flux", 0.05, np.nan)),
        ("inf_flux_some", "either", None, at("flux", 0.02, np.inf)),
        ("huge_flux_some", "either", None, at("flux", 0.02, 3e30)),
        ("nan_ivar_some", "either", None, at("ivar", 0.05, np.nan)),
        ("inf_ivar_some", "either", None, at("ivar", 0.02, np.inf)),
        ("neg_ivar_some", "either", None, at("ivar", 0.05, -1.0)),
        ("nan_flux_all", "quarantine", "usable", whole("flux", np.nan)),
        ("inf_flux_all", "quarantine", "usable", whole("flux", -np.inf)),
        ("zero_ivar_all", "quarantine", "usable", whole("ivar", 0.0)),
        ("neg_ivar_all", "quarantine", "usable", whole("ivar", -2.0)),
        ("nan_ivar_all", "quarantine", "usable", whole("ivar", np.nan)),
        ("zero_flux_all", "quarantine", "FLUX is 0", whole("flux", 0.0)),
        ("pixels_1", "quarantine", "pixel", shorten(1)),
        ("pixels_10", "quarantine", "pixel", shorten(10)),
        ("pixels_60", "quarantine", "pixel", shorten(60)),
        ("nan_wave_some", "either", None, at("wave", 0.01, np.nan)),
        ("decreasing_wave", "either", None, reverse_wave),
        ("ivar_short", "coadd:quarantine", "IVAR", short("ivar")),
        ("andmask_short", "coadd:quarantine", "ANDMASK", short("andmask")),
        ("ormask_short", "coadd:quarantine", "ORMASK", short("ormask")),
        ("wave_short", "coadd:quarantine", "WAVELENGTH", short("wave")),
        ("flux_short", "coadd:quarantine", "pixels", short("flux")),
    ]


# (kind, card, raw value, expect, mention)
HEADER_KINDS: list[tuple[str, str, str, str, str | None]] = [
    ("fiberid_big", "FIBERID", "99999", "quarantine", "FIBERID"),
    ("fiberid_int64", "FIBERID", str(2**40), "quarantine", "FIBERID"),
    ("fiberid_zero", "FIBERID", "0", "quarantine", "FIBERID"),
    ("spid_big", "SPID", "70000", "quarantine", "SPID"),
    ("spid_int64", "SPID", str(2**35), "quarantine", "SPID"),
    ("obsid_int128", "OBSID", str(2**70), "quarantine", "OBSID"),
    ("obsid_negative", "OBSID", "-5", "quarantine", "OBSID"),
    ("obsid_bitflip", "OBSID", "1#2", "quarantine", "OBSID"),
    ("obsid_text", "OBSID", "'abc'", "quarantine", "OBSID"),
    ("lmjd_negative", "LMJD", "-1", "quarantine", "LMJD"),
    ("lmjd_int64", "LMJD", str(2**40), "quarantine", "LMJD"),
    ("mjd_int64", "MJD", str(2**33), "quarantine", "MJD"),
    ("snrg_bitflip", "SNRG", "1.2.3", "quarantine", "SNRG"),
    ("snrg_text", "SNRG", "'NaN'", "quarantine", "SNRG"),
    ("ra_text", "RA", "'abc'", "quarantine", "RA"),
    ("dec_out_of_range", "DEC", "200.0", "quarantine", "DEC"),
    ("planid_dotdot", "PLANID", "'../../x'", "quarantine", "PLANID"),
    ("planid_semicolon", "PLANID", "'A;touch y'", "quarantine", "PLANID"),
    ("planid_subshell", "PLANID", "'$(touch z)'", "quarantine", "PLANID"),
    ("planid_blank_inside", "PLANID", "'A B'", "quarantine", "PLANID"),
    ("bitpix_7", "BITPIX", "7", "quarantine", "BITPIX"),
    ("bitpix_text", "BITPIX", "'abc'", "quarantine", "BITPIX"),
    ("naxis_3", "NAXIS", "3", "quarantine", "NAXIS"),
    ("naxis_4", "NAXIS", "4", "quarantine", "NAXIS"),
    ("naxis_999", "NAXIS", "999", "quarantine", "NAXIS"),
    ("naxis_negative", "NAXIS", "-1", "quarantine", "NAXIS"),
    ("naxis_1000", "NAXIS", "1000", "quarantine", "NAXIS"),
]
#: Kinds applied to the COADD table header (HDU 1) of DR9+ files.
TABLE_KINDS: list[tuple[str, str, str, str, str | None]] = [
    ("table_naxis2_2", "NAXIS2", "2", "quarantine", "truncated"),
    ("table_naxis1_huge", "NAXIS1", str(10**9), "quarantine", "max_fits_bytes"),
    ("table_bitpix_7", "BITPIX", "7", "quarantine", "BITPIX"),
    ("table_naxis_3", "NAXIS", "3", "quarantine", "NAXIS3"),
]


def _gzip_bomb(target_bytes: int) -> bytes:
    head = fits.PrimaryHDU().header.tostring().encode()
    z = gzip.compress(head + b"\0" * target_bytes, compresslevel=6, mtime=0)
    return z


def build_corpus(bases: list[Path], out: Path, *, seed: int = 11) -> list[Case]:
    """Write damaged copies of ``bases`` (good spectrum files) into ``out``; list every case.

    ``out`` must be new. Byte-identical results are written once (the first kind wins),
    so every listed file has content of its own.
    """
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    seen: set[str] = {hashlib.sha256(p.read_bytes()).hexdigest() for p in bases}
    datas = [fits_bytes(p) for p in bases]

    def add(
        kind: str,
        data: bytes | None,
        expect: str,
        mention: str | None,
        name: str | bytes | None = None,
        compress: bool = False,
    ) -> None:
        if data is None:
            return
        if compress:
            data = gzip.compress(data, mtime=0)
        sha = hashlib.sha256(data).hexdigest()
        if sha in seen:
            return
        seen.add(sha)
        stem = f"dmg-{len(cases):04d}-{kind}"
        if isinstance(name, bytes):
            path = Path(os.fsdecode(os.fsencode(str(out)) + b"/" + name))
        else:
            path = out / (name or f"{stem}.fits{'.gz' if compress else ''}")
        path.write_bytes(data)
        cases.append(Case(path, kind, expect, mention))

    pixel_kinds = _pixel_kinds(rng)
    for b, data in enumerate(datas):
        coadd = _is_coadd(data)
        for kind, card, value, expect, mention in HEADER_KINDS:
            if (b + len(kind)) % 2 and kind.startswith(("planid", "obsid", "naxis")):
                continue  # half the bases for the commonest kinds: keeps the corpus small
            add(kind, set_card(data, card, value), expect, mention)
        if coadd:
            table_start = _header_end(data) // BLOCK * BLOCK + BLOCK
            for kind, card, value, expect, mention in TABLE_KINDS:
                add(kind, set_card(data, card, value, hdu_start=table_start), expect, mention)
        for kind, expect, mention, edit in pixel_kinds:
            if expect.startswith("coadd:"):
                if not coadd:
                    continue
                expect = expect.removeprefix("coadd:")
            add(kind, pixels_edited(data, edit), expect, mention)
        if coadd:  # a junk copy of the COADD table before the real one
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hdul = _hdul(data)
                junk = hdul[1].copy()
                junk.data[0][0] = np.zeros_like(junk.data[0][0])
                dup = _write(fits.HDUList([hdul[0], junk, hdul[1]]))
            add("duplicated_coadd", dup, "quarantine", "ambiguous")
        # bytes: truncations, header and data bit flips
        for cut in sorted(rng.choice(np.arange(1, len(data)), size=4, replace=False)):
            add("truncated", data[: int(cut)], "quarantine", None)
        hdr_end = _header_end(data)
        for _ in range(3):
            flipped = bytearray(data)
            pos = int(rng.integers(0, hdr_end))
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
            add("header_bitflip", bytes(flipped), "either", None)
        for _ in range(2):
            flipped = bytearray(data)
            pos = int(rng.integers(hdr_end, len(data)))
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
            add("data_bitflip", bytes(flipped), "either", None)
        z = bytearray(gzip.compress(data, mtime=0))
        z[len(z) // 2] ^= 0xFF
        add("gzip_corrupt", bytes(z), "quarantine", "gzip")
        add("gzip_truncated", gzip.compress(data, mtime=0)[:-100], "quarantine", "gzip")
    # whole-file kinds
    add("empty", b"", "quarantine", "empty")
    for k in range(12):
        size = int(rng.integers(1, 20_000))
        junk = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
        add("random_bytes", (b"SIMPLE  =" if k % 2 else b"") + junk, "quarantine", None)
    head_only = fits.PrimaryHDU().header.tostring().encode()
    add("header_only", head_only, "quarantine", None)
    add("gzip_bomb", _gzip_bomb(80 << 20), "quarantine", "max_fits_bytes", name="dmg-bomb.fits.gz")
    sparse = out / "dmg-sparse.fits"
    with open(sparse, "wb") as fh:
        fh.write(datas[0][:BLOCK])
        fh.truncate(100 << 20)
    cases.append(Case(sparse, "sparse_100MiB", "quarantine", "max_file_bytes"))
    # odd names: a harmless edit under a non-UTF-8 name and one with shell characters
    renamed = set_card(datas[0], "OBJNAME", "'renamed'", insert=True)
    add("name_not_utf8", renamed, "good", None, name=b"spec-\xff\xfe-odd.fits")
    renamed2 = set_card(datas[1], "OBJNAME", "'renamed 2'", insert=True)
    add("name_shell_chars", renamed2, "good", None, name="spec a;b'$(c).fits")
    add(
        "name_not_utf8_damaged",
        b"junk, not a spectrum",
        "quarantine",
        "FITS",
        name=b"spec-\xc3\x28-bad.fits",
    )
    return cases
