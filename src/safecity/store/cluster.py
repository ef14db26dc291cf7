"""The cluster's state in the database: written by the coordinator, read by CLI and console.

One row per coordinator, its whole state as a JSON document, so that
``safecity cluster status`` and the console's health page need the database
only, not a connection to Ray.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from safecity.store.db import Store
from safecity.store.schema import ClusterStatus

#: A coordinator that has not written for this long is shown as not reporting (it writes
#: every ``cluster.check_interval_s``, about a second, while it runs).
STALE_AFTER_S = 15.0
#: A worker whose oldest outbox event has waited this long is late: the database does not
#: keep up, or is away (the console marks it; a set ``outbox_error`` is an error at once).
OUTBOX_LATE_AFTER_S = 60.0


def write_status(store: Store, document: dict) -> None:
    """Insert or replace the row of ``document['coordinator']``."""
    row = ClusterStatus(
        coordinator=str(document["coordinator"])[:256],
        run_id=str(document["run_id"])[:32],
        address=str(document.get("address") or "")[:256],
        document=json.dumps(document, sort_keys=True, default=str),
        updated_at=datetime.now(UTC),
    )
    with store.transaction(write=True) as session:
        session.merge(row)


def read_status(store: Store) -> list[dict]:
    """Every coordinator's last document, newest first, with ``updated_at`` added."""
    with store.transaction() as session:
        rows = session.scalars(select(ClusterStatus).order_by(ClusterStatus.updated_at.desc()))
        return [
            {**json.loads(row.document), "updated_at": row.updated_at.isoformat()} for row in rows
        ]


def with_freshness(documents: list[dict], now: datetime) -> list[dict]:
    """Each document with ``age_s`` (since it was written) and ``reporting`` (written within
    :data:`STALE_AFTER_S`); each worker with ``outbox_age_s``, the age of its oldest waiting
    event (None when the outbox is empty).

    The one place these ages are computed, so ``safecity cluster status`` and the console
    call the same coordinator "not reporting". The documents are copied, not changed.

    >>> written = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    >>> doc = {"updated_at": written.isoformat(), "workers": [
    ...     {"worker": "w1", "outbox_oldest": "2024-05-01T11:59:00+00:00"}]}
    >>> [d] = with_freshness([doc], written.replace(second=20))
    >>> d["age_s"], d["reporting"], d["workers"][0]["outbox_age_s"]
    (20.0, False, 80.0)
    """
    fresh = []
    for document in documents:
        age = _seconds(now, document["updated_at"])
        workers = [
            {
                **w,
                "outbox_age_s": _seconds(now, w["outbox_oldest"])
                if w.get("outbox_oldest")
                else None,
            }
            for w in document.get("workers", [])
        ]
        fresh.append(
            {
                **document,
                "workers": workers,
                "age_s": age,
                "reporting": age <= STALE_AFTER_S,
            }
        )
    return fresh


def _seconds(now: datetime, iso: str) -> float:
    """Seconds from the ISO 8601 time ``iso`` to ``now`` (a naive time is taken as UTC)."""
    then = datetime.fromisoformat(iso)
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return round((now - then).total_seconds(), 1)
