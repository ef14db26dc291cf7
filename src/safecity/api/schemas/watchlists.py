"""Authorisations, watchlists, the people on them and enrolment by upload."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class AuthorisationOut(BaseModel):
    """The legal basis a watchlist is matched under (two users: proposer and decider)."""

    id: int
    status: str = Field(description="proposed, active, emergency, refused or revoked")
    legal_basis: str
    authority: str
    reference: str
    purpose: str
    valid_from: datetime
    valid_until: datetime
    cameras: list[str] | None = Field(description="null: every camera")
    evidence_days: int
    proposed_by: str
    decided_by: str | None
    decided_at: datetime | None
    emergency_deadline_at: datetime | None
    request_filed_at: datetime | None
    watchlists: list[str]


class WatchlistOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    persons: int
    templates: int
    authorisation: AuthorisationOut
    kind: Literal["face", "plate"] = Field("face", description="what it lists")
    matching_now: bool = Field(description="whether its authorisation allows matching now")


class WatchlistIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    authorisation_id: int = Field(ge=1, le=2**31 - 1)
    kind: Literal["face", "plate"] = Field(
        "face", description="face: persons enrolled from photos; plate: vehicles by plate"
    )


class PlateIn(BaseModel):
    """A vehicle to list on a plate watchlist."""

    plate: str = Field(min_length=1, max_length=32, description="the licence plate")
    name: str = Field(
        min_length=1,
        max_length=256,
        description='what the vehicle is and why, e.g. "stolen silver Skoda, case 4411"',
    )


class PlateOut(BaseModel):
    person_id: int
    name: str
    plate: str = Field(description="as listed and matched: normalised to the plate formats")
    watchlist_id: int
    added: bool = Field(description="false: it was already listed under this name")


class PersonOut(BaseModel):
    id: int
    name: str
    templates: int
    enrolled_by: str
    created_at: datetime
    photo: bool = Field(description="an enrolled face photo can be fetched")


class EnrolOut(BaseModel):
    person_id: int
    person: str
    watchlist_id: int
    templates: int = Field(description="templates added now")
    skipped: int = Field(description="photos already enrolled for this person")
    created_person: bool


class RefusedPhoto(BaseModel):
    photo: str = Field(description="the uploaded file's name")
    reason: str


class EnrolRefusedOut(BaseModel):
    """A refused enrolment: nothing was stored."""

    detail: str
    refused: list[RefusedPhoto]


class FormErrorOut(BaseModel):
    """The form itself is invalid (a field missing or malformed); nothing was read."""

    detail: str
    errors: list[dict[str, Any]] = []
