"""Plate reads stored with their vehicle's event and found again, on both backends.

Real plates: the OpenALPR EU photos with their labelled plate boxes (plate_support).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import pytest
from alembic import command
from alembic.config import Config
from plate_support import labelled_plate, vehicle_event
from sqlalchemy import create_engine, text

from safecity.store import Store, open_store
from safecity.store.db import MIGRATIONS_DIR, StoreValueError
from safecity.store.queries import QueryError, count_events, get_event, list_events
from safecity.store.sink import StoreSink

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def stored(store: Store, data_dir: Path) -> dict[str, int]:
    """Three cars: M5XSX (eu1), GWAGEN (eu2) and WSQ3021 (eu8), and one car with no plate."""
    sink = StoreSink(store)
    ids = {}
    for i, name in enumerate(("eu1", "eu2", "eu8")):
        plate = labelled_plate(data_dir, name)
        event = vehicle_event(plate, start=T0 + timedelta(minutes=i), track_id=i + 1)
        ids[plate.text] = sink.write(event)
    unread = replace(event, track_id=9, plate=None, started_at=T0 + timedelta(minutes=9))
    ids["none"] = sink.write(unread)
    return ids


def plates(store: Store, query: str, *, fuzzy: bool = False) -> list[str | None]:
    return [r.plate_text for r in list_events(store, plate=query, fuzzy=fuzzy)]


def test_a_plate_read_is_stored_with_its_crop(store: Store, stored, data_dir: Path) -> None:
    row = get_event(store, stored["M5XSX"])
    assert row is not None and row.label == "car"
    assert (row.plate_text, row.plate_confidence) == ("M5XSX", pytest.approx(0.93))
    crop = store.media.read_image(row.plate_crop_path)
    truth = labelled_plate(data_dir, "eu1").crop
    assert crop.shape == truth.shape  # the labelled box, 203 x 46
    assert float(abs(crop.astype(int) - truth.astype(int)).mean()) < 8  # JPEG, not another image
    assert row.plate_crop_path != row.snapshot_path
    none = get_event(store, stored["none"])
    assert none is not None and (none.plate_text, none.plate_crop_path) == (None, None)


def test_exact_search_normalises_the_query(store: Store, stored) -> None:
    assert plates(store, "M5XSX") == ["M5XSX"]
    assert plates(store, " m5-xsx ") == ["M5XSX"]  # case, dashes and spaces ignored
    assert plates(store, "M5XSY") == []  # one off: not exact
    assert count_events(store, plate="gwagen") == 1


def test_fuzzy_search_finds_one_edit_away_not_two(store: Store, stored) -> None:
    assert plates(store, "M5XSX", fuzzy=True) == ["M5XSX"]
    assert plates(store, "M5X5X", fuzzy=True) == ["M5XSX"]  # S read as 5: changed
    assert plates(store, "M5XS", fuzzy=True) == ["M5XSX"]  # one left out
    assert plates(store, "WSQ30211", fuzzy=True) == ["WSQ3021"]  # one added
    assert plates(store, "M5X5Y", fuzzy=True) == []  # two changed
    assert plates(store, "GWAG", fuzzy=True) == []  # two left out
    assert plates(store, "WS03O21", fuzzy=True) == []  # Q/0 and 0/O: two


def test_search_refuses_a_query_with_nothing_to_search(store: Store, stored) -> None:
    with pytest.raises(QueryError, match="no letters or digits"):
        list_events(store, plate=" - ")


def test_the_sink_refuses_a_plate_it_cannot_keep(store: Store, data_dir: Path, media_files):
    plate = labelled_plate(data_dir, "eu1")
    sink = StoreSink(store)
    with pytest.raises(StoreValueError, match="a person event cannot carry a licence plate"):
        sink.write(vehicle_event(plate, start=T0, label="person"))
    with pytest.raises(StoreValueError, match="not a normalised plate"):
        sink.write(vehicle_event(plate, start=T0, text="m5 xsx"))
    assert media_files(store.media.root) == []  # refused before any file was written


def test_migration_0009_upgrades_a_database_with_events(backend_url: str, tmp_path: Path) -> None:
    """A database at 0008 with an event gets the plate columns; the event has no plate."""
    (tmp_path / "db").mkdir()  # the SQLite file's folder (open_store would make it)
    engine = create_engine(backend_url)
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        command.upgrade(config, "0008")
        connection.execute(
            text(
                "INSERT INTO events (uuid, camera, track_id, label, started_at, ended_at, "
                "best_score, frames, created_at) VALUES ('0' || :u, 'gate-1', 1, 'car', "
                ":t, :t, 0.8, 40, :t)"
            ),
            {"u": "a" * 31, "t": T0.replace(tzinfo=None)},
        )
    engine.dispose()
    store = open_store(backend_url, tmp_path / "media")
    try:
        (row,) = list_events(store)
        assert (row.label, row.plate_text, row.plate_confidence) == ("car", None, None)
        with store.engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar() == "0010"  # upgraded to the head
        assert list_events(store, plate="M5XSX") == []
    finally:
        store.close()


def test_crop_is_the_plate_not_the_photo(data_dir: Path) -> None:
    """The helper cuts the labelled box: the crop is far smaller than the photo."""
    plate = labelled_plate(data_dir, "eu8")
    assert plate.text == "WSQ3021" and plate.crop.shape[:2] == (69, 303)
    assert cv2.Laplacian(plate.crop, cv2.CV_64F).var() > 50  # characters, not a flat patch


def test_the_outbox_carries_the_plate_read_whole(data_dir: Path) -> None:
    """What a cluster worker's outbox writes: text, confidence, reads and the crop (PNG)."""
    import json

    import numpy as np

    from safecity.runtime.outbox import decode_event, encode_event

    event = vehicle_event(labelled_plate(data_dir, "eu8"), start=T0)
    back = decode_event(encode_event(event))
    assert back.plate is not None and event.plate is not None
    assert (back.plate.text, back.plate.confidence, back.plate.reads) == ("WSQ3021", 0.93, 5)
    assert np.array_equal(back.plate.crop, event.plate.crop)  # lossless
    older = json.loads(encode_event(replace(event, plate=None)))
    del older["plate"]  # an outbox file written before plates
    assert decode_event(json.dumps(older).encode()).plate is None
