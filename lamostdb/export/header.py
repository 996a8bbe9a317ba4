"""Header cards of a release: release keys, and the primary header of a spectrum file.

A spectrum's primary header (DR9+ layout, DESIGN.md section 4) is made of, in order:

1. release keys: ORIGIN, RELEASE, LDBVERS (lamostdb version), DATE (creation, UTC),
   FILENAME;
2. the observation keys of section 4 and the other values the catalogue stores,
   written from its typed columns (OBSID, DATA_V, LMJD, MJD, PLANID, SPID, FIBERID,
   RA, DEC, ..., FIBERTYP, FIBERMAS, SNRU...SNRZ, COEFF0, COEFF1), under the DR9 key
   names whatever the spelling of the original file (FIB_TYPE, SN_G, ...);
3. lamostdb's classification: UID, CLASS, SUBCLASS, Z, Z_ERR, CONF and ZWARNING when
   the results carry them, RCHI2, ENGINEV, CLASSRUN. Z_ERR is -9999 where the redshift
   sits on a grid edge (LAMOST's own missing-value convention);
4. LAMOST's classification, for reference, under keys of its own: CLASS -> LASPCLS,
   SUBCLASS -> LASPSUBC, Z -> LASP_Z, Z_ERR -> LASPZERR (LASP's ZFLAG/Z_FROM, which say
   how *its* Z was measured, are dropped);
5. every other card of the original header, verbatim and in its order (telescope,
   weather, reduction keys...), except those describing the original file's structure
   (NAXISn, EXTNAME, N_EXTEN, NORM, ...), the wavelength WCS of the old 5 x N image
   (CRVAL1, CD1_1, WATn_nnn, ...), keys rewritten above, and cards that do not follow
   the FITS standard (counted in the export report; the catalogue keeps them).

A key whose value the catalogue does not have is left out, never invented.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamostdb.export.errors import ExportError
from lamostdb.io.fits_cards import COMMENTARY, card_key, is_clean_card, split_cards, string_value
from lamostdb.io.fits_write import Card

UNDEFINED = -9999.0  # LAMOST's value for a redshift (error) that could not be measured
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?)?$")


@dataclass(frozen=True)
class ReleaseInfo:
    """What every file of one release says about it."""

    name: str
    created: str  # UTC, ISO 8601 to the second
    lamostdb_version: str
    engine_versions: tuple[str, ...]

    def cards(self) -> list[Card]:
        return [
            ("ORIGIN", "lamostdb", "software that wrote this file"),
            ("RELEASE", self.name, "data release"),
            ("LDBVERS", self.lamostdb_version, "lamostdb version"),
            (
                "ENGINEV",
                ",".join(self.engine_versions),
                "lamostdb classification engine version(s)",
            ),
            ("DATE", self.created, "file creation date (UTC)"),
        ]


#: (key, spectra column, comment) of the observation block, in header order.
OBSERVATION_KEYS: tuple[tuple[str, str, str], ...] = (
    ("OBSID", "obsid", "Unique number ID of this spectrum"),
    ("DATA_V", "data_v", "Data release version of the spectrum"),
    ("LMJD", "lmjd", "Local Modified Julian Day"),
    ("MJD", "mjd", "Modified Julian Day"),
    ("PLANID", "planid", "Plan ID in use"),
    ("SPID", "spid", "Spectrograph ID"),
    ("FIBERID", "fiberid", "Fiber ID of object"),
    ("RA", "ra", "[deg] Right ascension of object"),
    ("DEC", "dec", "[deg] Declination of object"),
    ("RA_OBS", "ra_obs", "[deg] Right ascension during observing"),
    ("DEC_OBS", "dec_obs", "[deg] Declination during observing"),
    ("DATE-OBS", "obsdate", "The observation median UTC"),
    ("DESIG", "designation", "Designation of LAMOST target"),
    ("OBJNAME", "objname", "Name of object"),
    ("OBJTYPE", "objtype", "Object type from input catalog"),
    ("TSOURCE", "tsource", "Name of input catalog"),
    ("FIBERTYP", "fibertype", "Fiber type of object"),
    ("FIBERMAS", "fibermask", "Bitmask of warning values, 0 means good"),
    ("HELIO_RV", "helio_rv", "[km/s] Heliocentric correction"),
    ("VERSPIPE", "verspipe", "Version of the LAMOST pipeline (spectrum)"),
    ("SNRU", "snru", "SNR of u filter"),
    ("SNRG", "snrg", "SNR of g filter"),
    ("SNRR", "snrr", "SNR of r filter"),
    ("SNRI", "snri", "SNR of i filter"),
    ("SNRZ", "snrz", "SNR of z filter"),
    ("COEFF0", "coeff0", "Central wavelength (log10) of first pixel"),
    ("COEFF1", "coeff1", "Log10 dispersion per pixel"),
)
#: float32 columns: written with the shortest text that reads back to the same float32
FLOAT32_COLUMNS = frozenset({"snru", "snrg", "snrr", "snri", "snrz"})
LASP_KEYS: tuple[tuple[str, str, str], ...] = (
    ("LASPCLS", "lasp_class", "Class from the LAMOST pipeline (LASP CLASS)"),
    ("LASPSUBC", "lasp_subclass", "Subclass from the LAMOST pipeline (LASP)"),
    ("LASP_Z", "lasp_z", "Redshift from the LAMOST pipeline (LASP Z)"),
    ("LASPZERR", "lasp_z_err", "Redshift error from the LAMOST pipeline (LASP)"),
)
#: Original keys whose content is written from the catalogue under the DR9 name.
_SPELLINGS = frozenset({"FIB_TYPE", "FIB_MASK", "SN_U", "SN_G", "SN_R", "SN_I", "SN_Z"})
#: Original keys describing the original file, or LASP's redshift method: not copied.
_NOT_COPIED = frozenset(
    {
        "SIMPLE",
        "BITPIX",
        "NAXIS",
        "EXTEND",
        "XTENSION",
        "PCOUNT",
        "GCOUNT",
        "TFIELDS",
        "THEAP",
        "BSCALE",
        "BZERO",
        "BLANK",
        "BUNIT",
        "DATAMIN",
        "DATAMAX",
        "EXTNAME",
        "EXTVER",
        "EXTLEVEL",
        "CHECKSUM",
        "DATASUM",
        "FILENAME",
        "N_EXTEN",
        "NORM",
        "ORIGIN",
        "DATE",
        "WCSDIM",
        "DC-FLAG",
        "DISPAXIS",
        "ZFLAG",
        "Z_FROM",
        "CLASS",
        "SUBCLASS",
        "Z",
        "Z_ERR",
        "END",
    }
)
_NOT_COPIED_RE = re.compile(
    r"^(NAXIS\d+|EXTEN\d+|T(TYPE|FORM|UNIT|NULL|SCAL|ZERO|DISP|DIM|BCOL|COMM)\d+|"
    r"CTYPE\d|CRVAL\d|CRPIX\d|CDELT\d|CUNIT\d|CROTA\d|CD\d_\d|PC\d_\d|WAT\d_\d+|"
    r"LTM\d_\d|LTV\d|APNUM\d+|BANDID\d+)$"
)


def _header_value(column: str, value: Any) -> Any:
    if column in FLOAT32_COLUMNS:
        return float(str(np.float32(value)))
    return value


def _checked(specid: str, key: str, value: Any, comment: str) -> Card:
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        # FITS header values must be finite: NaN/Inf (e.g. the chi-square of a spectrum
        # with no usable pixel) are written as the undefined marker
        return (
            key,
            UNDEFINED,
            comment if "-9999" in comment else (comment + " (-9999: undefined)")[:47],
        )
    if isinstance(value, str) and not (value.isascii() and value.isprintable()):
        raise ExportError(
            f"spectrum {specid}: header key {key} would get {value!r}, which is "
            "not printable ASCII; leave the spectrum out with --where"
        )
    return (key, value, comment)


def observation_cards(row: Mapping[str, Any]) -> list[Card]:
    """Section-4 keys from the stored typed columns (absent values left out)."""
    cards: list[Card] = []
    for key, column, comment in OBSERVATION_KEYS:
        value = row.get(column)
        if value is None or (key == "DATE-OBS" and not _ISO_DATE.match(str(value))):
            continue
        cards.append(_checked(row["specid"], key, _header_value(column, value), comment))
    return cards


def classification_cards(row: Mapping[str, Any]) -> list[Card]:
    """lamostdb's result (``row['result']``, a results row) and the UID."""
    res = row["result"]
    z_err = res["z_err"]
    cards: list[Card] = [
        ("UID", row["uid"], "lamostdb unique object id (HEALPix-29 of ura,udec)"),
        ("CLASS", res["class"], "Class of object (lamostdb)"),
        ("SUBCLASS", res["subclass"], "Subclass of object (lamostdb)"),
        ("Z", res["z"], "Redshift of object (lamostdb)"),
        ("Z_ERR", UNDEFINED if z_err is None else z_err, "Redshift error (-9999: undefined)"),
    ]
    if res.get("conf") is not None:  # columns of later engine versions, when present
        cards.append(("CONF", res["conf"], "Classification confidence (lamostdb)"))
    if res.get("zwarning") is not None:
        cards.append(("ZWARNING", res["zwarning"], "Redshift warning bits (lamostdb)"))
    cards += [
        ("RCHI2", res["rchi2"], "Reduced chi-square of the best fit"),
        ("ENGINEV", res["engine_version"], "lamostdb classification engine version"),
        ("CLASSRUN", res["run_id"], "lamostdb classify run"),
    ]
    return [_checked(row["specid"], *card) for card in cards]


