"""Licence plate formats of European countries: which character may stand where.

A format is a sequence of slots, each the set of characters a plate of that
country may carry at that position. Formats decide the characters OCR confuses
(O/0, I/1, B/8, S/5, Z/2, G/6): a letter slot takes the letter, a digit slot the
digit. :func:`normalise` does it on text (a read, a label, a plate typed into a
watchlist); :mod:`safecity.vision.plates` does it on the recogniser's own
character probabilities, which is better than a fixed table.

Sources (the layouts, and the letters each country leaves out to avoid such
confusions): the Wikipedia articles "Vehicle registration plates of <country>".

>>> normalise("PP-587A0", formats_for(["SK"]))
'PP587AO'
>>> normalise("4B0 4979", formats_for(["CZ"]))  # Czech plates carry no O
'4B04979'
>>> normalise("GWAGEN", formats_for(["SK"])) is None
True
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from safecity.errors import ConfigError
from safecity.events import plate_key

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
ALPHANUMERIC = DIGITS + LETTERS

# characters OCR mistakes for one another; a format decides which one a slot takes
LOOKALIKES: dict[str, str] = {
    "O": "0", "Q": "0", "D": "0", "I": "1", "B": "8", "S": "5", "Z": "2", "G": "6",
    "0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G",
}  # fmt: skip


@dataclass(frozen=True)
class PlateFormat:
    """One layout of one country's plates: the characters allowed in each slot."""

    country: str
    layout: str  # e.g. "LL DDD LL" (L letter, D digit, A either), for people
    slots: tuple[frozenset[str], ...]
    vanity: bool = False  # chosen by the owner: used only when no ordinary format fits

    def __len__(self) -> int:
        return len(self.slots)


def _format(country: str, layout: str, letters: str = LETTERS, **classes: str) -> PlateFormat:
    """Build a format from a layout: L = one of ``letters``, D = digit, A = either;
    other capitals name a class given as keyword (``R="ABC"``); spaces are ignored."""
    sets = {"L": letters, "D": DIGITS, "A": DIGITS + letters, **classes}
    slots = tuple(frozenset(sets[token]) for token in layout.replace(" ", ""))
    return PlateFormat(country, layout, slots)


def _vanity(fmt: PlateFormat) -> PlateFormat:
    return PlateFormat(fmt.country, fmt.layout, fmt.slots, vanity=True)


def _slovakia() -> list[PlateFormat]:
    # district (2 letters), 3 digits, 2 letters since 1997; chosen plates: district + 5 free
    return [_format("SK", "LL DDD LL"), _vanity(_format("SK", "LL AAAAA"))]


def _czechia() -> list[PlateFormat]:
    # since 2001: series digit, region letter, then a digit or letter, 4 digits; no G, O, Q, W
    # (confusable). Before 2001 (Czechoslovak): district (2 letters), series letter, 4 digits.
    letters = "".join(c for c in LETTERS if c not in "GOQW")
    return [
        _format("CZ", "D R A DDDD", letters, R="ABCEHJKLMPSTUZ"),
        _format("CZ", "LLL DDDD"),
    ]


def _poland() -> list[PlateFormat]:
    # district (2 or 3 letters), then 5 (or 4 after 3 letters) characters starting with a
    # digit, at most two of them letters, never B, D, I, O, Z (confusable with 8, 0, 1, 0, 2)
    serial_letters = "".join(c for c in LETTERS if c not in "BDIOZ")
    formats = []
    for district, length in (("LL", 5), ("LLL", 4), ("LLL", 5)):
        for rest in itertools.product("DS", repeat=length - 1):
            if rest.count("S") <= 2:
                layout = f"{district} D{''.join(rest)}"
                formats.append(_format("PL", layout, S=serial_letters))
    return formats


def _germany() -> list[PlateFormat]:
    # district (1-3 letters), 1-2 letters, 1-4 digits, E (electric) or H (historic); at most
    # 8 characters
    formats = []
    for district, letters, digits in itertools.product((1, 2, 3), (1, 2), (1, 2, 3, 4)):
        for suffix in ("", "E", "H"):
            if district + letters + digits + len(suffix) <= 8:
                layout = f"{'L' * district} {'L' * letters} {'D' * digits}{suffix}"
                formats.append(_format("DE", layout, E="E", H="H"))
    return formats


def _france() -> list[PlateFormat]:
    # SIV since 2009: 2 letters, 3 digits, 2 letters; no I, O, U
    return [_format("FR", "LL DDD LL", "".join(c for c in LETTERS if c not in "IOU"))]


