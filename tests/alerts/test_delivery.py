"""Alerts over a real Mosquitto (username/password) and a real signing-checking endpoint.

Events and a match are written as the pipeline writes them (the store sink); the
match is confirmed by two reviewers through governance.review. What goes out, to
whom, signed how, audited how, and what a failure leaves behind.
"""

from __future__ import annotations

import json
import threading
import urllib.request

import numpy as np
import pytest
from alerts.alerts_support import PASSWORD, SECRET, USER, Subscriber, wait_for
from governance.governance_support import (
    T0,
    add_person,
    authorised_watchlist,
    make_event,
    unit,
)
from sqlalchemy import select

from safecity.alerts.dispatcher import AlertDispatcher
from safecity.alerts.payloads import SNAPSHOT_ROUTE
from safecity.alerts.sinks import AlertSinkError
from safecity.alerts.status import pending
from safecity.config import AlertsConfig, SafecityConfig
from safecity.governance.clock import ManualClock
from safecity.governance.review import review_match
from safecity.store.schema import AuditRecordRow
from safecity.store.sink import StoreSink
from safecity.vision.types import Match

IMAGE = np.full((64, 48, 3), 128, np.uint8)
IDENTITY_WORDS = ("Jane Doe", "person_id", "watchlist", "match_score", "vector", "embedding")


def _config(port: int, hook_url: str, authorisation: int) -> AlertsConfig:
    return AlertsConfig(
        public_url="https://safecity.example",
        mqtt=[{"name": "broker", "port": port, "username": USER, "password": PASSWORD}],
        webhooks=[
            {
                "name": "police",
                "url": hook_url,
                "secret": SECRET,
                "authorisations": [authorisation],
            },
            {"name": "public", "url": hook_url + "?public", "secret": SECRET},
        ],
    )


def _deliver_all(dispatcher: AlertDispatcher) -> None:
    for sink in dispatcher.sinks:
        while dispatcher.deliver(sink):
            pass


def test_events_candidates_and_confirmed_matches_go_where_they_may(store, broker, receiver):
    clock = ManualClock(T0)
    wanted = authorised_watchlist(store, clock)
    alerts = _config(broker.port, receiver.url, wanted.authorisation_id)
    subscriber = Subscriber(broker.port)
    dispatcher = AlertDispatcher(store, alerts)
    try:
        _deliver_all(dispatcher)  # cursors start at the heads: nothing yet
        assert receiver.received == []
        person = add_person(store, wanted.id, "Jane Doe", [unit(1)])
        sink = StoreSink(store, clock)
        plain_id = sink.write(make_event(IMAGE, camera="gate-1", track_id=1, start=T0))
        match = Match(person, "Jane Doe", wanted.id, wanted.name, 0.97, 0.2)
        match_id = sink.write(make_event(IMAGE, camera="gate-2", track_id=2, start=T0, match=match))
        _deliver_all(dispatcher)

        # Object events: Frigate's "end", with a snapshot link and no image bytes.
        events = receiver.bodies("end")
        assert len(events) == 4  # two events to each webhook
        after = {e["after"]["event_id"]: e["after"] for e in events}
        assert set(after) == {plain_id, match_id}
        plain = after[plain_id]
        assert plain["camera"] == "gate-1" and plain["label"] == "person"
        assert plain["track_id"] == 1 and plain["score"] == pytest.approx(0.8)
        assert plain["end_time"] - plain["start_time"] == pytest.approx(4.0)
        assert plain["snapshot_url"] == "https://safecity.example" + SNAPSHOT_ROUTE.format(
            event_id=plain_id
        )
        # The candidate: camera and event only, to every sink.
        reviews = receiver.bodies("review")
        assert len(reviews) == 2
        assert reviews[0]["event_id"] == match_id and reviews[0]["camera"] == "gate-2"
        for received in receiver.received:
            text = json.dumps(received.body)
            assert not any(word in text for word in IDENTITY_WORDS), text
            assert received.verified and not received.replay
        wait_for(lambda: len(subscriber.bodies("reviews")) == 1, 10, "the MQTT review")
        assert len(subscriber.bodies("events")) == 2
        assert subscriber.bodies("gate-2/person")[-1]["count"] == 1
        assert any(t == "safecity/available" and p == b"online" for t, p, _ in subscriber.messages)

        # Confirmed by two reviewers: identity to the bound sink only, and audited.
        review_match(store, match_id, by="carol", decision="confirm", clock=clock)
        _deliver_all(dispatcher)
        assert receiver.bodies("match") == []  # one confirmation is not a confirmed match
        review_match(store, match_id, by="dave", decision="confirm", clock=clock)
        _deliver_all(dispatcher)
        matches = receiver.bodies("match")
        assert len(matches) == 1
        assert matches[0]["person"] == "Jane Doe" and matches[0]["watchlist"] == wanted.name
        assert subscriber.bodies("matches") == []
        with store.transaction() as session:
            records = session.scalars(
                select(AuditRecordRow).where(AuditRecordRow.action == "alert.identity")
            ).all()
        assert [json.loads(r.details)["sink"] for r in records] == ["police"]
        assert records[0].object == f"event:{match_id}"
        assert "Jane" not in records[0].details

        # Delivered means nothing pending; another round sends nothing again.
        state = pending(store, SafecityConfig(alerts=alerts))
        assert {k: v["pending"] for k, v in state.items()} == {
            "broker": 0,
            "police": 0,
            "public": 0,
        }
        before = len(receiver.received)
        _deliver_all(dispatcher)
        assert len(receiver.received) == before
    finally:
        dispatcher.stop()
        subscriber.close()
    # Said goodbye: the retained availability is now offline.
    late = Subscriber(broker.port)
    wait_for(lambda: len(late.messages) > 0, 5, "the retained messages")
    assert ("safecity/available", b"offline", True) in late.messages
    late.close()


