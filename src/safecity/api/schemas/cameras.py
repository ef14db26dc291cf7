"""Cameras and the health figures their pipelines report."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Health(BaseModel):
    """The last figures a running pipeline reported for one camera."""

    camera: str
    state: str = Field(description="starting | running | reconnecting | stopped | failed …")
    frames_in: int
    frames_analysed: int
    events: int
    reconnects: int
    detector_ms: float
    lag_s: float
    last_error: str
    host: str
    updated_at: datetime
    stale: bool = Field(description="running, but no report for over 30 s: the process may be gone")


class Camera(BaseModel):
    name: str
    location: str
    live: bool = Field(description="this server has live frames (GET /cameras/{name}/live.mjpg)")
    health: Health | None
