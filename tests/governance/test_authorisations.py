"""Authorisations: two users to activate, emergency use with its deadline, renewal,
and the single rule that decides whether a watchlist may be searched."""

from __future__ import annotations

import pytest
from governance_support import (
    DAY,
    HOUR,
    add_person,
    authorised_watchlist,
    make_event,
    stored_match,
    unit,
)
from sqlalchemy import select

from safecity.errors import AuthorisationError
from safecity.governance.audit import list_records, verify
from safecity.governance.authorisations import (
    approve,
    file_request,
    get_authorisation,
    list_authorisations,
    propose,
    refuse,
    revoke,
    start_emergency,
)
from safecity.identity.watchlists import create_watchlist, get_watchlist
from safecity.store import Store
from safecity.store.schema import EventRecord
from safecity.store.sink import StoreSink
from safecity.vision.types import Match


def _proposal(store: Store, clock, **overrides):
    fields = dict(
        by="alice",
        legal_basis="Police Act s.12",
        authority="District Court",
        reference="DC-1",
        purpose="find missing persons",
        valid_from=clock.now(),
        valid_until=clock.now() + DAY,
        cameras=["gate-1"],
        evidence_days=30,
        clock=clock,
    )
    fields.update(overrides)
    return propose(store, **fields)


def test_activation_takes_two_different_users(store: Store, clock) -> None:
    proposed = _proposal(store, clock)
    assert proposed.status == "proposed" and not proposed.allows("gate-1", clock.now())
    with pytest.raises(AuthorisationError, match="a different user must approve"):
        approve(store, proposed.id, by="alice", clock=clock)
    active = approve(store, proposed.id, by="bob", clock=clock)
    assert (active.status, active.proposed_by, active.decided_by) == ("active", "alice", "bob")
    assert active.allows("gate-1", clock.now())
    assert not active.allows("gate-2", clock.now())  # out of scope
    assert not active.allows("gate-1", clock.now() + DAY)  # [from, until)
    with pytest.raises(AuthorisationError, match="only a proposal can be approved"):
        approve(store, proposed.id, by="carol", clock=clock)
    actions = [r.action for r in list_records(store, newest_first=False)]
    assert actions == ["authorisation.propose", "authorisation.approve"]
    assert verify(store).ok


def test_proposals_need_every_field(store: Store, clock) -> None:
    for field in ("legal_basis", "authority", "reference", "purpose"):
        with pytest.raises(AuthorisationError, match="an authorisation needs"):
            _proposal(store, clock, **{field: "  "})
    with pytest.raises(AuthorisationError, match="end after it starts"):
        _proposal(store, clock, valid_until=clock.now() - HOUR)
    with pytest.raises(AuthorisationError, match="whole number of days"):
        _proposal(store, clock, evidence_days=0)
    assert list_authorisations(store) == [] and list_records(store) == []


def test_refused_and_revoked_never_match(store: Store, clock) -> None:
    refused = refuse(
        store, _proposal(store, clock).id, by="bob", reason="no legal basis", clock=clock
    )
    assert refused.status == "refused" and not refused.allows("gate-1", clock.now())
    with pytest.raises(AuthorisationError, match="only a proposal can be approved"):
        approve(store, refused.id, by="carol", clock=clock)
    active = approve(store, _proposal(store, clock).id, by="bob", clock=clock)
    revoked = revoke(store, active.id, by="alice", reason="person found", clock=clock)
    assert revoked.status == "revoked" and not revoked.allows("gate-1", clock.now())
    with pytest.raises(AuthorisationError, match="already revoked"):
        revoke(store, active.id, by="alice", reason="again", clock=clock)


def test_an_expired_proposal_cannot_be_approved(store: Store, clock) -> None:
    proposed = _proposal(store, clock)
    clock.advance(2 * DAY)
    with pytest.raises(AuthorisationError, match="propose a new one"):
        approve(store, proposed.id, by="bob", clock=clock)


