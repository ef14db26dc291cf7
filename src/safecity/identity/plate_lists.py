"""Plate watchlists: vehicles listed by licence plate, and matching plate reads to them.

A plate watchlist (``kind="plate"``) stands under an authorisation exactly like
a face watchlist. A listed vehicle is a :class:`~safecity.store.schema.Person`
row (its name says what and why, e.g. "stolen silver Skoda, case 4411"; its
``enrolled_by`` may not review its hits) with its plate(s) in
:class:`~safecity.store.schema.ListedPlate`. So removal
(:func:`~safecity.identity.enrol.remove_person`), four-eyes review, retention at
the authorisation's end and the event's match columns work as for faces.

A listed plate is normalised to the configured countries' formats
(:func:`safecity.vision.plate_formats.normalise`), as reads are, so "oy09 feu"
and a read of "OY09FEU" meet. :class:`PlateMatcher` matches a vehicle's read
against the listed plates: the same text (``plates.match_max_edits: 0``), or
one letter or digit changed, added or left out (``1``: more hits on lookalike
plates, each a candidate for reviewers to reject).

>>> import numpy as np
>>> entry = GalleryEntry(7, "stolen silver Skoda, case 4411", 2, "stolen-cars")
>>> matcher = PlateMatcher([("OY09FEU", entry)])
>>> read = PlateRead("OY09FEU", 0.93, np.zeros((8, 30, 3), np.uint8))
>>> hit = matcher.match(read)
>>> hit.person_name, hit.score, hit.margin
('stolen silver Skoda, case 4411', 0.93, 1.0)
>>> matcher.match(PlateRead("OY09FEV", 0.93, read.crop)) is None
True
>>> PlateMatcher([("OY09FEU", entry)], max_edits=1).match(
...     PlateRead("OY09FEV", 0.93, read.crop)).person_id
7
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from safecity.errors import EnrolmentError
from safecity.events import PLATE_TEXT_MAX, PlateRead, plate_key
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.identity.matcher import GalleryEntry
from safecity.identity.watchlists import WatchlistInfo, get_watchlist
from safecity.store.db import Store
from safecity.store.queries import plate_neighbours
from safecity.store.schema import ListedPlate, Person, Watchlist
from safecity.vision.plate_formats import formats_for, normalise
from safecity.vision.types import Match


@dataclass(frozen=True)
class ListingResult:
    """What one listing stored."""

    person_id: int
    name: str
    plate: str  # normalised, as matched
    watchlist_id: int
    watchlist_name: str
    added: bool  # False: this plate was already listed under this name


def listed_plate_text(text: str, countries: Sequence[str]) -> str:
    """A plate typed by an operator, normalised as reads are; EnrolmentError if it is none.

    >>> listed_plate_text("oy09 feu", ["GB"])
    'OY09FEU'
    """
    key = plate_key(text or "")
    if not key:
        raise EnrolmentError("give the licence plate to list (letters and digits)")
    if len(key) > PLATE_TEXT_MAX:
        raise EnrolmentError(
            f"'{text}' is not a licence plate: longer than any plate ({PLATE_TEXT_MAX} characters)"
        )
    fitted = normalise(key, formats_for(countries))
    if fitted is None:
        raise EnrolmentError(
            f"'{text}' is not a licence plate of the configured countries "
            f"({', '.join(countries)}: plates.countries)"
        )
    return fitted


def check_kind(info: WatchlistInfo, kind: str) -> None:
    """Refuse to put a face on a plate watchlist, or a plate on a face watchlist."""
    if info.kind == kind:
        return
    if kind == "plate":
        raise EnrolmentError(
            f"watchlist '{info.name}' lists faces, not licence plates; list plates on a "
            "watchlist created with --kind plate"
        )
    raise EnrolmentError(
        f"watchlist '{info.name}' lists licence plates, not faces; enrol photos on a face watchlist"
    )


def add_plate(
    store: Store,
    watchlist: str,
    plate: str,
    *,
    name: str,
    by: str,
    countries: Sequence[str],
    clock: Clock = SYSTEM_CLOCK,
) -> ListingResult:
    """List ``plate`` on the plate watchlist ``watchlist`` as ``name`` (what and why); audited.

    Refused (:class:`EnrolmentError`, :class:`AuthorisationError`, or
    :class:`~safecity.identity.watchlists.WatchlistError`): a face watchlist, an
    authorisation refused, revoked or expired, an empty or malformed plate, no name.
    """
    from safecity.identity.enrol import check_authorisation

    by = audit.check_actor(by)
    name = (name or "").strip()
    if not name:
        raise EnrolmentError(
            'say what the listed vehicle is and why (--name "stolen silver Skoda, case 4411")'
        )
    info = get_watchlist(store, watchlist, clock=clock)
    check_kind(info, "plate")
    now = clock.now()
    check_authorisation(info, now, "listing")
    text = listed_plate_text(plate, countries)
    with store.transaction(write=True) as session:
        row = session.scalar(
            select(Person).where(Person.watchlist_id == info.id, Person.name == name)
        )
        if row is None:
            row = Person(name=name, watchlist_id=info.id, enrolled_by=by, created_at=now)
            session.add(row)
            session.flush()
        elif row.removed_at is not None:  # listed again after a removal
            row.removed_at = None
            row.enrolled_by = by
        added = text not in {p.plate for p in row.plates}
        if added:
            session.add(ListedPlate(person_id=row.id, plate=text, enrolled_by=by, created_at=now))
            session.flush()
        audit.append(
            session,
            at=now,
            actor=by,
            action="enrolment.add_plate",
            object=f"person:{row.id}",
            details={
                "person_id": row.id,
                "watchlist": info.name,
                "plate": text,
                "added": added,
            },
        )
        return ListingResult(row.id, name, text, info.id, info.name, added)


def load_listed_plates(
    store: Store, watchlist_ids: Iterable[int]
) -> list[tuple[str, GalleryEntry]]:
    """Every plate listed on these watchlists (persons not removed), with whose it is."""
    ids = list(watchlist_ids)
    if not ids:
        return []
    query = (
        select(ListedPlate.plate, Person.id, Person.name, Watchlist.id, Watchlist.name)
        .join(Person, ListedPlate.person_id == Person.id)
        .join(Watchlist, Person.watchlist_id == Watchlist.id)
        .where(Watchlist.id.in_(ids), Watchlist.kind == "plate", Person.removed_at.is_(None))
        .order_by(Watchlist.id, Person.id, ListedPlate.id)
    )
    with store.transaction() as session:
        return [
            (plate, GalleryEntry(pid, pname, wid, wname))
            for plate, pid, pname, wid, wname in session.execute(query)
        ]


def delete_listed_plates(session: Session, persons: ColumnElement[bool]) -> int:
    """Delete the listed plates of the persons ``persons`` selects (``Person.id.in_(...)``
    style, on ``ListedPlate.person_id``); how many went."""
    result = session.execute(
        delete(ListedPlate).where(persons), execution_options={"synchronize_session": False}
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class PlateMatcher:
    """Matches a vehicle's plate read against listed plates (exact, or ``max_edits`` 1 away).

    The match's score is the read's confidence; its margin 1.0 when one listed
    vehicle is hit, else how many more edits the next hit needed (0: two entries
    list the same plate; the first listed is named, reviewers see both lists).
    """

    def __init__(self, listed: Iterable[tuple[str, GalleryEntry]], max_edits: int = 0) -> None:
        if max_edits not in (0, 1):
            raise ValueError("plates.match_max_edits is 0 (the same plate) or 1 (one edit away)")
        self.max_edits = max_edits
        self._by_plate: dict[str, list[GalleryEntry]] = {}
        for plate, entry in listed:
            self._by_plate.setdefault(plate, []).append(entry)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_plate.values())

    def match(self, read: PlateRead) -> Match | None:
        """The listed vehicle ``read`` is, or None."""
        text = plate_key(read.text)
        hits = [(0, e) for e in self._by_plate.get(text, [])]
        if self.max_edits:
            hits += [
                (1, e)
                for near in sorted(plate_neighbours(text) - {text})
                for e in self._by_plate.get(near, [])
            ]
        persons: dict[int, tuple[int, GalleryEntry]] = {}
        for edits, entry in hits:  # one person with two plates is one hit
            persons.setdefault(entry.person_id, (edits, entry))
        if not persons:
            return None
        ranked = sorted(persons.values(), key=lambda h: (h[0], h[1].watchlist_id, h[1].person_id))
        edits, best = ranked[0]
        margin = 1.0 if len(ranked) == 1 else float(ranked[1][0] - edits)
        return Match(
            person_id=best.person_id,
            person_name=best.person_name,
            watchlist_id=best.watchlist_id,
            watchlist_name=best.watchlist_name,
            score=float(read.confidence),
            margin=margin,
        )