def _italy() -> list[PlateFormat]:
    # since 1994: 2 letters, 3 digits, 2 letters; no I, O, Q, U
    return [_format("IT", "LL DDD LL", "".join(c for c in LETTERS if c not in "IOQU"))]


def _spain() -> list[PlateFormat]:
    # since 2000: 4 digits, 3 consonants (no vowels, no Q or Ñ)
    return [_format("ES", "DDDD LLL", "BCDFGHJKLMNPRSTVWXYZ")]


def _britain() -> list[PlateFormat]:
    # since 2001: area (2 letters), age (2 digits), 3 random letters; I and Q are not used
    return [_format("GB", "LL DD LLL", "".join(c for c in LETTERS if c not in "IQ"))]


def _hungary() -> list[PlateFormat]:
    # 1990-2022: 3 letters, 3 digits; since 2022: 4 letters, 3 digits
    return [_format("HU", "LLL DDD"), _format("HU", "LLLL DDD")]


COUNTRIES: dict[str, tuple[PlateFormat, ...]] = {
    code: tuple(build())
    for code, build in {
        "SK": _slovakia,
        "CZ": _czechia,
        "PL": _poland,
        "DE": _germany,
        "FR": _france,
        "IT": _italy,
        "ES": _spain,
        "GB": _britain,
        "HU": _hungary,
    }.items()
}


def formats_for(countries: Iterable[str]) -> tuple[PlateFormat, ...]:
    """The formats of the given country codes, ordinary ones first (ties go to the first).

    Raises ConfigError naming the known codes for an unknown one.
    """
    ordinary: list[PlateFormat] = []
    vanity: list[PlateFormat] = []
    for code in countries:
        key = code.strip().upper()
        if key not in COUNTRIES:
            known = ", ".join(COUNTRIES)
            raise ConfigError(f"plates: no plate formats for country '{code}'; known: {known}")
        for fmt in COUNTRIES[key]:
            (vanity if fmt.vanity else ordinary).append(fmt)
    return tuple(ordinary + vanity)


def clean(text: str) -> str:
    """Upper-case letters and digits only (spaces, dashes, dots and stickers dropped):
    the store's own rule (:func:`safecity.events.plate_key`), so a read and a search
    are cleaned alike."""
    return plate_key(text)


def conform(text: str, fmt: PlateFormat) -> tuple[str, int] | None:
    """``text`` (cleaned) put into ``fmt`` by swapping look-alikes, with the number of
    swaps; None when it cannot fit."""
    if len(text) != len(fmt):
        return None
    out = []
    swaps = 0
    for char, slot in zip(text, fmt.slots, strict=True):
        if char in slot:
            out.append(char)
        elif LOOKALIKES.get(char) in slot:
            out.append(LOOKALIKES[char])
            swaps += 1
        else:
            return None
    return "".join(out), swaps


def format_prior(fmt: PlateFormat, formats: Sequence[PlateFormat]) -> float:
    """How much less likely a plate of ``fmt`` is, in units: one for a country other than
    the first configured (the camera's own), VANITY_UNITS for a vanity format."""
    home = formats[0].country if formats else fmt.country
    return float(fmt.country != home) + VANITY_UNITS * fmt.vanity


VANITY_UNITS = 2.5  # vanity plates are rare, and their free slots fit almost any text
SWAP_UNITS = 0.8  # one look-alike swapped costs this many prior units: a home plate
# read with one swap beats a foreign plate read as is; a foreign one with two swaps loses to
# a home vanity plate read as is


def normalise(text: str, formats: Sequence[PlateFormat]) -> str | None:
    """The plate ``text`` in the format it fits at least cost (look-alikes swapped,
    foreign and vanity formats counted by :func:`format_prior`); None when it fits none.

    >>> sk_pl = formats_for(["SK", "PL"])
    >>> normalise("RKO99AN", sk_pl), normalise("KMBORAK", sk_pl), normalise("W053011", sk_pl)
    ('RK099AN', 'KMBORAK', 'WO53011')
    """
    cleaned = clean(text)
    best: tuple[float, str] | None = None
    for fmt in formats:
        fit = conform(cleaned, fmt)
        if fit is not None:
            cost = fit[1] * SWAP_UNITS + format_prior(fmt, formats)
            if best is None or cost < best[0]:
                best = (cost, fit[0])
    return best[1] if best else None
