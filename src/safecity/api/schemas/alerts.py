"""What each alert sink still has to be told (``safecity alerts status``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class AlertSink(BaseModel):
    sink: str = Field(description="the sink's name in the config")
    kind: Literal["mqtt", "webhook"]
    started: bool = Field(description="False until a dispatcher has run for it")
    pending: int = Field(description="events and confirmations not yet acknowledged by it")
    sent: int = Field(description="messages it acknowledged")
    failed: int = Field(description="delivery attempts that failed")
    last_sent_at: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None


class AlertSinks(BaseModel):
    sinks: list[AlertSink]
