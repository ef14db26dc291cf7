"""Plate watchlists end to end: a real car driven across frames, its plate read and matched.

The clip of test_plate_reads (OpenALPR's eu5, a British car, read as OY09FEU)
runs through the real pipeline with the runtime's audited plate matcher over a
real SQLite store; the event goes through the real sink, and real review.
"""

from __future__ import annotations

from datetime import timedelta

import cv2
import pytest
from governance.governance_support import authorised_watchlist
from integration.test_plate_reads import T0, drive

from safecity.access import duties
from safecity.access.roles import Role
from safecity.access.users import create_user, set_password
from safecity.alerts.payloads import match_message
from safecity.config import SafecityConfig
from safecity.errors import SafecityError
from safecity.governance.audit import list_records
from safecity.governance.clock import ManualClock
from safecity.governance.review import review_match, review_queue
from safecity.governance.uses import AuditedGallery
from safecity.identity.gallery import GalleryCache
from safecity.identity.plate_lists import add_plate
from safecity.pipeline import CameraPipeline, Stages
from safecity.store.schema import EventRecord, IdentificationUse
from safecity.store.sink import StoreSink

CONFIG = SafecityConfig()
COUNTRIES = CONFIG.plates.countries
NOW = T0 + timedelta(minutes=5)  # the clock of the run: the clip's frames are at T0


@pytest.fixture(scope="module")
def stages():
    return Stages.load(CONFIG)


@pytest.fixture(scope="module")
def frames(data_dir):
    return drive(cv2.imread(str(data_dir / "plates" / "eu" / "eu5.jpg")))


def plate_list(store, clock, name="stolen-cars", *, cameras=None, until=None):
    """A plate watchlist valid from a day before the clip ('alice' proposed, 'bob' approved)."""
    return authorised_watchlist(
        store,
        clock,
        name,
        kind="plate",
        cameras=cameras,
        valid_from=T0 - timedelta(days=1),
        valid_until=until or T0 + timedelta(days=1),
    )


def run(store, stages, frames, clock):
    """The clip through the pipeline with the runtime's audited matchers; events stored."""
    gallery = AuditedGallery(GalleryCache(store, CONFIG, watch=False), store, clock=clock)
    pipeline = CameraPipeline(
        "road",
        CONFIG,
        stages,
        fps=5,
        matcher_for=gallery.matcher_for,
        plate_matcher_for=gallery.plate_matcher_for,
    )
    events = [e for f in frames for e in pipeline.process(f).ended] + pipeline.finish()
    gallery.close()
    [car] = [e for e in events if e.label == "car"]
    return car, StoreSink(store, clock).write(car)


@pytest.mark.slow
def test_a_listed_plate_makes_a_candidate_that_two_others_confirm(store, stages, frames):
    clock = ManualClock(NOW)
    info = plate_list(store, clock)
    listed = add_plate(
        store, info.name, "oy09 feu", name="stolen silver car, case 4411", by="carol",
        countries=COUNTRIES, clock=clock,
    )  # fmt: skip
    assert listed.plate == "OY09FEU" and listed.added

    car, event_id = run(store, stages, frames, clock)
    assert car.plate is not None and car.plate.text == "OY09FEU"
    assert car.match is not None and car.match.person_id == listed.person_id
    assert car.match.score == pytest.approx(car.plate.confidence) and car.match.margin == 1.0
    assert car.match_snapshot is car.snapshot  # the vehicle is the evidence
    with store.transaction() as session:
        row = session.get(EventRecord, event_id)
        assert (row.match_status, row.match_person_id, row.match_watchlist_id) == (
            "candidate", listed.person_id, info.id,
        )  # fmt: skip
        assert row.plate_text == "OY09FEU" and row.match_snapshot_path
        (use,) = session.query(IdentificationUse).all()  # the plate list's use, audited
        assert (use.camera, use.watchlist_id) == ("road", info.id)

    (queued,) = review_queue(store)  # reviewers see the read's crop beside the listed plate
    assert (queued.plate_text, queued.listed_plates) == ("OY09FEU", ("OY09FEU",))
    assert queued.plate_crop_path and queued.person_name == listed.name

    # The lister may not review the hit; two others confirm it.
    with pytest.raises(SafecityError, match="carol enrolled stolen silver car"):
        review_match(store, event_id, by="carol", decision="confirm", clock=clock)
    review_match(store, event_id, by="dave", decision="confirm", clock=clock)
    state = review_match(store, event_id, by="erin", decision="confirm", clock=clock)
    assert state.status == "confirmed"
    with store.transaction() as session:  # what a sink bound to the authorisation is sent
        body = match_message(
            session.get(EventRecord, event_id),
            person=listed.name,
            watchlist=info.name,
            confirmed_at=NOW,
            public_url="https://safecity.example",
        ).body
    assert (body["type"], body["plate"], body["person"]) == ("match", "OY09FEU", listed.name)

    (listing,) = list_records(store, action="enrolment.add_plate")
    assert listing.actor == "carol" and listing.details["plate"] == "OY09FEU"
    assert [r.details["kind"] for r in list_records(store, action="identification.start")] == [
        "plate"
    ]


