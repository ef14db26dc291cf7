"""The retention thread of ``safecity run``: periodic runs and signed heads, failures survived."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from clock_support import needs_real_timed_waits
from governance_support import DAY, make_event

from safecity.config import SafecityConfig
from safecity.governance.audit import HeadSigner, list_records, read_heads
from safecity.governance.scheduler import RetentionScheduler
from safecity.store import Store, open_store
from safecity.store.schema import EventRecord
from safecity.store.sink import StoreSink

pytestmark = needs_real_timed_waits  # the scheduler waits on stop_event.wait(interval)


def _config(retention_s: float, sign_s: float) -> SafecityConfig:
    return SafecityConfig.model_validate(
        {"retention": {"interval_s": retention_s}, "audit": {"sign_interval_s": sign_s}}
    )


def _signer(tmp_path: Path) -> HeadSigner:
    return HeadSigner(tmp_path / "audit" / "key.pem", tmp_path / "audit" / "heads.jsonl")


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the scheduler did not get there in time"
        time.sleep(0.01)


def test_runs_retention_and_signs_periodically(store: Store, clock, portrait, tmp_path):
    old = StoreSink(store, clock).write(make_event(portrait, start=clock.now() - 40 * DAY))
    signer = _signer(tmp_path)
    scheduler = RetentionScheduler(store, _config(0.05, 0.05), signer, clock, threading.Event())
    scheduler.start()
    _until(lambda: scheduler.runs >= 3 and scheduler.signs >= 3)
    with store.transaction() as session:
        assert session.get(EventRecord, old) is None
    assert scheduler.last_report is not None and scheduler.failures == 0
    scheduler.stop()
    scheduler.join(5)
    assert not scheduler.running
    runs = list_records(store, action="retention.run", limit=10_000)
    assert len(runs) == scheduler.runs
    assert runs[-1].details["events"] == 1  # the first run deleted it
    heads = read_heads(signer.heads_path)
    assert heads and heads[-1].id == runs[0].id  # signed at stop: the newest record is covered
    assert signer.verify(store).ok


def test_signs_at_start_and_stop_and_stops_at_once(sqlite_store: Store, clock, tmp_path):
    signer = _signer(tmp_path)
    stop = threading.Event()
    scheduler = RetentionScheduler(sqlite_store, _config(3600, 3600), signer, clock, stop)
    scheduler.start()
    _until(lambda: scheduler.runs == 1 and scheduler.signs == 1)
    assert len(read_heads(signer.heads_path)) == 1
    started = time.monotonic()
    stop.set()  # the shared stop event of safecity run
    scheduler.join(5)
    assert not scheduler.running and time.monotonic() - started < 2
    assert (scheduler.runs, scheduler.signs) == (1, 2)


def test_a_database_away_is_logged_and_retried(tmp_path, clock, caplog):
    folder = tmp_path / "db"
    store = open_store(f"sqlite:///{folder / 'safecity.db'}", tmp_path / "media")
    scheduler = RetentionScheduler(store, _config(0.05, 0.05), _signer(tmp_path), clock)
    caplog.set_level(logging.ERROR, logger="safecity.governance.scheduler")
    scheduler.start()
    try:
        _until(lambda: scheduler.runs >= 1)
        folder.rename(tmp_path / "away")  # the database disappears...
        store.engine.dispose()  # ...for every new connection
        failures = scheduler.failures
        _until(lambda: scheduler.failures >= failures + 3)
        assert scheduler.running
        assert "cannot" in scheduler.last_error or "failed" in scheduler.last_error
        assert any("retrying at the next interval" in r.getMessage() for r in caplog.records)

        (tmp_path / "away").rename(folder)  # ...and comes back
        store.engine.dispose()
        runs = scheduler.runs
        _until(lambda: scheduler.runs >= runs + 2)
    finally:
        scheduler.stop()
        scheduler.join(5)
        store.close()
    assert not scheduler.running
