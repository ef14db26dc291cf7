"""``safecity run`` of the real pedestrians clip with an MQTT broker and a webhook configured:
every stored event arrives over both, in the documented shape, signed (slow: real models)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alerts.alerts_support import PASSWORD, SECRET, USER, Subscriber, wait_for
from sqlalchemy import select

from safecity.store import open_store
from safecity.store.schema import AlertCursor, EventRecord

EVENT_KEYS = {
    "id",
    "event_id",
    "camera",
    "label",
    "sub_label",
    "track_id",
    "start_time",
    "end_time",
    "started_at",
    "ended_at",
    "score",
    "top_score",
    "frames",
    "has_snapshot",
    "has_clip",
    "snapshot_url",
}


@pytest.mark.slow
def test_events_of_a_real_clip_arrive_over_mqtt_and_webhook(
    tmp_path: Path, data_dir: Path, broker, receiver
):
    video = data_dir / "video" / "pedestrians-768x576.avi"
    config = tmp_path / "safecity.yaml"
    config.write_text(
        "cameras:\n"
        f"  - {{name: campus, url: '{video}', fps: 5}}\n"
        f"store: {{url: 'sqlite:///{tmp_path / 'safecity.db'}', "
        f"media_dir: '{tmp_path / 'media'}'}}\n"
        f"outbox: {{dir: '{tmp_path / 'outbox'}'}}\n"
        "alerts:\n"
        "  public_url: 'https://safecity.example'\n"
        f"  mqtt: [{{name: broker, port: {broker.port}, username: {USER}, password: {PASSWORD}}}]\n"
        f"  webhooks: [{{name: hook, url: '{receiver.url}', secret: {SECRET}}}]\n"
    )
    subscriber = Subscriber(broker.port)
    env = dict(os.environ, SAFECITY_HOME=str(tmp_path / "home"), COLUMNS="200")
    run = subprocess.run(
        [sys.executable, "-m", "safecity", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    store = open_store(f"sqlite:///{tmp_path / 'safecity.db'}", tmp_path / "media")
    with store.transaction() as session:
        events = session.scalars(select(EventRecord).order_by(EventRecord.id)).all()
        uuids = [e.uuid for e in events]
        cursors = {c.sink: c.last_id for c in session.scalars(select(AlertCursor))}
    store.close()
    assert len(uuids) >= 3, "the clip should give several events"
    assert cursors == {"broker": events[-1].id, "hook": events[-1].id}

    hooked = receiver.bodies("end")
    assert sorted(b["after"]["id"] for b in hooked) == sorted(uuids)
    assert all(r.verified and not r.replay for r in receiver.received)
    wait_for(lambda: len(subscriber.bodies("events")) >= len(uuids), 10, "the MQTT events")
    published = subscriber.bodies("events")
    assert sorted(b["after"]["id"] for b in published) == sorted(uuids)
    for body in published + hooked:
        assert body["type"] == "end" and body["before"] == body["after"]
        assert set(body["after"]) == EVENT_KEYS
        after = body["after"]
        assert after["camera"] == "campus" and after["end_time"] >= after["start_time"]
        if after["has_snapshot"]:
            assert after["snapshot_url"] == (
                f"https://safecity.example/api/v1/events/{after['event_id']}/snapshot.jpg"
            )
    # Per camera order: events go out in id order, so by end of track within the camera.
    assert [b["after"]["event_id"] for b in published] == sorted(
        b["after"]["event_id"] for b in published
    )
    labels = {e["after"]["label"] for e in published}
    for label in labels:
        counts = subscriber.bodies(f"campus/{label}")
        assert counts and counts[-1]["count"] >= 1
    subscriber.close()
    print(f"clip: {len(uuids)} events, {len(subscriber.messages)} MQTT messages")
