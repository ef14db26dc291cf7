"""The review queue and four-eyes decisions on candidate matches.

A reviewer sees only the candidates of the cameras granted to them. Each
candidate says whether this reviewer may decide it and, if not, why (they
enrolled that person or added a photo of them, already confirmed it, their
password is still the one an admin set, or their account and that of an earlier
confirmer were set up by one another or by the same admin — see
:mod:`safecity.access.duties`), so the console can disable its buttons with the
reason. Admins administer and do not decide: they have no review queue.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi import Path as PathParam
from sqlalchemy import select

from safecity.access import duties
from safecity.access.roles import Permission, Principal
from safecity.api.context import ApiContext
from safecity.api.deps import Context, CurrentUser, Page
from safecity.api.errors import NotFound
from safecity.api.schemas.common import Page as PageOf
from safecity.api.schemas.review import CandidateOut, ReviewIn, ReviewOut
from safecity.governance.audit import record
from safecity.governance.review import Candidate, ReviewError, review_queue
from safecity.store.queries import get_event
from safecity.store.schema import Template

router = APIRouter(prefix="/review", tags=["review"])


async def _reviewer(principal: CurrentUser) -> Principal:
    why = duties.role_refusal(principal.role, Permission.REVIEW)
    if why:
        raise HTTPException(403, why)
    return principal


Reviewer = Annotated[Principal, Depends(_reviewer)]
_BATCH = 500  # candidates read per query while skipping other cameras'


def _enrollers(ctx: ApiContext, candidates: list[Candidate]) -> dict[int, set[str]]:
    """Per person: everyone who enrolled them or added a photo of them."""
    found: dict[int, set[str]] = {}
    for c in candidates:
        if c.person_id is not None and c.enrolled_by:
            found.setdefault(c.person_id, set()).add(c.enrolled_by)
    ids = sorted({c.person_id for c in candidates if c.person_id is not None})
    if ids:
        with ctx.store.transaction() as session:
            for person_id, by in session.execute(
                select(Template.person_id, Template.enrolled_by)
                .where(Template.person_id.in_(ids))
                .distinct()
            ):
                if by:
                    found.setdefault(person_id, set()).add(by)
    return found


def _candidate_out(
    c: Candidate,
    user: Principal,
    required: int,
    enrollers: dict[int, set[str]],
    duty: dict[tuple[str, ...], str | None],
    ctx: ApiContext,
) -> CandidateOut:
    mine = user.username in c.confirmed_by
    why_not = None
    others = tuple(sorted(set(c.confirmed_by) - {user.username}))
    if others not in duty:
        duty[others] = (
            None
            if user.via == "session"
            else "decisions are made by a person signed in to the console, not a token"
        ) or duties.review_refusal(ctx.store, user.username, list(others))
    if c.person_id is not None and user.username in enrollers.get(c.person_id, set()):
        why_not = (
            f"you enrolled {c.person_name or 'this person'} (or added a photo of them); "
            "a match of someone you enrolled must be reviewed by others"
        )
    elif mine:
        why_not = "you already confirmed this match; another reviewer must confirm it"
    elif duty[others]:
        why_not = duty[others]
    return CandidateOut(
        event_id=c.event_id,
        camera=c.camera,
        started_at=c.started_at,
        person_id=c.person_id,
        person=c.person_name,
        watchlist=c.watchlist_name,
        score=c.score,
        confirmations=len(set(c.confirmed_by)),
        required=required,
        reviewed_by_you=mine,
        may_review=why_not is None,
        why_not=why_not,
    )


@router.get("/queue", response_model=PageOf[CandidateOut])
def queue(user: Reviewer, ctx: Context, page: Page) -> PageOf[CandidateOut]:
    """Candidate matches on your cameras, oldest first."""
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
    required = ctx.config.review.required_confirmations
    enrollers = _enrollers(ctx, taken)
    duty: dict[tuple[str, ...], str | None] = {}
    return PageOf[CandidateOut](
        items=[_candidate_out(c, user, required, enrollers, duty, ctx) for c in taken],
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
