"""What each alert sink still has to be told: for ``safecity alerts status``, the console
and the metrics.

Read-only: a sink whose dispatcher never ran has no cursor yet (it will start at
the head), so nothing is pending for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from safecity.alerts import streams
from safecity.config import SafecityConfig
from safecity.store.db import Store
from safecity.store.schema import AlertCursor


def _sinks(config: SafecityConfig) -> list[tuple[str, str, list[int]]]:
    alerts = config.alerts
    return [("mqtt", s.name, list(s.authorisations)) for s in alerts.mqtt] + [
        ("webhook", s.name, list(s.authorisations)) for s in alerts.webhooks
    ]


def sink_status(store: Store, config: SafecityConfig) -> list[dict[str, Any]]:
    """Per configured sink: kind, pending, sent, failed, last sent, last error (and when)."""
    found: list[dict[str, Any]] = []
    with store.transaction() as session:
        for kind, name, authorisations in _sinks(config):
            rows = {
                row.stream: row
                for row in session.scalars(select(AlertCursor).where(AlertCursor.sink == name))
            }
            pending = sent = failed = 0
            last_sent: datetime | None = None
            last_error, last_error_at = "", None
            for stream in streams.streams_for(authorisations):
                row = rows.get(stream)
                if row is None:
                    continue
                pending += streams.pending_count(session, stream, row.last_id, authorisations)
                sent += row.sent
                failed += row.failed
                if row.last_sent_at and (last_sent is None or row.last_sent_at > last_sent):
                    last_sent = row.last_sent_at
                if row.last_error_at and (
                    last_error_at is None or row.last_error_at > last_error_at
                ):
                    last_error, last_error_at = row.last_error, row.last_error_at
            found.append(
                {
                    "sink": name,
                    "kind": kind,
                    "pending": pending,
                    "sent": sent,
                    "failed": failed,
                    "last_sent_at": last_sent.isoformat() if last_sent else None,
                    "last_error": last_error,
                    "last_error_at": last_error_at.isoformat() if last_error_at else None,
                    "started": bool(rows),
                }
            )
    return found


def pending(store: Store, config: SafecityConfig) -> dict[str, dict]:
    """Sink name → ``{"pending", "failed", "last_error"}`` (for the Prometheus metrics)."""
    return {
        s["sink"]: {"pending": s["pending"], "failed": s["failed"], "last_error": s["last_error"]}
        for s in sink_status(store, config)
    }
