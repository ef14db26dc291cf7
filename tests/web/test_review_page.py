"""The review page with a licence plate hit, over HTTP: what the page's script asks for
with the page's own session, that the lister is told why they may not decide, that the
images the card shows load, and that the script reads only fields the API sends."""

from __future__ import annotations

import re
from pathlib import Path

from api_support import signed_in
from fastapi import FastAPI
from governance.governance_support import T0
from plate_hit_support import listed_plate_hit
from test_pages import Page

from safecity.api.context import ApiContext
from safecity.api.schemas.review import CandidateOut, FaceHit, PlateHit, ReviewOut
from safecity.api.schemas.watchlists import AuthorisationOut
from safecity.governance.clock import ManualClock
from safecity.store import Store
from safecity.web import pages

SCRIPT = Path(pages.__file__).parent / "static" / "review.js"


def test_a_plate_hit_on_the_review_page_for_its_lister_and_for_another_reviewer(
    app: FastAPI, ctx: ApiContext, api_store: Store, data_dir: Path
) -> None:
    ctx.clock = ManualClock(T0)
    # rita listed the car (before she became a reviewer, say): she may not decide its hit.
    hit = listed_plate_hit(api_store, data_dir, ctx.clock, by="rita")
    for name, may in (("rita", False), ("remy", True)):
        reviewer = signed_in(app, name)
        page = Page(reviewer.get("/review").text)
        assert {"review-queue", "empty", "load-more"} <= set(page.testids())
        assert [s.split("?")[0] for s in page.srcs("script", "src")][-1] == "/static/review.js"
        # What review.js asks for, with the page's cookie.
        (card,) = reviewer.get("/api/v1/review/queue", params={"limit": 50}).json()["items"]
        assert (card["event_id"], card["kind"], card["may_review"]) == (hit.event_id, "plate", may)
        if not may:
            assert card["why_not"].startswith("you listed stolen silver car, case 4411")
        for url in (card["plate"]["crop_url"], card["plate"]["snapshot_url"]):
            image = reviewer.get(url)
            assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
            assert image.content[:2] == b"\xff\xd8", url
    # The buttons are only the page's: the API refuses the lister all the same.
    refused = signed_in(app, "rita").post(
        f"/api/v1/review/{hit.event_id}", json={"decision": "confirm"}
    )
    assert refused.status_code == 400


def test_the_script_reads_only_fields_the_api_sends() -> None:
    text = SCRIPT.read_text()
    fields = {
        "c": set(CandidateOut.model_fields),
        "face": set(FaceHit.model_fields),
        "plate": set(PlateHit.model_fields),
        "a": set(AuthorisationOut.model_fields),
        "out": set(ReviewOut.model_fields),
    }
    read = re.findall(r"\b(c|face|plate|a|out)\.([a-z_]+)\b", text)
    assert {who for who, _ in read} == set(fields), "a pattern found nothing: it checks nothing"
    unknown = {f"{who}.{name}" for who, name in read if name not in fields[who]}
    assert not unknown, f"review.js reads fields the API does not send: {sorted(unknown)}"
    # The listed plate is shown large and monospace, as a plate.
    css = (SCRIPT.parent / "console.css").read_text()
    rule = css[css.index(".listed-plate {") :].split("}", 1)[0]
    assert "monospace" in rule and "2rem" in rule
