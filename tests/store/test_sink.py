"""StoreSink: row + redacted JPEG; a failed transaction leaves no file and no row."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sqlalchemy import func, select, text

from safecity.config import FacesConfig
from safecity.store import Store, StoreError
from safecity.store.media import DEFAULT_TILES
from safecity.store.schema import EventRecord
from safecity.store.sink import StoreSink
from safecity.vision.faces import FaceDetector


def _tile_variance(gray: np.ndarray, box: np.ndarray) -> float:
    """Mean pixel variance inside the mosaic's tiles (2 px in from each tile edge).

    The default mosaic has tiles of ceil(longer side / DEFAULT_TILES) anchored at the box's
    corner; inside each, a face has detail and a mosaic is flat.
    """
    x1, y1, x2, y2 = int(np.floor(box[0])), int(np.floor(box[1])), int(box[2]), int(box[3])
    tile = int(np.ceil(max(np.ceil(box[2]) - x1, np.ceil(box[3]) - y1) / DEFAULT_TILES))
    values = [
        gray[y + 2 : y + tile - 2, x + 2 : x + tile - 2].astype(np.float64).var()
        for y in range(y1, y2 - tile + 1, tile)
        for x in range(x1, x2 - tile + 1, tile)
    ]
    return float(np.mean(values))


def _fail_inserts_of_track(store: Store, track_id: int) -> None:
    """A real database failure: a trigger that aborts inserting one track's event."""
    with store.transaction() as session:
        if store.engine.dialect.name == "sqlite":
            session.execute(
                text(
                    f"CREATE TRIGGER fail_insert BEFORE INSERT ON events "
                    f"WHEN NEW.track_id = {track_id} "
                    f"BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END"
                )
            )
        else:
            session.execute(
                text(
                    "CREATE FUNCTION fail_insert() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.track_id = {track_id} THEN RAISE EXCEPTION 'simulated disk failure'; "
                    "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            session.execute(
                text(
                    "CREATE TRIGGER fail_insert BEFORE INSERT ON events "
                    "FOR EACH ROW EXECUTE FUNCTION fail_insert()"
                )
            )


def _count(store: Store) -> int:
    with store.transaction() as session:
        return session.scalar(select(func.count(EventRecord.id)))


def test_write_stores_a_row_and_a_redacted_jpeg(store: Store, portrait, make_event) -> None:
    face = FaceDetector(FacesConfig()).detect(portrait)[0]
    y1 = int(face.box[1])
    event = make_event(portrait, redact=[face.box.tolist()])
    event_id = StoreSink(store).write(event)

    with store.transaction() as session:
        row = session.get(EventRecord, event_id)
    assert (row.camera, row.track_id, row.label, row.frames) == ("gate-1", 1, "person", 40)
    assert row.started_at == event.started_at and row.match_person_id is None
    assert row.snapshot_path.startswith("gate-1/2024-05-01/")

    stored = cv2.imread(str(store.media.path(row.snapshot_path)), cv2.IMREAD_GRAYSCALE)
    original = cv2.cvtColor(portrait, cv2.COLOR_BGR2GRAY)
    before, after = _tile_variance(original, face.box), _tile_variance(stored, face.box)
    assert after < 0.01 * before, (before, after)
    # outside the face the photo is kept (JPEG changes only a little)
    outside = (slice(0, y1), slice(None))
    assert np.abs(stored[outside].astype(int) - original[outside]).mean() < 3


def test_a_failed_insert_leaves_no_media_file(store: Store, portrait, make_event, media_files):
    _fail_inserts_of_track(store, 1)
    with pytest.raises(StoreError, match="simulated disk failure"):
        StoreSink(store).write(make_event(portrait, track_id=1))
    assert media_files(store.media_dir) == []
    assert _count(store) == 0


def test_write_many_is_all_or_nothing(store: Store, portrait, make_event, media_files) -> None:
    _fail_inserts_of_track(store, 3)
    events = [make_event(portrait[:200, :200], track_id=i) for i in (1, 2, 3)]
    with pytest.raises(StoreError):
        StoreSink(store).write_many(events)
    assert media_files(store.media_dir) == []
    assert _count(store) == 0

    ids = StoreSink(store).write_many(events[:2])
    assert len(ids) == 2 and _count(store) == 2
    assert len(media_files(store.media_dir)) == 2


def test_unwritable_media_stores_no_row(store: Store, portrait, make_event) -> None:
    (store.media_dir / "gate-1").write_text("a file where the camera folder should be")
    with pytest.raises(StoreError, match="cannot write a snapshot"):
        StoreSink(store).write(make_event(portrait))
    assert _count(store) == 0


def test_empty_batch_writes_nothing(store: Store) -> None:
    assert StoreSink(store).write_many([]) == []
