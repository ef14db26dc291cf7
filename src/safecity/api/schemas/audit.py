"""The audit trail: records and their verification."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditRecordOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object: str
    purpose: str
    details: dict[str, Any]
    origin: str
    prev_hash: str
    hash: str


class VerifyOut(BaseModel):
    intact: bool
    records: int
    first_id: int | None
    last_id: int | None
    first_broken_id: int | None = Field(description="the record the first problem concerns")
    problem: str | None
    heads_checked: int = Field(description="signed chain heads checked")
    notes: list[str]
    message: str
