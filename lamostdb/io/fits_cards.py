"""Header cards kept verbatim: split a stored header and tell standard-conforming cards.

The export copies the keys of an original LAMOST header that it does not rewrite itself.
Real headers hold the odd damaged card; :func:`is_clean_card` accepts only cards that
follow the FITS Standard 4.0 (section 4) strictly, so every copied card reads back
without a warning in astropy, fitsverify and STILTS. The test-suite checks this against
astropy's card parser on every card of the shipped real files.

Examples
--------
>>> is_clean_card("SNRG    =               102.45 / SNR of g filter".ljust(80))
True
>>> is_clean_card("SNRG    = 102.45.1".ljust(80))
False
>>> card_key("DATE-OBS= '2011-10-27T20:02:34.19'".ljust(80))
'DATE-OBS'
"""

from __future__ import annotations

import re

CARD = 80
COMMENTARY = frozenset({"COMMENT", "HISTORY", ""})
_KEY_FIELD = re.compile(r"^[A-Z0-9_-]{0,8} *$")
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
_AFTER_VALUE = r" *(/.*)?$"
_STRING = re.compile(r"^ *'((?:[^']|'')*)'" + _AFTER_VALUE)
_LOGICAL = re.compile(r"^ *[TF]" + _AFTER_VALUE)
_INTEGER = re.compile(r"^ *[+-]?\d+" + _AFTER_VALUE)
_REAL = re.compile(r"^ *[+-]?(\d+\.?\d*|\.\d+)([ED][+-]?\d+)?" + _AFTER_VALUE)


def split_cards(header_text: str) -> list[str]:
    """The 80-character cards of a header text, up to (not including) ``END``."""
    cards = []
    for start in range(0, len(header_text), CARD):
        card = header_text[start : start + CARD].ljust(CARD)
        if card[:8].rstrip() == "END" and not card[8:].strip():
            break
        cards.append(card)
    return cards


def card_key(card: str) -> str:
    """The keyword of a card (columns 1-8, trailing blanks removed)."""
    return card[:8].rstrip()


def string_value(card: str) -> str | None:
    """The string value of a clean string-valued card (``None`` if it is not one)."""
    m = _STRING.match(card[10:])
    return None if m is None else m.group(1).replace("''", "'").rstrip()


def is_clean_card(card: str) -> bool:
    """Whether ``card`` is a standard-conforming keyword, commentary or CONTINUE card.

    Keyword cards need a value: a string, T/F, an integer or a real number (upper-case
    exponent); an undefined (blank) or complex value, a missing quote or anything
    after the value other than a ``/ comment`` makes the card unclean.
    """
    if len(card) != CARD or not _PRINTABLE.match(card) or not _KEY_FIELD.match(card[:8]):
        return False
    key = card_key(card)
    if key in COMMENTARY:
        return True
    if key == "CONTINUE":
        return card[8:10] == "  " and _STRING.match(card[10:]) is not None
    if card[8:10] != "= ":
        return False
    value = card[10:]
    return any(p.match(value) for p in (_STRING, _LOGICAL, _INTEGER, _REAL))
