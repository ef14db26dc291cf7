"""The durable outbox on real files and a real SQLite store.

What it promises: an event is on disk (owner-only, pixelated, no face vector)
before ``put`` returns; the drainer stores it and forgets it; a database failure
keeps it until the database is back; a corrupt file is set aside; a full outbox
says so in a sentence; and a killed process's events are stored by its successor.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from clock_support import needs_real_timed_waits
from governance.governance_support import make_event as _event
from sqlalchemy import select, text

from safecity.events import Event, with_uuids
from safecity.runtime.outbox import Outbox, OutboxError, OutboxFull
from safecity.store import Store, open_store
from safecity.store.schema import EventRecord
from safecity.store.sink import StoreSink

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FACE = [420.0, 180.0, 700.0, 520.0]  # a box on obama.jpg's face; any box works
FAST = (0.05, 0.2)  # retry backoff for tests


@pytest.fixture(scope="module")
def portrait(data_dir: Path) -> np.ndarray:
    image = cv2.imread(str(data_dir / "images" / "obama.jpg"))
    assert image is not None
    return image


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'db' / 'safecity.db'}", tmp_path / "media")
    yield opened
    opened.close()


def events(image: np.ndarray, count: int, run: str = "run-1") -> list[Event]:
    """``count`` events of one run, each with the face box to pixelate."""
    made = []
    for i in range(count):
        event = _event(image, track_id=i + 1, start=T0 + timedelta(seconds=i))
        boxes = np.array([FACE], np.float32)
        made.append(replace(event, snapshot=replace(event.snapshot, redact_boxes=boxes)))
    return with_uuids(made, run)


def stored_uuids(store: Store) -> list[str]:
    with store.transaction() as session:
        return list(session.scalars(select(EventRecord.uuid).order_by(EventRecord.id)))


def waiting(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def test_put_keeps_events_on_disk_and_the_drainer_stores_them(
    tmp_path: Path, store: Store, portrait
) -> None:
    folder = tmp_path / "outbox" / "local"
    outbox = Outbox(folder, StoreSink(store).write_many, backoff_s=FAST)
    batch = events(portrait, 3)
    outbox.put(batch)
    # Acknowledged means on disk, before any drain.
    assert len(waiting(folder)) == 3
    assert outbox.backlog()[0] == 3 and outbox.backlog()[1] > 0
    assert outbox.oldest() is not None
    assert abs((datetime.now(UTC) - outbox.oldest()).total_seconds()) < 60
    outbox.start()
    assert outbox.flush(10.0)
    assert stored_uuids(store) == [e.uuid for e in batch]
    assert waiting(folder) == [] and outbox.backlog() == (0, 0) and outbox.oldest() is None
    assert outbox.stored_late == 0 and outbox.last_error == ""
    outbox.close()


def test_the_same_events_twice_are_stored_once_with_the_same_ids(
    tmp_path: Path, store: Store, portrait
) -> None:
    sink = StoreSink(store)
    returned: list[list[int]] = []

    def write(batch: list[Event]) -> list[int]:
        ids = sink.write_many(batch)
        returned.append(ids)
        return ids

    outbox = Outbox(tmp_path / "outbox", write, backoff_s=FAST)
    outbox.start()
    batch = events(portrait, 2)
    outbox.put(batch)
    assert outbox.flush(10.0)
    outbox.put(batch)
    assert outbox.flush(10.0)
    outbox.close()
    assert returned == [returned[0], returned[0]]
    assert stored_uuids(store) == [e.uuid for e in batch]
    assert len(list((tmp_path / "media").rglob("*.jpg"))) == 2


def test_files_are_owner_only_pixelated_and_hold_no_face_vector(tmp_path: Path, portrait) -> None:
    folder = tmp_path / "outbox"
    outbox = Outbox(folder, lambda batch: [], backoff_s=FAST)
    outbox.put(events(portrait, 1))
    outbox.close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (path,) = waiting(folder)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    raw = json.loads(path.read_text())
    assert set(raw) == {
        "format", "uuid", "camera", "track_id", "label", "started_at", "ended_at",
        "best_score", "frames", "face_only", "plate", "snapshot", "match", "match_snapshot",
    }  # fmt: skip
    assert set(raw["snapshot"]) == {"png", "box", "frame_box", "frame_index", "time"}
    assert "redact" not in path.read_text()  # nothing left to redact: it was done
    # The image as written: inside the face box a mosaic of at most 4x4 flat tiles.
    import base64

    png = np.frombuffer(base64.b64decode(raw["snapshot"]["png"]), np.uint8)
    written = cv2.imdecode(png, cv2.IMREAD_UNCHANGED)
    assert written.shape == portrait.shape
    x1, y1, x2, y2 = (int(v) for v in FACE)
    region, original = written[y1:y2, x1:x2], portrait[y1:y2, x1:x2]
    colours = {tuple(p) for p in region.reshape(-1, 3)}
    assert len(colours) <= 16 < len({tuple(p) for p in original.reshape(-1, 3)})
    tile = int(np.ceil(max(x2 - x1, y2 - y1) / 4))
    assert (region[:tile, :tile] == region[0, 0]).all()
    # Outside the box the image is the original, losslessly.
    mask = np.ones(portrait.shape[:2], bool)
    mask[y1:y2, x1:x2] = False
    assert np.array_equal(written[mask], portrait[mask])


def test_a_corrupt_file_is_set_aside_and_the_others_are_stored(
    tmp_path: Path, store: Store, portrait, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "outbox"
    first = Outbox(folder, lambda batch: [], backoff_s=FAST)
    batch = events(portrait, 3)
    first.put(batch)
    first.close()
    broken = waiting(folder)[1]
    broken.write_bytes(broken.read_bytes()[:500])  # a torn file, as a bad disk leaves it
    (folder / "notes.json").write_text("{}")  # not an outbox name at all

    caplog.set_level(logging.WARNING, logger="safecity.runtime.outbox")
    outbox = Outbox(folder, StoreSink(store).write_many, backoff_s=FAST)
    outbox.start()
    assert outbox.flush(10.0)
    outbox.close()
    assert stored_uuids(store) == [batch[0].uuid, batch[2].uuid]
    assert sorted(p.name for p in folder.glob("*.bad")) == sorted(
        [broken.name + ".bad", "notes.json.bad"]
    )
    assert broken.name in caplog.text and "moved aside" in caplog.text


@needs_real_timed_waits  # the drainer's backoff is a timed wait
def test_a_database_outage_keeps_events_until_it_is_back(
    tmp_path: Path, store: Store, portrait, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="safecity.runtime.outbox")
    outbox = Outbox(tmp_path / "outbox", StoreSink(store).write_many, backoff_s=FAST)
    outbox.start()
    with store.transaction() as session:  # a real failure: the table is gone
        session.execute(text("ALTER TABLE events RENAME TO events_away"))
    batch = events(portrait, 3)
    outbox.put(batch)
    deadline = time.monotonic() + 10
    while not outbox.last_error and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "events" in outbox.last_error
    time.sleep(0.5)  # several retries: one log line per outage, not one per retry
    assert outbox.backlog()[0] == 3 and len(waiting(tmp_path / "outbox")) == 3
    with store.transaction() as session:
        session.execute(text("ALTER TABLE events_away RENAME TO events"))
    assert outbox.flush(10.0)
    outbox.close()
    assert stored_uuids(store) == [e.uuid for e in batch]
    assert outbox.stored_late == 3 and outbox.last_error == ""
    assert caplog.text.count("events not stored yet") == 1
    assert caplog.text.count("3 event(s) were stored late") == 1


def test_a_full_outbox_refuses_in_a_sentence_and_keeps_what_it_had(
    tmp_path: Path, portrait
) -> None:
    folder = tmp_path / "outbox"
    outbox = Outbox(folder, lambda batch: [], max_events=2, backoff_s=FAST)
    outbox.put(events(portrait, 2))
    with pytest.raises(OutboxFull) as refused:
        outbox.put(events(portrait, 1, run="run-2"))
    message = str(refused.value)
    assert message.startswith("outbox full: 1 event(s) not kept; ")
    assert str(folder) in message and "\n" not in message
    assert outbox.backlog()[0] == 2 and len(waiting(folder)) == 2
    assert list(folder.glob(".*.tmp")) == []

    size = outbox.backlog()[1]
    outbox.close()
    by_bytes = Outbox(folder, lambda batch: [], max_bytes=size + 10, backoff_s=FAST)
    with pytest.raises(OutboxFull, match="not kept"):
        by_bytes.put(events(portrait, 1, run="run-3"))
    assert by_bytes.backlog() == (2, size)
    by_bytes.close()


def test_a_full_outbox_during_an_outage_says_since_when(
    tmp_path: Path, store: Store, portrait
) -> None:
    outbox = Outbox(tmp_path / "outbox", StoreSink(store).write_many, max_events=1)
    outbox.start()
    with store.transaction() as session:
        session.execute(text("DROP TABLE events"))
    outbox.put(events(portrait, 1))
    deadline = time.monotonic() + 10
    while not outbox.last_error and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(OutboxFull, match="the database has been unreachable since 20"):
        outbox.put(events(portrait, 1, run="run-2"))
    outbox.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB file system (tmpfs), so a write fails with ENOSPC as on a full disk."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_refuses_in_a_sentence_and_leaves_no_partial_file(
    tiny_disk: Path, portrait
) -> None:
    folder = tiny_disk / "outbox"
    outbox = Outbox(folder, lambda batch: [])
    small = portrait[:120, :160].copy()  # a few dozen KB per event
    kept = 0
    with pytest.raises(OutboxFull) as refused:
        for i in range(100):
            outbox.put(events(small, 1, run=f"run-{i}"))
            kept += 1
    assert 0 < kept < 100
    message = str(refused.value)
    assert message.startswith("outbox full: 1 event(s) not kept; ")
    assert message.endswith("and its disk is full")
    assert outbox.backlog()[0] == kept and len(waiting(folder)) == kept
    assert list(folder.glob(".*.tmp")) == []
    outbox.close()


def test_one_process_per_outbox_folder(tmp_path: Path) -> None:
    first = Outbox(tmp_path / "outbox", lambda batch: [])
    with pytest.raises(OutboxError, match="in use by another safecity process"):
        Outbox(tmp_path / "outbox", lambda batch: [])
    first.close()
    Outbox(tmp_path / "outbox", lambda batch: []).close()


KILLED = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    import cv2
    from test_outbox import events
    from safecity.runtime.outbox import Outbox

    def unreachable(batch):  # the database is away for this whole process
        from safecity.store import StoreError
        raise StoreError("the database at postgresql://db failed: connection refused")

    outbox = Outbox({folder!r}, unreachable)
    outbox.start()
    outbox.put(events(cv2.imread({image!r}), 3))
    print("put returned", flush=True)
    time.sleep(600)
    """
)


def test_a_killed_process_events_are_stored_by_its_successor(
    tmp_path: Path, store: Store, portrait, data_dir: Path
) -> None:
    folder = tmp_path / "outbox"
    script = KILLED.format(
        tests=str(Path(__file__).parent),
        folder=str(folder),
        image=str(data_dir / "images" / "obama.jpg"),
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "tests"))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "put returned"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    outbox = Outbox(folder, StoreSink(store).write_many, backoff_s=FAST)
    assert outbox.backlog()[0] == 3
    outbox.start()
    assert outbox.flush(10.0)
    outbox.close()
    assert stored_uuids(store) == [e.uuid for e in events(portrait, 3)]
    assert outbox.stored_late == 3
