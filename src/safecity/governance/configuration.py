"""Configuration changes in the audit trail.

``safecity run`` calls :func:`record_config` at start: the effective
configuration is hashed (canonical JSON of the validated model, so comments and
key order do not count) and a ``config.change`` record is appended when the
hash differs from the last one recorded, with the sections that changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import select

from safecity.config import SafecityConfig
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store
from safecity.store.schema import AuditRecordRow


def config_digest(config: SafecityConfig) -> tuple[str, dict[str, str]]:
    """SHA-256 of the whole configuration, and of each section."""
    data = config.model_dump(mode="json")
    sections = {
        key: hashlib.sha256(audit.canonical_json(value).encode()).hexdigest()
        for key, value in data.items()
    }
    return hashlib.sha256(audit.canonical_json(data).encode()).hexdigest(), sections


def record_config(
    store: Store,
    config: SafecityConfig,
    path: Path | None,
    *,
    actor: str,
    clock: Clock = SYSTEM_CLOCK,
) -> bool:
    """Append ``config.change`` if the configuration differs from the last recorded one."""
    digest, sections = config_digest(config)
    with store.transaction(write=True) as session:
        last = session.scalar(
            select(AuditRecordRow.details)
            .where(AuditRecordRow.action == "config.change")
            .order_by(AuditRecordRow.id.desc())
            .limit(1)
        )
        previous = json.loads(last) if last else {}
        if previous.get("sha256") == digest:
            return False
        before = previous.get("sections", {})
        changed = sorted(k for k, v in sections.items() if before.get(k) != v)
        audit.append(
            session,
            at=clock.now(),
            actor=actor,
            action="config.change",
            object=f"config:{path}" if path else "config:defaults",
            details={
                "sha256": digest,
                "previous_sha256": previous.get("sha256"),
                "changed_sections": changed,
                "sections": sections,
                "cameras": [c.name for c in config.cameras],
            },
        )
    return True