def lasp_cards(row: Mapping[str, Any]) -> list[Card]:
    return [
        _checked(row["specid"], key, row[column], comment)
        for key, column, comment in LASP_KEYS
        if row.get(column) is not None
    ]


def _copied(key: str, written: frozenset[str]) -> bool:
    return not (
        key in written or key in _SPELLINGS or key in _NOT_COPIED or _NOT_COPIED_RE.match(key)
    )


def original_cards(header_text: str, written: frozenset[str], unclean: Counter[str]) -> list[bytes]:
    """Card images of the original header that the file keeps verbatim.

    Unclean cards are counted in ``unclean`` (by key) and left out; so are ``CONTINUE``
    cards whose string they would continue was left out.
    """
    out: list[bytes] = []
    continuing = False  # the last kept card is a string ending with '&'
    for card in split_cards(header_text):
        key = card_key(card)
        if key == "CONTINUE":
            keep = continuing and is_clean_card(card)
        elif not card.strip():
            keep = False  # blank spacer cards
        elif not is_clean_card(card):
            unclean[key] += 1
            keep = False
        else:
            keep = key in COMMENTARY or _copied(key, written)
        if keep:
            out.append(card.encode("ascii"))
        value = string_value(card) if keep and key not in COMMENTARY else None
        continuing = value is not None and value.endswith("&")
    return _without_empty_sections(out)


