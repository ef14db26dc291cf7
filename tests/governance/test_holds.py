"""Legal holds: only confirmed matches, always a case, placing and releasing audited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from governance_support import HOUR, add_person, make_event, stored_match, unit

from safecity.governance.audit import list_records
from safecity.governance.authorisations import start_emergency
from safecity.governance.holds import HoldError, list_holds, place_hold, release_hold
from safecity.governance.review import review_match
from safecity.identity.watchlists import create_watchlist
from safecity.store import Store
from safecity.store.schema import LegalHold
from safecity.store.sink import StoreSink
from safecity.vision.types import Match


def _confirmed(store: Store, clock, image, **kw) -> int:
    matched = stored_match(store, clock, image, **kw)
    review_match(store, matched.event_id, by="carol", decision="confirm", clock=clock)
    review_match(store, matched.event_id, by="dave", decision="confirm", clock=clock)
    return matched.event_id


def test_place_and_release_are_audited(store: Store, clock, portrait):
    event_id = _confirmed(store, clock, portrait)
    hold = place_hold(store, event_id, case_ref=" CR-2026-117 ", by="carol", clock=clock)
    assert (hold.event_id, hold.case_ref, hold.placed_by, hold.placed_at) == (
        event_id,
        "CR-2026-117",
        "carol",
        clock.now(),
    )
    assert hold.active and list_holds(store) == [hold]

    clock.advance(HOUR)
    released = release_hold(store, hold.id, by="dave", reason="case closed", clock=clock)
    assert (released.released_by, released.released_at, released.active) == (
        "dave",
        clock.now(),
        False,
    )
    assert list_holds(store) == []
    assert list_holds(store, include_released=True) == [released]

    placed, gone = (
        list_records(store, action="hold.place")[0],
        list_records(store, action="hold.release")[0],
    )
    assert (placed.actor, placed.object) == ("carol", f"event:{event_id}")
    assert placed.details["case_ref"] == "CR-2026-117" and placed.details["hold"] == hold.id
    assert (gone.actor, gone.object) == ("dave", f"event:{event_id}")
    assert gone.details["reason"] == "case closed"


def test_only_confirmed_matches_can_be_held(store: Store, clock, portrait):
    candidate = stored_match(store, clock, portrait)
    with pytest.raises(HoldError, match="candidate match; only a confirmed match"):
        place_hold(store, candidate.event_id, case_ref="CR-1", by="carol", clock=clock)
    plain = StoreSink(store, clock).write(make_event(portrait, track_id=9))
    with pytest.raises(HoldError, match="not a match"):
        place_hold(store, plain, case_ref="CR-1", by="carol", clock=clock)
    review_match(store, candidate.event_id, by="carol", decision="reject", clock=clock)
    with pytest.raises(HoldError, match="rejected match"):
        place_hold(store, candidate.event_id, case_ref="CR-1", by="carol", clock=clock)
    with pytest.raises(HoldError, match="no event 9999"):
        place_hold(store, 9999, case_ref="CR-1", by="carol", clock=clock)
    assert list_holds(store, include_released=True) == []
    assert list_records(store, action="hold.place") == []


def test_a_hold_needs_a_case_and_a_release_a_reason(store: Store, clock, portrait):
    event_id = _confirmed(store, clock, portrait)
    with pytest.raises(HoldError, match="case reference"):
        place_hold(store, event_id, case_ref="  ", by="carol", clock=clock)
    hold = place_hold(store, event_id, case_ref="CR-1", by="carol", clock=clock)
    with pytest.raises(HoldError, match="already held for case CR-1"):
        place_hold(store, event_id, case_ref="CR-1", by="dave", clock=clock)
    other = place_hold(store, event_id, case_ref="CR-2", by="dave", clock=clock)
    assert [h.id for h in list_holds(store)] == [hold.id, other.id]
    with pytest.raises(HoldError, match="say why"):
        release_hold(store, hold.id, by="dave", reason="", clock=clock)
    release_hold(store, hold.id, by="dave", reason="case closed", clock=clock)
    with pytest.raises(HoldError, match="already released by dave"):
        release_hold(store, hold.id, by="erin", reason="again", clock=clock)
    with pytest.raises(HoldError, match="no legal hold 999"):
        release_hold(store, 999, by="erin", reason="x", clock=clock)
    assert len(list_records(store, action="hold.release")) == 1


def test_a_match_of_an_unfiled_emergency_use_cannot_be_held(store: Store, clock, portrait):
    auth = start_emergency(
        store,
        by="alice",
        purpose="find a missing child",
        reason="missing since this morning",
        valid_until=clock.now() + 10 * HOUR,
        cameras=None,
        clock=clock,
    )
    watchlist = create_watchlist(store, "urgent", by="alice", authorisation=auth.id, clock=clock)
    person = add_person(store, watchlist.id, "Jane Doe", [unit(1)])
    match = Match(person, "Jane Doe", watchlist.id, watchlist.name, 0.97, 0.2)
    event_id = StoreSink(store, clock).write(make_event(portrait, start=clock.now(), match=match))
    review_match(store, event_id, by="carol", decision="confirm", clock=clock)
    review_match(store, event_id, by="dave", decision="confirm", clock=clock)
    with pytest.raises(HoldError, match="request is not filed"):
        place_hold(store, event_id, case_ref="CR-1", by="carol", clock=clock)


def _cli(tmp_path: Path, db: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SAFECITY_HOME=str(tmp_path / "home"))
    command = [sys.executable, "-m", "safecity", "--db", db, "--media", str(tmp_path / "media")]
    return subprocess.run(
        [*command, "--user", "carol", *args], capture_output=True, text=True, env=env, timeout=120
    )


def _registered(group: str) -> bool:
    from safecity.cli import app

    return any(g.name == group for g in app.registered_groups)


@pytest.mark.skipif(not _registered("hold"), reason="the hold command group is not registered")
def test_hold_commands(sqlite_store: Store, clock, portrait, tmp_path):
    event_id = _confirmed(sqlite_store, clock, portrait)
    db = str(sqlite_store.engine.url)
    done = _cli(tmp_path, db, "hold", "place", str(event_id), "--case", "CR-7")
    assert done.returncode == 0, done.stderr
    with sqlite_store.transaction() as session:
        hold_id = session.query(LegalHold.id).scalar()
    assert f"hold {hold_id} placed on event {event_id}" in done.stdout
    listed = _cli(tmp_path, db, "hold", "list", "--json")
    assert '"case_ref": "CR-7"' in listed.stdout
    refused = _cli(tmp_path, db, "hold", "release", str(hold_id), "--reason", " ")
    assert refused.returncode == 2 and refused.stderr.startswith("error: ")
    assert _cli(tmp_path, db, "hold", "release", str(hold_id), "--reason", "done").returncode == 0
    assert list_holds(sqlite_store) == []