def test_emergency_use_matches_until_the_deadline_then_needs_approval(store: Store, clock) -> None:
    start = clock.now()
    use = start_emergency(
        store,
        by="alice",
        purpose="abducted child",
        reason="imminent danger to life",
        valid_until=start + 7 * DAY,
        cameras=None,
        deadline_h=24,
        clock=clock,
    )
    assert use.status == "emergency" and use.allows("any", start)
    assert use.allows("any", start + 23 * HOUR)
    assert not use.allows("any", start + 24 * HOUR)  # the request was never filed
    with pytest.raises(AuthorisationError, match="no filed request"):
        approve(store, use.id, by="bob", clock=clock)

    clock.advance(2 * HOUR)
    filed = file_request(
        store,
        use.id,
        by="bob",
        legal_basis="Police Act s.40",
        authority="Judge on duty",
        reference="URG-7",
        clock=clock,
    )
    assert (filed.request_filed_at, filed.filed_by) == (clock.now(), "bob")
    # Filed but not decided: the use still ends at the deadline.
    assert filed.allows("any", start + 23 * HOUR) and not filed.allows("any", start + 3 * DAY)
    for alone in ("alice", "bob"):  # who started it, who filed it
        with pytest.raises(AuthorisationError, match="a different user must approve"):
            approve(store, use.id, by=alone, clock=clock)
    approved = approve(store, use.id, by="carol", clock=clock)
    assert approved.status == "active" and approved.reference == "URG-7"
    assert approved.allows("any", start + 3 * DAY)


def test_the_request_cannot_be_filed_late(store: Store, clock) -> None:
    use = start_emergency(
        store,
        by="alice",
        purpose="p",
        reason="r",
        valid_until=clock.now() + 7 * DAY,
        cameras=None,
        deadline_h=24,
        clock=clock,
    )
    clock.advance(25 * HOUR)
    with pytest.raises(AuthorisationError, match="deadline .* passed"):
        file_request(
            store, use.id, by="alice", legal_basis="a", authority="b", reference="c", clock=clock
        )


def test_refusing_an_emergency_use_deletes_its_results(store: Store, clock, portrait) -> None:
    use = start_emergency(
        store,
        by="alice",
        purpose="p",
        reason="r",
        valid_until=clock.now() + 7 * DAY,
        cameras=None,
        deadline_h=24,
        clock=clock,
    )
    info = create_watchlist(store, "urgent", by="alice", authorisation=use.id, clock=clock)
    person = add_person(store, info.id, "John Roe", [unit(3)])
    match = Match(person, "John Roe", info.id, "urgent", 0.96, 0.1)
    event_id = StoreSink(store, clock).write(make_event(portrait, start=clock.now(), match=match))
    with store.transaction() as session:
        row = session.get(EventRecord, event_id)
        files = [store.media.path(p) for p in (row.snapshot_path, row.match_snapshot_path)]
    assert row.match_status == "candidate" and all(f.exists() for f in files)

    file_request(
        store, use.id, by="alice", legal_basis="a", authority="b", reference="c", clock=clock
    )
    refused = refuse(store, use.id, by="bob", reason="disproportionate", clock=clock)
    assert refused.status == "refused" and refused.results_deleted_at == clock.now()
    with store.transaction() as session:
        row = session.get(EventRecord, event_id)
    assert row.match_status == "annulled" and row.match_person_id is None
    assert row.match_score is None and row.snapshot_path is None
    assert not any(f.exists() for f in files)
    refusal = list_records(store, action="authorisation.refuse")[0]
    assert refusal.details["results_deleted"] == 1 and refusal.details["was"] == "emergency"
    assert verify(store).ok


