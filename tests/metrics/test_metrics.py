"""Prometheus metrics on real parts: a real store, the real sink, a real run of a clip.

What they promise: the exposition parses with prometheus_client's own parser; its
stored-event counters equal the database's rows (an idempotent re-store counts
nothing, a write whose answer was lost counts once); the database's figures are read
at scrape time and a database that cannot be read never breaks a scrape.
"""

from __future__ import annotations

import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from governance.governance_support import T0, make_event, stored_match
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from safecity.config import SafecityConfig, WebhookSinkConfig
from safecity.events import Event, with_uuids
from safecity.governance.audit import HeadSigner
from safecity.governance.clock import ManualClock
from safecity.metrics import DatabaseCollector, ProcessMetrics
from safecity.store import Store, StoreError, open_store
from safecity.store.schema import EventRecord
from safecity.store.sink import StoreSink


def values(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value of every sample of an exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def stored_counts(store: Store) -> dict[tuple[str, str], int]:
    with store.transaction() as session:
        rows = session.execute(
            select(EventRecord.camera, EventRecord.label, func.count()).group_by(
                EventRecord.camera, EventRecord.label
            )
        ).all()
    return {(camera, label): int(n) for camera, label, n in rows}


def counted(text: str) -> dict[tuple[str, str], int]:
    return {
        (dict(labels)["camera"], dict(labels)["label"]): int(value)
        for (name, labels), value in values(text).items()
        if name == "safecity_events_stored_total" and value
    }


@pytest.fixture
def config(tmp_path: Path) -> SafecityConfig:
    config = SafecityConfig()
    config.store.url = f"sqlite:///{tmp_path / 'safecity.db'}"
    config.store.media_dir = tmp_path / "media"
    config.audit.key_path = tmp_path / "audit" / "key.pem"
    config.audit.heads_path = tmp_path / "audit" / "heads.jsonl"
    config.outbox.dir = tmp_path / "outbox"
    config.metrics.port = 0  # any free port: tests run side by side
    return config


@pytest.fixture
def store(config: SafecityConfig) -> Iterator[Store]:
    opened = open_store(config.store.url, config.store.media_dir)
    yield opened
    opened.close()


@pytest.fixture
def image(data_dir: Path) -> np.ndarray:
    return cv2.resize(cv2.imread(str(data_dir / "images" / "obama.jpg")), (64, 80))


def _events(image: np.ndarray, count: int, camera: str = "gate-1") -> list[Event]:
    made = [
        make_event(image, camera=camera, track_id=i + 1, start=T0 + timedelta(seconds=i))
        for i in range(count)
    ]
    return with_uuids(made, "run-1")


def test_a_re_store_counts_nothing(store: Store, image: np.ndarray) -> None:
    metrics = ProcessMetrics()
    write = metrics.counting(store, StoreSink(store).write_many)
    first = _events(image, 3)
    write(first)
    # The same three again (an outbox retry, a camera that restarted) and one new one.
    write([*first, *_events(image, 4)[3:]])

    assert counted(generate_latest(metrics.registry).decode()) == {("gate-1", "person"): 4}
    assert stored_counts(store) == {("gate-1", "person"): 4}


def test_a_write_whose_answer_was_lost_counts_once(store: Store, image: np.ndarray) -> None:
    """The database committed but the answer never came (a connection cut at commit):
    the retry finds the events stored, and they still count, once."""
    sink = StoreSink(store)
    answers = iter([False, True])

    def lossy(events: list[Event]) -> list[int]:
        ids = sink.write_many(events)
        if not next(answers):
            raise StoreError("the connection was lost at commit")
        return ids

    metrics = ProcessMetrics()
    write = metrics.counting(store, lossy)
    events = _events(image, 2, camera="gate-2")
    with pytest.raises(StoreError):
        write(events)
    write(events)

    assert counted(generate_latest(metrics.registry).decode()) == {("gate-2", "person"): 2}
    assert stored_counts(store) == {("gate-2", "person"): 2}


def test_database_figures_are_read_at_scrape_time(
    config: SafecityConfig, store: Store, image: np.ndarray
) -> None:
    clock = ManualClock(T0)
    stored_match(store, clock, image)  # a candidate, audited at T0
    signer = HeadSigner(config.audit.key_path, config.audit.heads_path)
    clock.advance(timedelta(seconds=30))
    signer.sign(store, clock)  # signed at T0 + 30 s
    clock.advance(timedelta(seconds=30))
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(store, config, clock=clock, cache_s=0))

    figures = values(generate_latest(registry).decode())

    assert figures[("safecity_database_up", ())] == 1
    assert figures[("safecity_matches", (("status", "candidate"),))] == 1
    assert figures[("safecity_matches", (("status", "rejected"),))] == 0
    assert figures[("safecity_audit_head_age_seconds", ())] == 60
    assert figures[("safecity_audit_signed_head_age_seconds", ())] == 30
    assert figures[("safecity_audit_unsigned_records", ())] == 0
    # Something audited after the signature: one record the signed head does not cover.
    stored_match(store, clock, image, person="John Roe", name="second")
    figures = values(generate_latest(registry).decode())
    assert figures[("safecity_matches", (("status", "candidate"),))] == 2
    assert figures[("safecity_audit_unsigned_records", ())] > 0
    assert figures[("safecity_audit_head_age_seconds", ())] == 0


