"""The review queue and four-eyes decisions on candidate matches.

A reviewer sees only the candidates of the cameras granted to them. Each
candidate says whether this reviewer may decide it and, if not, why (they
enrolled that person or added a photo of them, listed that vehicle, already
confirmed it, their password is still the one an admin set, or their account
and that of an earlier confirmer were set up by one another or by the same admin — see
:mod:`safecity.access.duties`), so the console can disable its buttons with the
reason. A face hit says where the enrolled photo and the face seen are; a
licence plate hit carries the read (text, confidence, crop) beside the listed
plates and the listed vehicle's description instead. Admins administer and do
not decide: they have no review queue.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi import Path as PathParam

from safecity.access import duties
from safecity.access.roles import Permission, Principal
from safecity.api.context import ApiContext
from safecity.api.deps import Context, CurrentUser, Page
from safecity.api.errors import NotFound
from safecity.api.routers.watchlists import authorisation_out
from safecity.api.schemas.common import Page as PageOf
from safecity.api.schemas.review import CandidateOut, FaceHit, PlateHit, ReviewIn, ReviewOut
from safecity.api.schemas.watchlists import AuthorisationOut
from safecity.errors import AuthorisationError
from safecity.governance.audit import record
from safecity.governance.authorisations import get_authorisation
from safecity.governance.review import Candidate, ReviewError, enrollers_of, review_queue
from safecity.store.queries import get_event

router = APIRouter(prefix="/review", tags=["review"])


async def _reviewer(principal: CurrentUser) -> Principal:
    why = duties.role_refusal(principal.role, Permission.REVIEW)
    if why:
        raise HTTPException(403, why)
    return principal


Reviewer = Annotated[Principal, Depends(_reviewer)]
_BATCH = 500  # candidates read per query while skipping other cameras'


def _enrollers(ctx: ApiContext, candidates: list[Candidate]) -> dict[int, set[str]]:
    """Per person: everyone who enrolled them, added a photo or listed a plate of theirs."""
    with ctx.store.transaction() as session:
        return enrollers_of(session, (c.person_id for c in candidates if c.person_id is not None))


def _authorisations(ctx: ApiContext, candidates: list[Candidate]) -> dict[int, AuthorisationOut]:
    """The authorisations these matches were made under, by id."""
    found: dict[int, AuthorisationOut] = {}
    for auth_id in sorted({c.authorisation_id for c in candidates if c.authorisation_id}):
        with suppress(AuthorisationError):  # gone meanwhile: the card shows none
            found[auth_id] = authorisation_out(get_authorisation(ctx.store, auth_id))
    return found


def _evidence(c: Candidate, app: FastAPI) -> tuple[FaceHit | None, PlateHit | None]:
    """Where a face hit's images are, or a plate hit's read beside the listed plates."""
    seen = app.url_path_for("match_snapshot", event_id=str(c.event_id))
    if c.watchlist_kind != "plate":
        photo = (
            app.url_path_for("person_photo", person_id=str(c.person_id))
            if c.person_id is not None
            else None
        )
        return FaceHit(enrolled_photo_url=photo, seen_url=seen), None
    return None, PlateHit(
        read=c.plate_text or "",
        confidence=c.plate_confidence,
        crop_url=app.url_path_for("plate_crop", event_id=str(c.event_id))
        if c.plate_crop_path
        else None,
        listed=list(c.listed_plates),
        vehicle=c.person_name,
        snapshot_url=seen,
    )


def _own_listing(c: Candidate) -> str:
    if c.watchlist_kind == "plate":
        return (
            f"you listed {c.person_name or 'this vehicle'} (or added a plate of it); "
            "a hit on a vehicle you listed must be reviewed by others"
        )
    return (
        f"you enrolled {c.person_name or 'this person'} (or added a photo of them); "
        "a match of someone you enrolled must be reviewed by others"
    )


@dataclass
class _Shown:
    """What every candidate of one page of the queue is judged and shown with."""

    user: Principal
    ctx: ApiContext
    app: FastAPI
    enrollers: dict[int, set[str]]
    authorisations: dict[int, AuthorisationOut]
    duty: dict[tuple[str, ...], str | None] = field(default_factory=dict)  # by earlier confirmers

    def why_not(self, c: Candidate) -> str | None:
        """Why this user may not decide ``c``; None: they may."""
        user = self.user
        others = tuple(sorted(set(c.confirmed_by) - {user.username}))
        if others not in self.duty:
            self.duty[others] = (
                None
                if user.via == "session"
                else "decisions are made by a person signed in to the console, not a token"
            ) or duties.review_refusal(self.ctx.store, user.username, list(others))
        if c.person_id is not None and user.username in self.enrollers.get(c.person_id, set()):
            return _own_listing(c)
        if user.username in c.confirmed_by:
            return "you already confirmed this match; another reviewer must confirm it"
        return self.duty[others]

    def candidate(self, c: Candidate) -> CandidateOut:
        why_not = self.why_not(c)
        face, plate = _evidence(c, self.app)
        return CandidateOut(
            event_id=c.event_id,
            camera=c.camera,
            started_at=c.started_at,
            kind="plate" if c.watchlist_kind == "plate" else "face",
            person_id=c.person_id,
            person=c.person_name,
            watchlist=c.watchlist_name,
            authorisation=self.authorisations.get(c.authorisation_id or 0),
            score=c.score,
            face=face,
            plate=plate,
            confirmations=len(set(c.confirmed_by)),
            required=self.ctx.config.review.required_confirmations,
            reviewed_by_you=self.user.username in c.confirmed_by,
            may_review=why_not is None,
            why_not=why_not,
        )


@router.get("/queue", response_model=PageOf[CandidateOut])
def queue(request: Request, user: Reviewer, ctx: Context, page: Page) -> PageOf[CandidateOut]:
    """Candidate matches on your cameras, oldest first: for a face, where the enrolled
    photo and the face seen are; for a licence plate, the read (its confidence and
    crop) beside the listed plates and the listed vehicle's description."""
    cameras = user.camera_filter()
    taken: list[Candidate] = []
    position = page.offset  # in the queue of every camera; the cursor is where to go on
    ends_at = position  # the queue position just after the last candidate of this page
    while len(taken) <= page.limit:  # one more than the page tells whether there is a next
        batch = review_queue(ctx.store, limit=_BATCH, offset=position)
        for candidate in batch:
            position += 1
            if cameras is None or candidate.camera in cameras:
                taken.append(candidate)
                if len(taken) <= page.limit:
                    ends_at = position
                else:
                    break
        if len(batch) < _BATCH:
            break
    more = len(taken) > page.limit
    taken = taken[: page.limit]
    position = ends_at
    if taken:
        # Who was shown which candidates is on record, as with `safecity review queue`.
        record(
            ctx.store,
            actor=user.username,
            action="search.review_queue",
            object="review-queue",
            details={"found": len(taken), "events": [c.event_id for c in taken]},
            clock=ctx.clock,
        )
    shown = _Shown(user, ctx, request.app, _enrollers(ctx, taken), _authorisations(ctx, taken))
    return PageOf[CandidateOut](
        items=[shown.candidate(c) for c in taken],
        next_cursor=str(position) if more else None,
    )


