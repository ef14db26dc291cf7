"""The audit trail: read it (newest first, filtered) and verify it end to end.

Verification is the CLI's ``safecity audit verify``: the whole hash chain, then
every signed head in ``audit.heads_path`` against the installation's key. Like
the CLI, reading and verifying are not themselves audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from safecity.access.roles import Permission, Principal
from safecity.api.deps import Context, Page, require
from safecity.api.schemas.audit import AuditRecordOut, VerifyOut
from safecity.api.schemas.common import Page as PageOf
from safecity.governance.audit import AuditRecord, HeadSigner, records_query
from safecity.store.schema import AuditRecordRow

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = Annotated[Principal, Depends(require(Permission.VIEW_AUDIT))]


def _utc(name: str, value: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC (as the CLI does); out-of-range times are refused."""
    if value is None:
        return None
    try:
        at = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        at = None
    if at is None or not 1970 <= at.year <= 9998:
        raise HTTPException(422, f"{name} is out of range (years 1970 to 9998)")
    return at


def record_out(r: AuditRecord) -> AuditRecordOut:
    return AuditRecordOut(**{f: getattr(r, f) for f in AuditRecordOut.model_fields})


@router.get("", response_model=PageOf[AuditRecordOut])
def list_audit(
    user: Auditor,
    ctx: Context,
    page: Page,
    action: Annotated[
        str | None,
        Query(max_length=64, description="an action, or a prefix ending in '.' (auth.)"),
    ] = None,
    actor: Annotated[str | None, Query(max_length=128, description="only this user")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, exclusive")] = None,
) -> PageOf[AuditRecordOut]:
    """Audit records, newest first; the cursor is the id to continue below."""
    query = records_query(
        since=_utc("since", since),
        until=_utc("until", until),
        actor=actor or None,
        action=action or None,
    )
    if page.below_id is not None:
        query = query.where(AuditRecordRow.id < page.below_id)
    query = query.order_by(AuditRecordRow.id.desc()).limit(page.limit + 1)
    with ctx.store.transaction() as session:
        rows = [AuditRecord.from_row(r) for r in session.scalars(query)]
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return PageOf[AuditRecordOut](
        items=[record_out(r) for r in rows], next_cursor=str(rows[-1].id) if more else None
    )


@router.post("/verify", response_model=VerifyOut)
def verify_audit(user: Auditor, ctx: Context) -> VerifyOut:
    """Check the whole chain and the signed heads; name the first broken record."""
    audit = ctx.config.audit
    signer = HeadSigner(audit.key_path, audit.heads_path)
    report = signer.verify(ctx.store)
    return VerifyOut(
        intact=report.ok,
        records=report.records,
        first_id=report.first_id,
        last_id=report.last_id,
        first_broken_id=report.broken_id,
        problem=report.problem or None,
        heads_checked=report.heads_checked,
        notes=list(report.notes),
        message=report.format(),
    )
