"""FITS checksums, streamed binary tables and verbatim header cards (lamostdb.io)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from conftest import SHIPPED_FILES
from hypothesis import given, settings
from hypothesis import strategies as st

from lamostdb.io.fits_bintable import (
    FitsColumn,
    FitsTableError,
    encode_batch,
    hdu_bytes,
    one_row_table_bytes,
    primary_hdu_bytes,
    write_table_file,
)
from lamostdb.io.fits_cards import is_clean_card, split_cards
from lamostdb.io.fits_checksum import RunningSum, checksum_of, encode_checksum
from lamostdb.io.spectrum import read_file_bytes

INT64_NULL = -(2**63)


def _open(data: bytes) -> fits.HDUList:
    return fits.open(io.BytesIO(data), checksum=True)


# -- checksums --------------------------------------------------------------------------
@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=200), st.lists(st.integers(0, 200), max_size=6))
def test_running_sum_does_not_depend_on_how_the_stream_is_cut(data: bytes, cuts: list[int]) -> None:
    s = RunningSum()
    start = 0
    for cut in sorted(cuts):
        s.update(data[start:cut])
        start = max(start, cut)
    s.update(data[start:])
    assert s.finish() == checksum_of(data)


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=50),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
)
def test_checksums_equal_astropys(values: list[float], text: str) -> None:
    arr = np.asarray(values, dtype=np.float32)
    data = one_row_table_bytes(
        [(FitsColumn("X", "E", repeat=arr.size), arr)],
        extname="T",
        cards=[("NOTE", text, "free text")],
    )
    with _open(primary_hdu_bytes([("K", 1, "")]) + data) as hdul:
        for hdu in hdul:
            datasum = hdu._calculate_datasum()  # astropy's own computation, as the reference
            assert hdu.header["DATASUM"] == str(datasum)
            assert hdu.header["CHECKSUM"] == hdu._calculate_checksum(datasum)


def test_checksum_of_a_whole_hdu_is_minus_zero_and_a_changed_byte_is_caught() -> None:
    data = hdu_bytes(
        [("SIMPLE", True, ""), ("BITPIX", 8, ""), ("NAXIS", 0, ""), ("OBJECT", "test", "")]
    )
    assert checksum_of(data) == 0xFFFFFFFF
    assert encode_checksum(0) == "orrrrooooooooooo"
    damaged = data.replace(b"'test", b"'tesT")
    with pytest.warns(AstropyUserWarning, match="Checksum verification failed"):
        _open(damaged).close()


# -- streamed tables -------------------------------------------------------------------
COLUMNS = [
    FitsColumn("name", "A", repeat=5, comment="a name"),
    FitsColumn("n64", "K", tnull=INT64_NULL, unit="d", comment="an int64"),
    FitsColumn("n16", "I", tnull=-(2**15)),
    FitsColumn("x", "D", unit="deg", tdisp="F11.6"),
    FitsColumn("flag", "L"),
    FitsColumn("ids", "K", varlen="P", null_fill=-1),
    FitsColumn("zs", "D", varlen="P"),
    FitsColumn("words", "A", varlen="P"),
]


def _batch() -> pa.RecordBatch:
    return pa.record_batch(
        {
            "name": ["a", "bcdef", None, "x y"],
            "n64": pa.array([2**62, None, -5, 0], pa.int64()),
            "n16": pa.array([1, 2, None, -3], pa.int16()),
            "x": [1.5, None, -2.25, 359.999999],
            "flag": [True, False, True, False],
            "ids": pa.array([[1, 2, 3], [None], [], None], pa.list_(pa.int64())),
            "zs": pa.array([[0.5], [None, 2.0], None, []], pa.list_(pa.float64())),
            "words": ["a,b", "", None, "long,er,list"],
        }
    )


def _write(path: Path, batch_rows: int) -> bytes:
    batch = _batch()
    parts = [batch.slice(i, batch_rows) for i in range(0, batch.num_rows, batch_rows)]
    n = write_table_file(
        path, primary_cards=[("RELEASE", "t", "")], columns=COLUMNS, batches=parts, extname="DEMO"
    )
    assert n == batch.num_rows
    return path.read_bytes()


def test_streamed_table_is_the_same_whatever_the_batch_size(tmp_path: Path) -> None:
    whole = _write(tmp_path / "a.fits", 4)
    for rows in (1, 3):
        assert _write(tmp_path / f"b{rows}.fits", rows) == whole


def test_streamed_table_reads_back_with_nulls_units_and_formats(tmp_path: Path) -> None:
    _write(tmp_path / "t.fits", 3)
    with fits.open(tmp_path / "t.fits", checksum=True) as hdul:
        hdul.verify("exception")
        h, d = hdul["DEMO"].header, hdul["DEMO"].data
        assert h["NAXIS2"] == 4 and h["TNULL2"] == INT64_NULL and h["TUNIT2"] == "d"
        assert h["TDISP4"] == "F11.6" and h["TCOMM1"] == "a name"
        assert h["TFORM6"] == "1PK(3)" and "TNULL6" not in h
        assert list(d["name"]) == ["a", "bcdef", "", "x y"]
        assert list(d["n64"]) == [2**62, INT64_NULL, -5, 0]
        assert list(d["n16"]) == [1, 2, -(2**15), -3]
        assert np.isnan(d["x"][1]) and d["x"][3] == 359.999999
        assert list(d["flag"]) == [True, False, True, False]
        assert [list(v) for v in d["ids"]] == [[1, 2, 3], [-1], [], []]
        assert [len(v) for v in d["zs"]] == [1, 2, 0, 0] and np.isnan(d["zs"][1][0])
        assert ["".join(v) for v in d["words"]] == ["a,b", "", "", "long,er,list"]


def test_null_logical_is_a_zero_byte() -> None:
    col = FitsColumn("flag", "L")
    rows, _, _ = encode_batch([col], pa.record_batch({"flag": [True, None, False]}), heap_offset=0)
    assert rows == b"T\0F"


@pytest.mark.parametrize(
    ("column", "values", "match"),
    [
        (
            FitsColumn("n", "K", tnull=INT64_NULL),
            pa.array([INT64_NULL], pa.int64()),
            "column n: a value equals its null marker",
        ),
        (FitsColumn("n", "J"), pa.array([None, 1], pa.int32()), "column n has nulls"),
        (FitsColumn("s", "A", repeat=3), pa.array(["abcd"]), "column s: a value of 4 characters"),
        (FitsColumn("s", "A", repeat=9), pa.array(["caf\u00e9"]), "column s: value 'caf\u00e9'"),
    ],
)
def test_values_a_column_cannot_hold_are_refused(
    column: FitsColumn, values: pa.Array, match: str
) -> None:
    with pytest.raises(FitsTableError, match=match):
        encode_batch([column], pa.record_batch({column.name: values}), heap_offset=0)


# -- verbatim cards ---------------------------------------------------------------------
def _real_cards() -> list[str]:
    cards = []
    for path in SHIPPED_FILES:
        _, data = read_file_bytes(path)
        text = data[: data.index(b"END" + b" " * 77) + 80].decode("ascii", errors="replace")
        cards += split_cards(text)
    return cards


BAD_CARDS = [
    "FIBERID = 12.3.4 / not a number",
    "OBJNAME = 'unterminated",
    "OBJNAME = 'ok' trailing junk",
    "lower   = 1",
    "EMPTY   =                      / undefined value",
    "RA      = (1.0, 2.0) / complex",
    "BAD KEY = 1",
    "NOEQUAL  1",
    "TEMP    = 1.5e3 / lower-case exponent",
]


def test_clean_cards_are_those_astropy_reads_without_complaint() -> None:
    cards = _real_cards() + [c.ljust(80) for c in BAD_CARDS]
    assert len(cards) > 1000
    n_clean = 0
    for card in cards:
        if not is_clean_card(card):
            continue
        n_clean += 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            parsed = fits.Card.fromstring(card)
            parsed.verify("exception")
            if parsed.keyword not in ("COMMENT", "HISTORY", "", "CONTINUE"):
                assert isinstance(parsed.value, str | bool | int | float)
    assert n_clean > 1000
    assert not any(is_clean_card(c.ljust(80)) for c in BAD_CARDS)