def test_a_database_that_cannot_be_read_says_so_in_the_scrape(
    config: SafecityConfig, tmp_path: Path
) -> None:
    # A database file with no safecity tables: every read fails (a real driver error).
    broken = open_store(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "media", migrate=False)
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(broken, config, cache_s=0))
    try:
        figures = values(generate_latest(registry).decode())
    finally:
        broken.close()
    assert figures == {("safecity_database_up", ()): 0}


@pytest.mark.slow
def test_after_a_run_the_counters_equal_the_database(
    config: SafecityConfig, store: Store, data_dir: Path
) -> None:
    """A real run of the pedestrians clip (5 fps) in a CameraService, scraped over HTTP."""
    from safecity.config import CameraConfig
    from safecity.runtime.service import CameraService

    video = data_dir / "video" / "pedestrians-768x576.avi"
    config.cameras = [CameraConfig(name="campus", url=str(video), fps=5)]
    signer = HeadSigner(config.audit.key_path, config.audit.heads_path)
    service = CameraService(store, config, signer)
    service.start()
    try:
        service.wait()
        assert service.outbox is not None and service.outbox.flush(60.0)
        assert service.metrics.address is not None
        with urllib.request.urlopen(f"http://{service.metrics.address}/metrics") as answer:
            text = answer.read().decode()
    finally:
        service.stop()
    assert service.metrics.address is None  # the port is closed with the service

    figures = values(text)
    stats = service.stats[0]
    assert stored_counts(store), "the clip stores events"
    assert counted(text) == stored_counts(store)
    assert figures[("safecity_camera_frames_in_total", (("camera", "campus"),))] == stats.frames_in
    assert stats.frames_in > 0
    analysed = figures[("safecity_camera_frames_analysed_total", (("camera", "campus"),))]
    assert analysed == stats.frames_analysed
    # The detector stage ran once per analysed frame; every frame's lag was observed.
    assert figures[("safecity_stage_duration_seconds_count", (("stage", "detector"),))] == analysed
    assert figures[("safecity_frame_lag_seconds_count", (("camera", "campus"),))] == stats.frames_in
    assert figures[("safecity_outbox_events", (("outbox", "local"),))] == 0
    with store.transaction() as session:
        statuses = Counter(
            session.scalars(
                select(EventRecord.match_status).where(EventRecord.match_status.is_not(None))
            )
        )
    for status in ("candidate", "confirmed", "rejected"):
        assert figures[("safecity_matches", (("status", status),))] == statuses[status]
    assert figures[("safecity_database_up", ())] == 1


def test_alert_sinks_appear_once_alert_status_exists(config: SafecityConfig, store: Store) -> None:
    """Pending and failed alerts per configured sink (``safecity.alerts.status.pending``)."""
    pytest.importorskip("safecity.alerts.status", reason="alert sinks are not built yet")
    config.alerts.webhooks = [
        WebhookSinkConfig(name="ops", url="http://127.0.0.1:9/", secret="s" * 16)
    ]
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(store, config, cache_s=0))

    figures = values(generate_latest(registry).decode())

    assert figures[("safecity_alerts_pending", (("sink", "ops"),))] == 0
    assert figures[("safecity_alerts_failed", (("sink", "ops"),))] == 0