def _without_empty_sections(cards: list[bytes]) -> list[bytes]:
    """Drop LAMOST's section headings (``COMMENT --------...``) left with no key under them."""

    def heading(card: bytes) -> bool:
        return card.startswith(b"COMMENT --")

    return [
        c
        for i, c in enumerate(cards)
        if not heading(c) or (i + 1 < len(cards) and not heading(cards[i + 1]))
    ]


def spectrum_primary_cards(
    row: Mapping[str, Any], release: ReleaseInfo, filename: str, unclean: Counter[str]
) -> list[Card | bytes]:
    """Every card of a spectrum file's primary header (see the module docstring)."""
    release_cards = [c for c in release.cards() if c[0] != "ENGINEV"]
    blocks: list[list[Card]] = [
        [*release_cards, ("FILENAME", filename, "name of this file")],
        observation_cards(row),
        classification_cards(row),
        lasp_cards(row),
    ]
    written = frozenset(key for block in blocks for key, _, _ in block)
    titles = (
        "lamostdb data release",
        "observation (catalogue values)",
        "classification by lamostdb",
        "classification by the LAMOST pipeline (LASP)",
    )
    out: list[Card | bytes] = []
    for title, block in zip(titles, blocks, strict=True):
        out.append(("COMMENT", f"-------- {title}", ""))
        out += block
    copied = original_cards(row["header"], written, unclean)
    if copied:
        out.append(("COMMENT", "-------- other keys of the original LAMOST header", ""))
        out += copied
    return out