@pytest.mark.slow
def test_nothing_matches_another_plate_another_camera_or_an_ended_authorisation(
    store, stages, frames
):
    clock = ManualClock(NOW)
    other = plate_list(store, clock, "other-plate")
    add_plate(store, other.name, "WSQ3021", name="another car", by="carol",
              countries=COUNTRIES, clock=clock)  # fmt: skip
    elsewhere = plate_list(store, clock, "gate-only", cameras=["gate-1"])
    add_plate(store, elsewhere.name, "OY09FEU", name="the car, at the gate only", by="carol",
              countries=COUNTRIES, clock=clock)  # fmt: skip
    # Listed an hour before the clip, under an authorisation that ended a second before it.
    before = ManualClock(T0 - timedelta(hours=1))
    ended = plate_list(store, before, "ended", until=T0 - timedelta(seconds=1))
    add_plate(store, ended.name, "OY09FEU", name="the car, too late", by="carol",
              countries=COUNTRIES, clock=before)  # fmt: skip
    with pytest.raises(SafecityError, match="expired"):
        add_plate(store, ended.name, "OY09FEU", name="again", by="carol",
                  countries=COUNTRIES, clock=clock)  # fmt: skip

    car, event_id = run(store, stages, frames, clock)
    assert car.plate is not None and car.plate.text == "OY09FEU"
    assert car.match is None and car.match_snapshot is None
    with store.transaction() as session:
        row = session.get(EventRecord, event_id)
        assert row.match_status is None and row.plate_text == "OY09FEU"


@pytest.mark.slow
def test_an_admin_with_a_shell_cannot_list_a_plate_and_confirm_its_hit_alone(store, stages, frames):
    """Ada (admin) lists the plate, then tries to confirm: herself, then through two
    reviewer accounts she made and set passwords for, then after they set their own."""
    clock = ManualClock(NOW)
    create_user(store, "ada", "ada's long password", Role.ADMIN, by="oslogin", bootstrap=True)
    info = plate_list(store, clock)
    add_plate(store, info.name, "OY09FEU", name="ada's neighbour's car", by="ada",
              countries=COUNTRIES, clock=clock)  # fmt: skip
    _, event_id = run(store, stages, frames, clock)

    def confirm(who: str):
        return duties.review(store, event_id, decider=who, decision="confirm", clock=clock)

    with pytest.raises(SafecityError):
        confirm("ada")  # an admin does not decide, and she listed it
    for name in ("r1", "r2"):
        create_user(store, name, f"{name} long password", Role.REVIEWER, by="ada", cameras=["*"])
    with pytest.raises(SafecityError, match="set your own"):
        confirm("r1")  # a password ada set
    for name in ("r1", "r2"):
        set_password(store, name, f"{name}'s own password", by=name)
    assert confirm("r1").status == "candidate"
    with pytest.raises(SafecityError, match="set up by ada"):
        confirm("r2")  # both set up by ada: one person
    with store.transaction() as session:
        assert session.get(EventRecord, event_id).match_status == "candidate"
