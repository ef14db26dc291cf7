"""Real licence plates for tests: the OpenALPR EU photos and their labelled plate boxes.

Each ``plates/eu/euN.jpg`` has ``euN.txt``: ``file x y width height PLATE``
(see ../shared/data/README.md). :func:`labelled_plate` crops the plate by its box;
:func:`vehicle_event` makes a car's event whose snapshot is the photo and whose
plate read is that crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from event_support import still_event

from safecity.events import Event, PlateRead


@dataclass(frozen=True)
class LabelledPlate:
    photo: np.ndarray  # the whole road photo (BGR)
    crop: np.ndarray  # the plate, cut out by its labelled box
    text: str  # the true plate, as labelled (already upper case, no spaces)


def labelled_plate(data_dir: Path, name: str) -> LabelledPlate:
    """``name`` (``"eu1"``) of ``plates/eu``: its photo, its plate's crop and text."""
    folder = data_dir / "plates" / "eu"
    _, x, y, w, h, text = (folder / f"{name}.txt").read_text().split()
    photo = cv2.imread(str(folder / f"{name}.jpg"))
    assert photo is not None, f"cannot read {name}.jpg"
    x, y, w, h = int(x), int(y), int(w), int(h)
    crop = photo[y : y + h, x : x + w].copy()
    assert crop.size, f"{name}: the labelled box lies outside the photo"
    return LabelledPlate(photo, crop, text)


def vehicle_event(
    plate: LabelledPlate,
    *,
    start: datetime,
    text: str | None = None,
    camera: str = "gate-1",
    track_id: int = 1,
    label: str = "car",
    confidence: float = 0.93,
) -> Event:
    """A ``label`` event of ``camera`` whose plate read is ``plate``'s crop, read as
    ``text`` (its true text unless given)."""
    return still_event(
        plate.photo,
        start=start,
        camera=camera,
        track_id=track_id,
        label=label,
        plate=PlateRead(text or plate.text, confidence, plate.crop, reads=5),
    )
