"""Camera health in the database: what a running pipeline last reported, per camera.

The pipeline (``safecity run``, ``safecity analyze``) and the console
(``safecity serve``) may be different processes on different machines, so the
pipeline writes its figures to the ``camera_status`` table (one row per camera,
replaced at each report) and the console reads them from there.

>>> report_health(store, fleet.stats.values(), host="edge-3", at=now)  # doctest: +SKIP
2
>>> [h.state for h in read_health(store, ["gate-1"])]  # doctest: +SKIP
['running']
"""

from __future__ import annotations

import math
import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from statistics import median
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from safecity.store.db import Store
from safecity.store.schema import CameraStatus

# Column sizes of camera_status (PostgreSQL enforces them).
_MAX_STATE = 16
_MAX_HOST = 256
_MAX_ERROR = 2000


@dataclass(frozen=True)
class CameraHealth:
    """The last figures reported for one camera."""

    camera: str
    state: str  # starting | running | reconnecting | stopped | failed | finished
    frames_in: int
    frames_analysed: int
    events: int
    reconnects: int
    detector_ms: float  # median detector time per analysed frame (recent window)
    lag_s: float  # seconds between a frame's time and its analysis
    last_error: str
    host: str  # the machine that ran the pipeline
    updated_at: datetime


def default_host() -> str:
    """This machine's name, as reported with its cameras."""
    return socket.gethostname() or "unknown"


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _detector_ms(stats: Any) -> float:
    """The median detector time of ``stats``: its ``detector_ms_median``, or of a list."""
    if hasattr(stats, "detector_ms_median"):
        return _number(stats.detector_ms_median)
    value = getattr(stats, "detector_ms", 0.0)
    if isinstance(value, Iterable):
        values = [_number(v) for v in list(value)]
        return median(values) if values else 0.0
    return _number(value)


def _row(stats: Any, host: str, at: datetime) -> dict[str, Any]:
    return {
        "camera": str(stats.camera),
        "state": str(getattr(stats, "state", "") or "unknown")[:_MAX_STATE],
        "frames_in": int(getattr(stats, "frames_in", 0) or 0),
        "frames_analysed": int(getattr(stats, "frames_analysed", 0) or 0),
        "events": int(getattr(stats, "events", 0) or 0),
        "reconnects": int(getattr(stats, "reconnects", 0) or 0),
        "detector_ms": _detector_ms(stats),
        "lag_s": _number(getattr(stats, "lag_s", 0.0)),
        "last_error": str(getattr(stats, "last_error", "") or "")[:_MAX_ERROR],
        "host": str(host or "")[:_MAX_HOST],
        "updated_at": at,
    }


def report_health(store: Store, stats: Iterable[Any], host: str, at: datetime) -> int:
    """Insert or replace the ``camera_status`` row of each camera in ``stats``; one transaction.

    ``stats`` are :class:`~safecity.runtime.local.CameraStats` or anything with
    the same attributes (``detector_ms`` may be a list of timings or a number).
    Returns the number of cameras written. Raises
    :class:`~safecity.store.StoreError` when the database fails, ``ValueError``
    for a naive ``at``.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: pass a timezone-aware time")
    rows = {row["camera"]: row for row in (_row(s, host, at) for s in stats)}
    if not rows:
        return 0
    values = [rows[camera] for camera in sorted(rows)]  # a fixed order: no deadlocks
    with store.transaction(write=True) as session:
        dialect = session.get_bind().dialect.name
        if dialect in ("sqlite", "postgresql"):
            insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
            statement = insert(CameraStatus).values(values)
            updates = {name: statement.excluded[name] for name in values[0] if name != "camera"}
            session.execute(
                statement.on_conflict_do_update(index_elements=["camera"], set_=updates)
            )
        else:  # another database: read, then update or add
            for value in values:
                session.merge(CameraStatus(**value))
    return len(values)


def read_health(store: Store, cameras: Collection[str] | None = None) -> list[CameraHealth]:
    """The last reported health of ``cameras`` (``None``: every camera), sorted by camera."""
    if cameras is not None and not cameras:
        return []
    query = select(CameraStatus).order_by(CameraStatus.camera)
    if cameras is not None:
        query = query.where(CameraStatus.camera.in_(sorted(set(cameras))))
    with store.transaction() as session:
        return [
            CameraHealth(
                camera=row.camera,
                state=row.state,
                frames_in=row.frames_in,
                frames_analysed=row.frames_analysed,
                events=row.events,
                reconnects=row.reconnects,
                detector_ms=row.detector_ms,
                lag_s=row.lag_s,
                last_error=row.last_error,
                host=row.host,
                updated_at=row.updated_at,
            )
            for row in session.scalars(query)
        ]


__all__ = ["CameraHealth", "default_host", "read_health", "report_health"]
