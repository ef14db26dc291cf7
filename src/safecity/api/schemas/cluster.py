"""The cluster as its coordinators last reported it (``safecity run --cluster``).

Every figure but ``coordinator`` and ``run_id`` has a default: the document is what a
coordinator wrote, and one of another version may lack a field; the page shows "—".
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ClusterNode(BaseModel):
    id: str = Field(description="Ray's node id")
    address: str = ""
    cpus: float = 0.0
    capacity: int = Field(0, description="cameras the node's CPUs allow")
    workers: int = Field(0, description="worker processes on the node (that you may see)")
    cameras: int = Field(0, description="cameras on the node (that you may see)")


class ClusterWorker(BaseModel):
    """One worker process: several cameras on one copy of the models, with its own outbox."""

    worker: str
    node: str = ""
    pid: int | None = None
    host: str = ""
    rss_mb: float | None = None
    cpu_percent: float | None = None
    cameras: list[str] = Field([], description="its cameras (those you may see)")
    outbox_events: int = Field(0, description="finished events waiting for the database")
    outbox_bytes: int = 0
    outbox_oldest: datetime | None = None
    outbox_age_s: float | None = Field(None, description="age of the oldest waiting event")
    outbox_error: str = Field("", description="why the outbox cannot store (database away …)")
    outbox_health: Literal["ok", "late", "error"] = Field(
        "ok",
        description="error: outbox_error is set; late: an event has waited longer than "
        "outbox_late_after_s; ok otherwise",
    )
    state: str = Field("", description="running, or why the coordinator cannot reach it")
    last_error: str = ""
    metrics: str | None = Field(None, description="host:port of the worker's Prometheus /metrics")


class ClusterCamera(BaseModel):
    camera: str
    worker: str = ""
    node: str = ""
    state: str = ""
    analysed_fps: float | None = None
    lag_p50_s: float | None = None
    lag_p95_s: float | None = None
    events: int = 0
    dropped: int = 0
    frames_in: int = 0
    frames_analysed: int = 0
    reconnects: int = 0
    last_error: str = ""


class ClusterMove(BaseModel):
    """A camera moved from one worker to another (its worker or node was lost)."""

    model_config = ConfigDict(populate_by_name=True)

    camera: str
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    at: datetime | None = None


class ClusterCoordinator(BaseModel):
    """One coordinator's last document and how fresh it is."""

    coordinator: str
    run_id: str
    address: str = Field("", description="the Ray cluster's address")
    at: datetime | None = Field(None, description="when the coordinator made the document")
    updated_at: datetime = Field(description="when it was written to the database")
    age_s: float = Field(description="seconds since updated_at")
    reporting: bool = Field(description="written within stale_after_s")
    ended: bool = Field(False, description="the run stopped (its last document)")
    nodes: list[ClusterNode] = []
    workers: list[ClusterWorker] = []
    cameras: list[ClusterCamera] = []
    moves: list[ClusterMove] = []


class Cluster(BaseModel):
    coordinators: list[ClusterCoordinator] = Field(
        description="newest first; empty when no cluster has reported (or none runs your cameras)"
    )
    stale_after_s: float = Field(description="a coordinator silent this long is not reporting")
    outbox_late_after_s: float = Field(description="an outbox event waiting this long is late")
