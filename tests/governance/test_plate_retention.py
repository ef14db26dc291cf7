"""Plate reads of vehicles that match nothing: kept as long as the event, or shorter.

Real stores (SQLite and PostgreSQL), real plate crops (the OpenALPR EU photos),
a ManualClock moved past each limit.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from governance_support import DAY, HOUR
from plate_support import labelled_plate, vehicle_event

from safecity.config import SafecityConfig
from safecity.governance.audit import list_records
from safecity.governance.retention import run_retention
from safecity.store import Store
from safecity.store.queries import get_event
from safecity.store.sink import StoreSink


def shorter(days: float) -> SafecityConfig:
    config = SafecityConfig()
    config.plates.retention_days = days
    return config


@pytest.fixture
def car(store: Store, clock, data_dir: Path) -> int:
    """A car whose plate M5XSX was read, stored now (the clock's time)."""
    event = vehicle_event(labelled_plate(data_dir, "eu1"), start=clock.now())
    return StoreSink(store, clock).write(event)


def crop_file(store: Store, event_id: int) -> Path:
    row = get_event(store, event_id)
    assert row is not None and row.plate_crop_path is not None
    return store.media.path(row.plate_crop_path)


def test_a_shorter_plate_retention_clears_the_read_and_keeps_the_event(store, clock, car):
    crop = crop_file(store, car)
    assert crop.exists()
    clock.advance(6 * DAY + 23 * HOUR)
    assert run_retention(store, shorter(7), clock=clock).plates == 0
    assert get_event(store, car).plate_text == "M5XSX" and crop.exists()

    clock.advance(2 * HOUR)
    report = run_retention(store, shorter(7), clock=clock)
    assert (report.plates, report.events) == (1, 0)
    row = get_event(store, car)
    assert row is not None and row.label == "car"  # the event stays
    assert (row.plate_text, row.plate_confidence, row.plate_crop_path) == (None, None, None)
    assert not crop.exists()
    # On record, with the other retention counts.
    (record,) = list_records(store, action="retention.run", newest_first=True, limit=1)
    assert record.details["plates"] == 1 and record.details["files"] >= 1
    assert run_retention(store, shorter(7), clock=clock).plates == 0  # nothing left to do


def test_by_default_the_read_goes_with_its_event(store, clock, car):
    crop = crop_file(store, car)
    clock.advance(29 * DAY)
    report = run_retention(store, SafecityConfig(), clock=clock)
    assert report.plates == 0 and get_event(store, car).plate_text == "M5XSX"
    assert crop.exists()  # the snapshot went after 72 h; the plate read stays with the row
    clock.advance(DAY + HOUR)
    assert run_retention(store, SafecityConfig(), clock=clock).events == 1
    assert get_event(store, car) is None and not crop.exists()
    # A longer plate setting changes nothing: the row is what holds the read.
    assert shorter(60).plates.retention_days == 60


def test_the_orphan_sweep_keeps_a_crop_its_row_refers_to(store, clock, car):
    crop = crop_file(store, car)
    old = (datetime.now(UTC) - timedelta(days=1)).timestamp()
    os.utime(crop, (old, old))  # older than the grace, on the machine's clock
    assert run_retention(store, SafecityConfig(), clock=clock).orphans == 0
    assert crop.exists()