@router.post(
    "/{event_id}",
    response_model=ReviewOut,
    responses={
        400: {"description": "refused (own enrolment, removed person …)"},
        403: {
            "description": "not yours to decide (admin, token, provisional password, "
            "an earlier confirmer set up your account or shares a sponsor with you)"
        },
        404: {"description": "no such event on your cameras"},
        409: {"description": "already decided"},
    },
)
def decide(
    event_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
    body: ReviewIn,
    user: Reviewer,
    ctx: Context,
) -> ReviewOut:
    """Confirm or reject a candidate match (a rejection deletes its match image at once
    and keeps the event's snapshot with the face pixelated, as an ordinary event's).

    Only a person signed in to the console decides: an API token may have been made
    by someone else (an admin), which would let one person confirm as two. The
    separation-of-duties rules (:mod:`safecity.access.duties`) refuse with 403.
    """
    try:
        reviewer = duties.session_decider(user)
    except duties.DutyError as exc:
        raise HTTPException(403, str(exc)) from None
    event = get_event(ctx.store, event_id)
    if event is None or not user.sees_camera(event.camera):
        raise NotFound(f"there is no event {event_id} on your cameras")
    try:
        state = duties.review(
            ctx.store,
            event_id,
            decider=reviewer,
            decision=body.decision,
            note=body.note,
            required=ctx.config.review.required_confirmations,
            clock=ctx.clock,
        )
    except duties.DutyError as exc:
        raise HTTPException(403, str(exc)) from None
    except ReviewError as exc:
        raise HTTPException(409 if " already " in str(exc) else 400, str(exc)) from None
    return ReviewOut(
        event_id=state.event_id,
        status=state.status,
        confirmations=len(set(state.confirmed_by)),
        required=state.required,
        counted=state.counted,
        message=state.describe(),
    )