def test_renewal_moves_the_watchlists(store: Store, clock) -> None:
    info = authorised_watchlist(store, clock, valid_until=clock.now() + DAY)
    renewal = _proposal(
        store, clock, renews=info.authorisation_id, valid_until=clock.now() + 30 * DAY, cameras=None
    )
    assert get_watchlist(store, info.id).authorisation_id == info.authorisation_id
    renewed = approve(store, renewal.id, by="carol", clock=clock)
    assert renewed.watchlists == ["wanted"]
    moved = get_watchlist(store, info.id)
    assert moved.authorisation_id == renewal.id and moved.covers("gate-1", clock.now() + 10 * DAY)
    assert get_authorisation(store, info.authorisation_id).watchlists == []
    approval = list_records(store, action="authorisation.approve")[0]
    assert approval.details["renewed_watchlists"] == ["wanted"]


def test_a_watchlist_without_approval_never_produces_a_match(store: Store, clock, portrait) -> None:
    """Even a perfect match (score 1.0) is dropped by the sink, images and all, and audited."""
    info = authorised_watchlist(store, clock, approved=False)
    person = add_person(store, info.id, "Jane Doe", [unit(1)])
    perfect = Match(person, "Jane Doe", info.id, info.name, 1.0, 1.0)
    event_id = StoreSink(store, clock).write(make_event(portrait, start=clock.now(), match=perfect))
    with store.transaction() as session:
        row = session.get(EventRecord, event_id)
    assert row.match_person_id is None and row.match_status is None
    assert row.snapshot_path is None and row.match_snapshot_path is None
    assert not any(p.is_file() for p in store.media.root.rglob("*"))
    refused = list_records(store, action="match.refused")
    assert len(refused) == 1 and "Jane Doe" not in str(refused[0].details)
    assert "does not allow it" in refused[0].details["reason"]


def test_a_match_is_a_candidate_with_its_evidence_audited(store: Store, clock, portrait) -> None:
    matched = stored_match(store, clock, portrait)
    with store.transaction() as session:
        row = session.scalars(select(EventRecord)).one()
    assert row.id == matched.event_id and row.match_status == "candidate"
    assert row.match_authorisation_id == matched.watchlist.authorisation_id
    (record,) = list_records(store, action="match")
    assert record.actor == "safecity" and record.object == f"event:{row.id}"
    assert record.details["input_snapshot"] == row.match_snapshot_path
    assert len(record.details["input_snapshot_sha256"]) == 64
    assert "authorisation" in record.details["reference_database"]
    assert record.details["score"] == pytest.approx(0.97)


def test_a_past_frame_time_cannot_reach_into_an_ended_window(store: Store, clock, portrait):
    """`analyze --start-time` inside an old window: the match is refused, since the
    authorisation must also hold when the match is made."""
    info = authorised_watchlist(store, clock)
    person = add_person(store, info.id, "Jane Doe", [unit(1)])
    frame_time = clock.now()
    clock.advance(3 * DAY)  # the window ended two days ago
    match = Match(person, "Jane Doe", info.id, info.name, 0.99, 0.3)
    event_id = StoreSink(store, clock).write(make_event(portrait, start=frame_time, match=match))
    with store.transaction() as session:
        row = session.get(EventRecord, event_id)
    assert row.match_status is None and row.snapshot_path is None
    (refused,) = list_records(store, action="match.refused")
    assert refused.details["reason"].endswith("does not allow it now")


def test_a_person_removed_meanwhile_loses_only_the_match(store: Store, clock, portrait) -> None:
    """The gallery may still hold a removed person for a few seconds: the match is refused,
    the other events of the batch are stored."""
    from safecity.identity.enrol import remove_person

    info = authorised_watchlist(store, clock)
    person = add_person(store, info.id, "Jane Doe", [unit(1)])
    remove_person(store, info.name, "Jane Doe", by="alice", reason="found", clock=clock)
    match = Match(person, "Jane Doe", info.id, info.name, 0.99, 0.3)
    plain = make_event(portrait, track_id=1, start=clock.now())
    matched = make_event(portrait, track_id=2, start=clock.now(), match=match)
    ids = StoreSink(store, clock).write_many([plain, matched])
    with store.transaction() as session:
        rows = [session.get(EventRecord, i) for i in ids]
    assert rows[0].snapshot_path and rows[1].match_person_id is None
    assert "removed" in list_records(store, action="match.refused")[0].details["reason"]
