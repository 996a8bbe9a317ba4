"""FITS ``DATASUM`` and ``CHECKSUM`` (the FITS checksum convention, Standard 4.0 App. J).

``DATASUM`` is the 32-bit ones' complement sum of the data unit read as big-endian
unsigned integers (padding included), written as a decimal string. ``CHECKSUM`` is 16
ASCII characters chosen so that the ones' complement sum of the whole HDU (header and
data) is -0 (all bits set): it encodes the complement of the HDU's sum with the card's
value set to sixteen ``'0'``. Any changed byte then shows up as a wrong sum.

Sums are taken 4 bytes at a time with numpy; :class:`RunningSum` takes data in pieces
of any length, so a table streamed to disk in batches is summed as it is written.

Examples
--------
>>> s = RunningSum()
>>> s.update(b"\\x00\\x00\\x00\\x01\\xff\\xff")
>>> s.update(b"\\xff\\xff")
>>> s.value  # 1 + 0xffffffff with the carry folded back in
1
>>> encode_checksum(0)
'orrrrooooooooooo'
"""

from __future__ import annotations

import numpy as np

_MASK32 = 0xFFFFFFFF
ZERO_CHECKSUM = "0" * 16
# ASCII punctuation between the digits, upper- and lower-case letters: the encoding
# avoids it so that the 16 characters are letters and digits only.
_EXCLUDED = frozenset(range(0x3A, 0x41)) | frozenset(range(0x5B, 0x61))


def ones_complement_add(a: int, b: int) -> int:
    """32-bit ones' complement sum: add, then fold the carry back into the low bits."""
    total = a + b
    while total >> 32:
        total = (total & _MASK32) + (total >> 32)
    return total


def _sum_words(data: bytes | memoryview) -> int:
    """Ones' complement sum of ``data`` (length a multiple of 4) as big-endian words."""
    if not len(data):
        return 0
    # At most 2**32 words per call keeps the uint64 accumulator from overflowing.
    step = 4 * (1 << 30)
    total = 0
    for start in range(0, len(data), step):
        words = np.frombuffer(
            data, dtype=">u4", offset=start, count=min(step, len(data) - start) // 4
        )
        total = ones_complement_add(total, int(words.sum(dtype=np.uint64)))
    return total


class RunningSum:
    """Ones' complement sum of a byte stream fed in pieces of any length."""

    def __init__(self) -> None:
        self.value = 0
        self._tail = b""  # bytes of an incomplete 4-byte word
        self.nbytes = 0

    def update(self, data: bytes | memoryview) -> None:
        self.nbytes += len(data)
        if self._tail:
            need = 4 - len(self._tail)
            head, data = bytes(data[:need]), data[need:]
            self._tail += head
            if len(self._tail) < 4:
                return
            self.value = ones_complement_add(self.value, _sum_words(self._tail))
            self._tail = b""
        cut = len(data) - len(data) % 4
        self.value = ones_complement_add(self.value, _sum_words(data[:cut]))
        self._tail = bytes(data[cut:])

    def finish(self) -> int:
        """The sum, with an incomplete last word padded by zero bytes (as FITS pads)."""
        if self._tail:
            return ones_complement_add(self.value, _sum_words(self._tail.ljust(4, b"\0")))
        return self.value


def checksum_of(data: bytes | memoryview) -> int:
    """Ones' complement sum of whole bytes (length padded with zeros to a multiple of 4)."""
    s = RunningSum()
    s.update(data)
    return s.finish()


def encode_checksum(value: int) -> str:
    """The 16 characters of ``CHECKSUM`` that cancel an HDU sum of ``value``.

    Each byte of the complement is spread over four characters (a quarter each, the
    remainder on the first) offset by ``'0'``; pairs are nudged up and down together
    (which keeps their sum) until no character is punctuation; the characters of the
    four bytes are interleaved and the string rotated right by one, because the value
    starts at byte 11 of its card, one byte after a 4-byte boundary.
    """
    complement = ~value & _MASK32
    chars = [0] * 16
    for i in range(4):
        byte = (complement >> (24 - 8 * i)) & 0xFF
        quotient, remainder = divmod(byte, 4)
        group = [quotient + remainder + 0x30] + [quotient + 0x30] * 3
        changed = True
        while changed:
            changed = False
            for j in (0, 2):
                if group[j] in _EXCLUDED or group[j + 1] in _EXCLUDED:
                    group[j] += 1
                    group[j + 1] -= 1
                    changed = True
        for j in range(4):
            chars[4 * j + i] = group[j]
    text = "".join(map(chr, chars))
    return text[-1] + text[:-1]
