"""The review queue and four-eyes decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from safecity.api.schemas.watchlists import AuthorisationOut


class FaceHit(BaseModel):
    """A face watchlist's hit: the enrolled photo beside the face the camera saw."""

    enrolled_photo_url: str | None = Field(description="null: the person is no longer listed")
    seen_url: str = Field(description="the frame crop the match was made on")


class PlateHit(BaseModel):
    """A plate watchlist's hit: the plate as read beside the plate(s) listed."""

    read: str = Field(description="the plate as read, normalised", examples=["OY09FEU"])
    confidence: float | None = Field(description="of the read, 0 to 1")
    crop_url: str | None = Field(description="the plate as the camera saw it; null: not stored")
    listed: list[str] = Field(description="the listed vehicle's plates, as normalised")
    vehicle: str | None = Field(
        description="the listed vehicle: what it is and why it is listed (null once removed)"
    )
    snapshot_url: str = Field(description="the vehicle as the camera saw it")


class CandidateOut(BaseModel):
    """A match awaiting review: a face (``face`` set) or a licence plate (``plate`` set)."""

    event_id: int
    camera: str
    started_at: datetime
    kind: Literal["face", "plate"] = Field(description="what the matched watchlist lists")
    person_id: int | None
    person: str | None = Field(description="the enrolled person, or the listed vehicle")
    watchlist: str | None
    authorisation: AuthorisationOut | None = Field(
        description="the authorisation the match was made under"
    )
    score: float | None
    face: FaceHit | None = Field(description="a face hit's images; null for a plate hit")
    plate: PlateHit | None = Field(description="a plate hit's read and listing; null for a face")
    confirmations: int
    required: int
    reviewed_by_you: bool
    may_review: bool
    why_not: str | None = Field(description="why you may not review it (null when you may)")


class ReviewIn(BaseModel):
    decision: Literal["confirm", "reject"]
    note: str = Field("", max_length=2000)


class ReviewOut(BaseModel):
    event_id: int
    status: str = Field(description="candidate, confirmed or rejected")
    confirmations: int
    required: int
    counted: bool = Field(description="false when your confirmation was already counted")
    message: str