def test_a_replayed_webhook_is_detectable(store, receiver):
    alerts = AlertsConfig(webhooks=[{"name": "hook", "url": receiver.url, "secret": SECRET}])
    dispatcher = AlertDispatcher(store, alerts)
    _deliver_all(dispatcher)
    StoreSink(store).write(make_event(IMAGE))
    _deliver_all(dispatcher)
    assert [r.verified and not r.replay for r in receiver.received] == [True]
    headers, body = receiver.raw[0]
    sent = urllib.request.Request(receiver.url, data=body, headers=headers, method="POST")
    urllib.request.urlopen(sent, timeout=5).close()  # the same request, again
    assert receiver.received[-1].verified and receiver.received[-1].replay
    forged = urllib.request.Request(
        receiver.url, data=body.replace(b"person", b"car__x"), headers=headers, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=5)
    assert refused.value.code == 401
    dispatcher.stop()


def test_a_failing_endpoint_keeps_the_alert_pending_and_counts_the_failure(store, receiver):
    alerts = AlertsConfig(webhooks=[{"name": "hook", "url": receiver.url, "secret": SECRET}])
    config = SafecityConfig(alerts=alerts)
    dispatcher = AlertDispatcher(store, alerts)
    _deliver_all(dispatcher)
    StoreSink(store).write(make_event(IMAGE))
    receiver.status = 503
    with pytest.raises(AlertSinkError, match="HTTP 503"):
        dispatcher.deliver(dispatcher.sinks[0])
    assert pending(store, config)["hook"] == {
        "pending": 1,
        "failed": 1,
        "last_error": f"{receiver.url} answered HTTP 503 Service Unavailable",
    }
    receiver.status = 200
    _deliver_all(dispatcher)
    assert pending(store, config)["hook"]["pending"] == 0
    ids = [r.message_id for r in receiver.received]
    assert len(ids) == 2 and len(set(ids)) == 1  # the same message, retried with its id
    dispatcher.stop()


def test_two_dispatchers_on_one_database_never_both_send(store, receiver):
    alerts = AlertsConfig(webhooks=[{"name": "hook", "url": receiver.url, "secret": SECRET}])
    first, second = AlertDispatcher(store, alerts), AlertDispatcher(store, alerts)
    _deliver_all(first)
    StoreSink(store).write_many(make_event(IMAGE, track_id=i) for i in range(30))
    threads = [threading.Thread(target=_deliver_all, args=(d,)) for d in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ids = [r.message_id for r in receiver.received]
    assert len(ids) == 30 and len(set(ids)) == 30
    first.stop()
    _deliver_all(second)  # the lease was released: the second takes over at once
    assert len(receiver.received) == 30
