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
