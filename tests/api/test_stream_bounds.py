"""GET /stream: a resume is bounded, identities sent are on record, a stream ends with
its session within about two seconds. On a real uvicorn server and a fixed clock."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import numpy as np
import pytest
from governance.governance_support import T0, make_event, stored_match
from test_stream import Messages, client, events_in, fast_stream, server  # noqa: F401

from safecity.access.users import set_password, update_user
from safecity.api.routers import stream
from safecity.governance.audit import list_records
from safecity.governance.clock import ManualClock
from safecity.store import Store
from safecity.store.sink import StoreSink


def test_a_resume_from_the_start_replays_only_the_recent_window(
    fast_stream,  # noqa: F811
    server,  # noqa: F811
    api_store: Store,
    clock: ManualClock,
    image: np.ndarray,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stream, "REPLAY_EVENTS", 5)
    sink = StoreSink(api_store, clock)
    old_start = T0 - stream.REPLAY_WINDOW - timedelta(minutes=5)
    old_match = stored_match(api_store, ManualClock(old_start), image, name="old").event_id
    old = [sink.write(make_event(image, start=old_start, track_id=i)) for i in range(10)]
    recent = [
        sink.write(make_event(image, start=T0 - timedelta(minutes=50 - i), track_id=i))
        for i in range(8)
    ]
    match = stored_match(api_store, clock, image).event_id
    olga = client(server, "olga")
    with olga.stream("GET", "/api/v1/stream", headers={"Last-Event-ID": "0"}) as response:
        messages = Messages(response)
        got = events_in(messages.until(lambda m: m.get("event") == "health"))
    # The newest five within the window, oldest first; nothing older, whatever its id.
    assert [e["id"] for e in got] == recent[-4:] + [match]
    assert old_match not in [e["id"] for e in got] and not set(old) & {e["id"] for e in got}
    assert got[-1]["match"]["person"] == "Jane Doe"
    (shown,) = list_records(api_store, action="stream.matches")
    assert shown.actor == "olga" and shown.origin.startswith("api olga@")
    assert shown.details == {"events": [match], "first": True, "replay": True}


def test_identities_sent_live_are_on_record_before_they_are_sent(
    fast_stream,  # noqa: F811
    server,  # noqa: F811
    api_store: Store,
    clock: ManualClock,
    image: np.ndarray,
) -> None:
    olga, vic = client(server, "olga"), client(server, "vic")
    with (
        olga.stream("GET", "/api/v1/stream") as seeing,
        vic.stream("GET", "/api/v1/stream") as blind,
    ):
        operator, viewer = Messages(seeing), Messages(blind)
        operator.until(lambda m: m.get("event") == "health")
        viewer.until(lambda m: m.get("event") == "health")
        plain = StoreSink(api_store, clock).write(make_event(image, start=T0, track_id=7))
        first = stored_match(api_store, clock, image).event_id
        got = operator.until(lambda m: m.get("id") == str(first))
        records = list_records(api_store, action="stream.matches")
        assert [(r.actor, r.details["events"], r.details["first"]) for r in records] == [
            ("olga", [first], True)
        ]
        assert plain in [e["id"] for e in events_in(got)]
        second = stored_match(api_store, clock, image, name="second").event_id
        operator.until(lambda m: m.get("id") == str(second))
        viewer.until(lambda m: m.get("id") == str(second))
    records = sorted(list_records(api_store, action="stream.matches"), key=lambda r: r.id)
    assert [(r.actor, r.details["events"], r.details["first"]) for r in records] == [
        ("olga", [first], True),
        ("olga", [second], False),
    ]  # the viewer was shown no identity: nothing on record for vic


@pytest.mark.parametrize("ending", ["logout", "disabled", "password"])
def test_a_stream_ends_within_two_seconds_of_its_session(
    server,  # noqa: F811
    api_store: Store,
    ending: str,
) -> None:
    olga = client(server, "olga")
    with olga.stream("GET", "/api/v1/stream") as response:
        messages = Messages(response)
        messages.until(lambda m: m.get("event") == "health")
        if ending == "logout":
            csrf = olga.cookies["safecity_csrf"]
            other = httpx.Client(base_url=server.url, cookies=olga.cookies, timeout=5)
            assert other.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).is_success
        elif ending == "disabled":
            update_user(api_store, "olga", by="ada", disabled=True)
        else:
            set_password(api_store, "olga", "another horse battery staple", by="olga")
        ended = time.monotonic()
        with pytest.raises(AssertionError, match="the stream ended"):
            messages.until(lambda m: False, seconds=stream.HEALTH_S * 3)
        took = time.monotonic() - ended
    assert "signed out" in messages.comments
    assert took < 2.5, f"the stream went on {took:.1f} s after the session ended"
    assert json.dumps(messages.comments)  # read to the end
