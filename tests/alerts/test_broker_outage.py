"""The broker killed (kill -9) for 60 s while events keep being stored: once it is back,
every alert arrives at the subscriber, at least once, and none is missing (slow)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest
from alerts.alerts_support import PASSWORD, USER, Subscriber, wait_for
from governance.governance_support import make_event
from sqlalchemy import select

from safecity.alerts.dispatcher import AlertDispatcher
from safecity.alerts.status import pending
from safecity.config import AlertsConfig, SafecityConfig
from safecity.store.schema import EventRecord
from safecity.store.sink import StoreSink

OUTAGE_S = 60.0
IMAGE = np.full((64, 48, 3), 128, np.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("backend_url", ["sqlite"], indirect=True)  # the broker is the subject
def test_a_broker_down_for_60_s_loses_no_alert(store, broker):
    alerts = AlertsConfig(
        mqtt=[{"name": "broker", "port": broker.port, "username": USER, "password": PASSWORD}],
        retry_initial_s=0.2,
        retry_max_s=2.0,
    )
    config = SafecityConfig(alerts=alerts)
    subscriber = Subscriber(broker.port)
    dispatcher = AlertDispatcher(store, alerts, poll_s=0.1)
    dispatcher.start()
    writing = threading.Event()
    sink = StoreSink(store)

    def write() -> None:
        track = 0
        while not writing.is_set():
            track += 1
            sink.write(make_event(IMAGE, camera="gate-1", track_id=track))
            writing.wait(0.5)

    writer = threading.Thread(target=write)
    time.sleep(1.0)  # the dispatcher's cursors exist before the first event
    writer.start()
    try:
        wait_for(lambda: len(subscriber.bodies("events")) >= 3, 20, "the first alerts")
        broker.kill()  # mid-delivery: events keep coming
        time.sleep(OUTAGE_S / 2)
        state = pending(store, config)["broker"]
        assert state["pending"] > 0 and state["failed"] > 0, state
        print(f"during the outage: {state}")
        time.sleep(OUTAGE_S / 2)
        broker.start()
        time.sleep(2.0)
        writing.set()
        writer.join(10)
        with store.transaction() as session:
            uuids = set(session.scalars(select(EventRecord.uuid)))
        expected = {f"{u}:event" for u in uuids}
        wait_for(
            lambda: expected <= {b["message_id"] for b in subscriber.bodies("events")},
            60,
            "every event alert after the restart",
        )
        wait_for(lambda: pending(store, config)["broker"]["pending"] == 0, 10, "nothing pending")
    finally:
        writing.set()
        dispatcher.stop()
        subscriber.close()
    ids = Counter(b["message_id"] for b in subscriber.bodies("events"))
    assert set(ids) == expected  # none missing, nothing unknown
    duplicates = sum(n - 1 for n in ids.values())
    print(f"outage: {len(expected)} event alerts, {duplicates} duplicate(s) dropped by id")
