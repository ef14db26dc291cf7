"""Camera health in the database, and the reporter thread that writes it."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from clock_support import needs_real_timed_waits

from safecity.runtime.local import CameraStats, HealthReporter
from safecity.store import Store, StoreError
from safecity.store.health import CameraHealth, read_health, report_health

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _stats(camera: str, **figures) -> CameraStats:
    stats = CameraStats(camera)
    for name, value in figures.items():
        setattr(stats, name, value)
    return stats


def test_report_twice_keeps_one_row_per_camera_with_the_new_figures(store: Store) -> None:
    gate = _stats("gate-1", state="running", frames_in=10, frames_analysed=5, events=1)
    gate.detector_ms = [10.0, 30.0, 20.0]
    assert report_health(store, [gate, _stats("lobby", state="starting")], "edge-1", T0) == 2

    gate.frames_in, gate.frames_analysed, gate.events, gate.reconnects = 50, 25, 3, 2
    gate.state, gate.lag_s, gate.last_error = "reconnecting", 1.5, "connection reset"
    gate.detector_ms.append(40.0)
    later = T0 + timedelta(seconds=5)
    assert report_health(store, [gate], "edge-2", later) == 1

    health = read_health(store)
    assert [h.camera for h in health] == ["gate-1", "lobby"]
    assert health[0] == CameraHealth(
        camera="gate-1",
        state="reconnecting",
        frames_in=50,
        frames_analysed=25,
        events=3,
        reconnects=2,
        detector_ms=pytest.approx(25.0),
        lag_s=pytest.approx(1.5),
        last_error="connection reset",
        host="edge-2",
        updated_at=later,
    )
    assert (health[1].state, health[1].frames_in, health[1].updated_at) == ("starting", 0, T0)
    assert health[1].host == "edge-1"


def test_read_health_filters_by_camera(store: Store) -> None:
    report_health(store, [_stats(n, state="running") for n in ("c", "a", "b")], "h", T0)
    assert [h.camera for h in read_health(store, ["b", "a", "zz"])] == ["a", "b"]
    assert [h.camera for h in read_health(store, {"c"})] == ["c"]
    assert read_health(store, []) == []
    assert [h.camera for h in read_health(store)] == ["a", "b", "c"]


def test_any_stats_like_object_and_odd_values(store: Store) -> None:
    class Figures:
        camera = "plain"
        state = "a-state-much-longer-than-sixteen"
        frames_in = 3
        frames_analysed = 2
        events = 0
        reconnects = 0
        detector_ms = 12.5  # a number, not a list of timings
        lag_s = float("nan")
        last_error = ""

    assert report_health(store, [Figures()], "h" * 300, T0) == 1
    [health] = read_health(store, ["plain"])
    assert health.detector_ms == 12.5 and health.lag_s == 0.0
    assert len(health.state) == 16 and len(health.host) == 256
    assert report_health(store, [], "h", T0) == 0
    with pytest.raises(ValueError, match="naive"):
        report_health(store, [Figures()], "h", datetime(2024, 5, 1))


@needs_real_timed_waits  # the reporter waits on stop.wait(interval_s)
def test_the_reporter_reports_periodically_and_once_more_on_stop(store: Store) -> None:
    gate = _stats("gate-1", state="running")
    reporter = HealthReporter(store, {"gate-1": gate}.values(), interval_s=0.05, host="edge")
    reporter.start()
    deadline = time.monotonic() + 10
    while reporter.reports < 3 and time.monotonic() < deadline:
        gate.frames_in += 1
        time.sleep(0.02)
    assert reporter.reports >= 3
    [running] = read_health(store)
    assert running.state == "running" and running.host == "edge"

    gate.state, gate.frames_in = "stopped", 1234
    reporter.stop()
    assert not reporter._thread.is_alive()
    [final] = read_health(store)
    assert (final.state, final.frames_in) == ("stopped", 1234)
    assert final.updated_at >= running.updated_at


@needs_real_timed_waits  # its ticks and calls.wait(10) are timed waits
def test_a_failing_database_is_logged_not_raised(store: Store, monkeypatch, caplog) -> None:
    calls = threading.Event()
    tries = []

    def down(*args, **kwargs):
        tries.append(1)
        if len(tries) >= 3:
            calls.set()
        raise StoreError("the database at sqlite:///x failed: disk I/O error")

    monkeypatch.setattr("safecity.runtime.local.report_health", down)
    reporter = HealthReporter(store, lambda: [_stats("gate-1")], interval_s=0.02, host="edge")
    with caplog.at_level(logging.WARNING, logger="safecity.runtime.local"):
        reporter.start()
        assert calls.wait(10)  # three failing ticks: one warning, the thread still alive
        assert reporter._thread.is_alive()
        reporter.stop()
    assert reporter.reports == 0
    warnings = [r for r in caplog.records if "camera health not reported" in r.getMessage()]
    assert len(warnings) == 1 and "disk I/O error" in warnings[0].getMessage()

    monkeypatch.undo()  # the database is back: the next report goes through
    assert reporter.report() and read_health(store)[0].camera == "gate-1"


def test_the_reporter_refuses_a_zero_interval(store: Store) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        HealthReporter(store, [], interval_s=0)
