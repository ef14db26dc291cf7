"""A plate watchlist's hit for review tests: a real plate listed, a car event that read it.

The car's snapshot is an OpenALPR EU photo and its read is the labelled plate's
crop (:mod:`plate_support`); the plate is listed through the real
:func:`~safecity.identity.plate_lists.add_plate` on a watchlist approved by two
users, and the event goes through the real sink, which binds the match to the
authorisation as a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from governance.governance_support import authorised_watchlist
from plate_support import LabelledPlate, labelled_plate, vehicle_event

from safecity.config import SafecityConfig
from safecity.governance.clock import Clock, ManualClock
from safecity.identity.plate_lists import add_plate
from safecity.identity.watchlists import WatchlistInfo
from safecity.store import Store
from safecity.store.sink import StoreSink
from safecity.vision.types import Match


@dataclass(frozen=True)
class PlateHit:
    """A plate watchlist's candidate match, stored."""

    event_id: int
    person_id: int  # the listed vehicle's row
    vehicle: str  # what it is and why it is listed
    watchlist: WatchlistInfo
    plate: LabelledPlate


def listed_plate_hit(
    store: Store,
    data_dir: Path,
    clock: ManualClock,
    *,
    photo: str = "eu5",
    by: str = "olga",
    camera: str = "gate-1",
    vehicle: str = "stolen silver car, case 4411",
    sink_clock: Clock | None = None,
) -> PlateHit:
    """``photo``'s plate listed by ``by`` on a plate watchlist approved at ``clock``'s
    time, and a car event of ``camera`` at that time whose read of it matched, stored
    through the real sink (at ``sink_clock``'s time, else ``clock``'s) as a candidate."""
    plate = labelled_plate(data_dir, photo)
    info = authorised_watchlist(store, clock, f"stolen-cars-{photo}", kind="plate")
    listed = add_plate(
        store, info.name, plate.text, name=vehicle, by=by,
        countries=SafecityConfig().plates.countries, clock=clock,
    )  # fmt: skip
    # Read as the reader gives it: normalised to the formats, as the plate was listed
    # (eu5 is labelled OYO9FEU; a British plate is OY09FEU).
    car = vehicle_event(plate, start=clock.now(), camera=camera, text=listed.plate)
    assert car.plate is not None
    hit = Match(listed.person_id, vehicle, info.id, info.name, car.plate.confidence, 1.0)
    event_id = StoreSink(store, sink_clock or clock).write(
        replace(car, match=hit, match_snapshot=car.snapshot)
    )
    return PlateHit(event_id, listed.person_id, vehicle, info, plate)
