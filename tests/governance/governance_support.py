"""Helpers for governance tests: authorised watchlists, people, events and matches.

Kept out of conftest.py so tests import them by a name no other test folder uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from event_support import still_event

from safecity.events import Event
from safecity.governance.authorisations import approve
from safecity.governance.clock import ManualClock
from safecity.identity.watchlists import WatchlistInfo, create_watchlist
from safecity.store import Store
from safecity.store.schema import Person, Template
from safecity.vision.types import Match

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def authorised_watchlist(
    store: Store,
    clock: ManualClock,
    name: str = "wanted",
    *,
    cameras=None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    evidence_days: int = 90,
    approved: bool = True,
    kind: str = "face",
) -> WatchlistInfo:
    """A watchlist (of ``kind``) proposed by 'alice' and (by default) approved by 'bob'."""
    info = create_watchlist(
        store,
        name,
        by="alice",
        legal_basis="Police Act s.12",
        authority="District Court",
        reference=f"DC-{name}",
        purpose="find missing persons",
        valid_from=valid_from or clock.now() - HOUR,
        valid_until=valid_until or clock.now() + DAY,
        cameras=cameras,
        evidence_days=evidence_days,
        clock=clock,
        kind=kind,
    )
    if approved:
        approve(store, info.authorisation_id, by="bob", clock=clock)
    return info


def add_person(
    store: Store, watchlist_id: int, name: str, vectors, *, by: str = "alice", embedder="dlib"
) -> int:
    """Store templates directly (enrolment from photos is tested in tests/identity)."""
    with store.transaction() as session:
        person = Person(name=name, watchlist_id=watchlist_id, enrolled_by=by)
        session.add(person)
        session.flush()
        for v in vectors:
            v = np.asarray(v, np.float32)
            session.add(
                Template(
                    person_id=person.id,
                    embedder=embedder,
                    dim=v.size,
                    vector=v.astype("<f4").tobytes(),
                    source_sha256="0" * 64,
                )
            )
        return person.id


def unit(seed: int, dim: int = 128) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def make_event(
    image: np.ndarray,
    *,
    camera: str = "gate-1",
    track_id: int = 1,
    start: datetime = T0,
    match: Match | None = None,
) -> Event:
    """An event whose snapshot (and match snapshot, with a match) is ``image``."""
    return still_event(
        image, start=start, camera=camera, track_id=track_id, match=match, match_snapshot=True
    )


@dataclass
class Matched:
    watchlist: WatchlistInfo
    person_id: int
    event_id: int


def stored_match(
    store: Store, clock: ManualClock, image: np.ndarray, *, person: str = "Jane Doe", **kw
) -> Matched:
    """A stored candidate match: watchlist approved, person enrolled by alice, event written."""
    from safecity.store.sink import StoreSink

    info = authorised_watchlist(store, clock, **kw)
    person_id = add_person(store, info.id, person, [unit(1)])
    match = Match(person_id, person, info.id, info.name, 0.97, 0.2)
    event_id = StoreSink(store, clock).write(make_event(image, start=clock.now(), match=match))
    return Matched(info, person_id, event_id)
