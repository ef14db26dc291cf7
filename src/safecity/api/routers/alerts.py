"""Alert sinks and what waits for each, for the console's health page.

Read-only. Auditors and admins only: sink names, addresses and their errors are
how the system is wired, not camera health.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from safecity.access.roles import Permission, Principal
from safecity.alerts.status import sink_status
from safecity.api.deps import Context, require
from safecity.api.schemas.alerts import AlertSink, AlertSinks

router = APIRouter(tags=["alerts"])
Auditor = Annotated[Principal, Depends(require(Permission.VIEW_AUDIT))]


@router.get("/alerts", response_model=AlertSinks)
def alerts(user: Auditor, ctx: Context) -> AlertSinks:
    """Per configured sink: pending, sent, failed attempts, last sent, last error."""
    rows = sink_status(ctx.store, ctx.config)
    return AlertSinks(sinks=[AlertSink.model_validate(r) for r in rows])
