"""Events as the API shows them: what was seen, and (to those allowed) who matched."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

MatchStatus = Literal["candidate", "confirmed", "rejected", "expired", "annulled", "erased"]


class Match(BaseModel):
    """A watchlist match of an event (never shown to viewers)."""

    person_id: int | None = Field(description="null once the match was rejected or erased")
    person: str | None
    watchlist_id: int | None
    watchlist: str | None
    score: float | None
    status: str = Field(
        description="candidate (awaiting review) | confirmed | rejected | expired | "
        "annulled | erased"
    )
    confirmations: int = Field(description="reviewers who confirmed it so far")
    required: int = Field(description="confirmations needed (four eyes or more)")


class Plate(BaseModel):
    """A vehicle's licence plate as read (never shown to viewers)."""

    text: str = Field(description="normalised: upper case letters and digits", examples=["BA123XY"])
    confidence: float = Field(description="of the read, 0 to 1")
    crop: bool = Field(description="the plate's image is stored (GET /events/{id}/plate.jpg)")


class Event(BaseModel):
    """One tracked object, from its first to its last frame."""

    id: int
    camera: str
    label: str
    track_id: int
    started_at: datetime
    ended_at: datetime
    frames: int
    best_score: float
    face_only: bool = Field(
        False, description="a person seen by the face only (the detector missed the body)"
    )
    plate: Plate | None = Field(
        None,
        description="a vehicle's licence plate; null: none read, or your role sees no identities",
    )
    snapshot: bool = Field(description="a snapshot is stored (GET /events/{id}/snapshot.jpg)")
    match: Match | None = Field(description="null: no match, or your role sees no identities")


class EventReview(BaseModel):
    """One reviewer's decision on the event's match."""

    reviewer: str
    decision: str = Field(description="confirm | reject")
    at: datetime


class EventDetail(Event):
    reviews: list[EventReview]
    authorisation_id: int | None = Field(description="the authorisation the match was made under")
    match_snapshot: bool = Field(description="GET /events/{id}/match.jpg is there")
