"""The review queue and four-eyes decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class CandidateOut(BaseModel):
    """A match awaiting review."""

    event_id: int
    camera: str
    started_at: datetime
    person_id: int | None
    person: str | None
    watchlist: str | None
    score: float | None
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
