"""list_events / count_events / get_event: filters, paging, joined names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from safecity.governance.authorisations import approve
from safecity.governance.clock import ManualClock
from safecity.identity.watchlists import create_watchlist
from safecity.store import Store
from safecity.store.queries import QueryError, count_events, get_event, list_events
from safecity.store.schema import Person
from safecity.store.sink import StoreSink
from safecity.vision.types import Match

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def filled(store: Store, portrait, make_event) -> dict[str, int]:
    """Six events on two cameras over six minutes; one matched 'Jane Doe'."""
    watchlist = create_watchlist(
        store,
        "missing",
        legal_basis="Police Act s.12",
        authority="District Court",
        reference="2024/117",
        valid_from=T0 - timedelta(days=1),
        valid_until=T0 + timedelta(days=30),
        cameras=None,
        purpose="find missing persons",
        by="alice",
        clock=ManualClock(T0),
    )
    approve(store, watchlist.authorisation_id, by="bob", clock=ManualClock(T0))
    with store.transaction() as session:
        person = Person(name="Jane Doe", watchlist_id=watchlist.id)
        session.add(person)
        session.flush()
        person_id = person.id
    match = Match(person_id, "Jane Doe", watchlist.id, "missing", score=0.97, margin=0.05)
    small = portrait[:120, :120]
    events = [
        make_event(small, camera="gate-1", track_id=1, label="person", start=T0),
        make_event(
            small, camera="gate-1", track_id=2, label="car", start=T0 + timedelta(minutes=1)
        ),
        make_event(
            small, camera="gate-2", track_id=1, label="person", start=T0 + timedelta(minutes=2)
        ),
        make_event(
            small,
            camera="gate-2",
            track_id=2,
            label="person",
            start=T0 + timedelta(minutes=3),
            match=match,
        ),
        make_event(
            small, camera="gate-1", track_id=3, label="bus", start=T0 + timedelta(minutes=4)
        ),
        make_event(
            small, camera="gate-2", track_id=3, label="car", start=T0 + timedelta(minutes=5)
        ),
    ]
    ids = StoreSink(store, ManualClock(T0)).write_many(events)
    return {"person_id": person_id, "matched_id": ids[3], "first_id": ids[0]}


def _tracks(rows) -> list[tuple[str, int]]:
    return [(r.camera, r.track_id) for r in rows]


def test_newest_first_with_all_fields(store: Store, filled) -> None:
    rows = list_events(store)
    assert len(rows) == 6
    assert [r.started_at for r in rows] == sorted((r.started_at for r in rows), reverse=True)
    first = rows[-1]
    assert first.id == filled["first_id"] and first.started_at == T0
    assert first.snapshot_file.is_file() and first.person_name is None


def test_filters(store: Store, filled) -> None:
    assert _tracks(list_events(store, camera="gate-1")) == [
        ("gate-1", 3),
        ("gate-1", 2),
        ("gate-1", 1),
    ]
    assert {r.label for r in list_events(store, label="car")} == {"car"}
    assert len(list_events(store, label="car")) == 2
    window = list_events(store, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
    assert _tracks(window) == [("gate-2", 1), ("gate-1", 2)]
    assert len(list_events(store, camera="gate-2", label="person")) == 2
    assert list_events(store, camera="nowhere") == []


def test_since_in_another_time_zone(store: Store, filled) -> None:
    tokyo = T0.astimezone(timezone(timedelta(hours=9)))
    assert len(list_events(store, since=tokyo + timedelta(minutes=4))) == 2


def test_person_filters_and_joined_names(store: Store, filled) -> None:
    by_name = list_events(store, person="Jane Doe")
    by_id = list_events(store, person=filled["person_id"])
    assert [r.id for r in by_name] == [r.id for r in by_id] == [filled["matched_id"]]
    row = by_name[0]
    assert (row.person_name, row.watchlist_name, row.match_score) == ("Jane Doe", "missing", 0.97)
    assert list_events(store, person="John Roe") == []
    assert len(list_events(store, matched=False)) == 5
    assert len(list_events(store, watchlist="missing")) == 1


def test_paging_ids_and_count(store: Store, filled) -> None:
    all_rows = list_events(store)
    page = list_events(store, limit=2, offset=2)
    assert [r.id for r in page] == [r.id for r in all_rows[2:4]]
    assert [r.id for r in list_events(store, ids=[filled["matched_id"]])] == [filled["matched_id"]]
    assert count_events(store) == 6 and count_events(store, camera="gate-1", label="bus") == 1
    assert count_events(store, person="Jane Doe") == 1
    assert get_event(store, filled["matched_id"]).person_name == "Jane Doe"
    assert get_event(store, 10_000) is None


def test_bad_arguments(store: Store) -> None:
    with pytest.raises(QueryError, match="timezone-aware"):
        list_events(store, since=datetime(2024, 5, 1))
    with pytest.raises(QueryError, match="limit"):
        list_events(store, limit=0)
    with pytest.raises(QueryError, match="offset"):
        list_events(store, offset=-1)
