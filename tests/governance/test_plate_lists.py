"""Plate watchlists under the same law as face watchlists (SQLite and PostgreSQL).

Listing and its refusals, the gallery's plate matcher (cameras, validity), removal,
retention at the authorisation's end, and identification uses recorded per kind.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from governance_support import DAY, HOUR, T0, authorised_watchlist
from sqlalchemy import func, select

from safecity.config import SafecityConfig
from safecity.errors import AuthorisationError, EnrolmentError
from safecity.events import PlateRead
from safecity.governance.audit import list_records
from safecity.governance.authorisations import revoke
from safecity.governance.retention import run_retention
from safecity.governance.uses import AuditedGallery
from safecity.identity.enrol import enroll, remove_person
from safecity.identity.gallery import GalleryCache
from safecity.identity.plate_lists import add_plate
from safecity.identity.watchlists import get_watchlist
from safecity.store.schema import ListedPlate, Person

COUNTRIES = ["SK", "GB"]
CROP = np.zeros((10, 40, 3), np.uint8)


def plate_watchlist(store, clock, name="stolen-cars", **kw):
    return authorised_watchlist(store, clock, name, kind="plate", **kw)


def listing(store, clock, watchlist="stolen-cars", plate="BA-123 XY", **kw):
    kw.setdefault("name", "stolen silver Skoda, case 4411")
    return add_plate(store, watchlist, plate, by="carol", countries=COUNTRIES, clock=clock, **kw)


def read(text: str, confidence: float = 0.9) -> PlateRead:
    return PlateRead(text, confidence, CROP)


def test_a_plate_is_listed_normalised_and_audited(store, clock) -> None:
    info = plate_watchlist(store, clock)
    assert info.kind == "plate" and get_watchlist(store, "stolen-cars").kind == "plate"
    first = listing(store, clock)
    assert (first.plate, first.added) == ("BA123XY", True)
    again = listing(store, clock, plate="ba123xy")
    assert again.person_id == first.person_id and not again.added
    (record, _) = list_records(store, action="enrolment.add_plate")
    assert record.actor == "carol" and record.details["plate"] == "BA123XY"
    with store.transaction() as session:
        assert session.scalar(select(func.count(ListedPlate.id))) == 1
        assert session.get(Person, first.person_id).enrolled_by == "carol"


def test_listing_refusals_say_why_in_one_sentence(store, clock, tmp_path: Path) -> None:
    face = authorised_watchlist(store, clock, "faces")
    plates = plate_watchlist(store, clock)
    with pytest.raises(EnrolmentError, match="lists faces, not licence plates"):
        listing(store, clock, watchlist=face.name)
    with pytest.raises(EnrolmentError, match="lists licence plates, not faces"):
        enroll(store, plates.name, "Jane", [tmp_path / "jane.jpg"], None, None, by="carol")  # type: ignore[arg-type]
    with pytest.raises(EnrolmentError, match="give the licence plate"):
        listing(store, clock, plate=" - ")
    with pytest.raises(EnrolmentError, match="is not a licence plate of the configured"):
        listing(store, clock, plate="GWAGEN")
    with pytest.raises(EnrolmentError, match="longer than any plate"):
        listing(store, clock, plate="A" * 20)
    with pytest.raises(EnrolmentError, match="say what the listed vehicle is"):
        listing(store, clock, name="  ")
    revoke(store, plates.authorisation_id, by="bob", reason="case closed", clock=clock)
    with pytest.raises(AuthorisationError, match="revoked; listing refused"):
        listing(store, clock)
    with store.transaction() as session:
        assert session.scalar(select(func.count(ListedPlate.id))) == 0
    assert list_records(store, action="enrolment.add_plate") == []


def test_the_plate_matcher_follows_the_authorisation(store, clock) -> None:
    plate_watchlist(store, clock, cameras=["gate-1"], valid_until=T0 + DAY)
    listed = listing(store, clock)
    cache = GalleryCache(store, SafecityConfig(), watch=False)
    matcher = cache.plate_matcher_for("gate-1", T0)
    assert matcher is not None
    hit = matcher.match(read("BA123XY", 0.8))
    assert hit is not None and (hit.person_id, hit.score, hit.margin) == (
        listed.person_id,
        0.8,
        1.0,
    )
    assert matcher.match(read("BA123XZ")) is None  # one character off: not by default
    assert cache.plate_matcher_for("gate-2", T0) is None  # outside its cameras
    assert cache.plate_matcher_for("gate-1", T0 + DAY) is None  # its window has ended
    assert cache.matcher_for("gate-1", T0) is None  # no face is searched for a plate list
    cache.close()

    config = SafecityConfig.model_validate({"plates": {"match_max_edits": 1}})
    lenient = GalleryCache(store, config, watch=False).plate_matcher_for("gate-1", T0)
    assert lenient is not None and lenient.match(read("BA123XZ")).person_id == listed.person_id


def test_plate_uses_are_recorded_apart_from_face_uses(store, clock) -> None:
    faces = authorised_watchlist(store, clock, "faces")
    plates = plate_watchlist(store, clock)
    listing(store, clock)
    gallery = AuditedGallery(GalleryCache(store, SafecityConfig(), watch=False), store, clock)
    gallery.matcher_for("gate-1", T0)  # a frame: the face list's use starts
    assert gallery.plate_matcher_for("gate-1", T0 + timedelta(seconds=1)) is not None
    gallery.matcher_for("gate-1", T0 + timedelta(seconds=2))  # does not end the plate use
    gallery.close()
    starts = list_records(store, action="identification.start")
    ends = list_records(store, action="identification.end")
    assert sorted((r.details["watchlist"], r.details["kind"]) for r in starts) == [
        (faces.name, "face"),
        (plates.name, "plate"),
    ]
    assert {r.details["reason"] for r in ends} == {"the camera stopped"}


def test_removal_and_retention_delete_listed_plates(store, clock) -> None:
    plate_watchlist(store, clock, valid_until=T0 + HOUR)
    listing(store, clock)
    kept = listing(store, clock, plate="OY09FEU", name="wanted driver's car")
    assert remove_person(store, "stolen-cars", "stolen silver Skoda, case 4411",
                         by="carol", reason="car found", clock=clock) == 0  # fmt: skip
    (removal,) = list_records(store, action="enrolment.remove")
    assert removal.details["plates"] == ["BA123XY"]
    cache = GalleryCache(store, SafecityConfig(), watch=False)
    matcher = cache.plate_matcher_for("gate-1", T0)
    assert matcher is not None and matcher.match(read("BA123XY")) is None
    assert matcher.match(read("OY09FEU")).person_id == kept.person_id
    cache.close()

    clock.advance(HOUR + timedelta(days=SafecityConfig().authorisations.template_grace_days))
    report = run_retention(store, SafecityConfig(), clock=clock)
    assert report.listed_plates == 1
    with store.transaction() as session:
        assert session.scalar(select(func.count(ListedPlate.id))) == 0
