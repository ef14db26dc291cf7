"""Liveness (no sign-in) and the OpenAPI description (signed in)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from safecity.api.deps import Context, CurrentUser
from safecity.store.db import StoreError

router = APIRouter(tags=["system"])
log = logging.getLogger(__name__)


def _ping(ctx) -> None:
    with ctx.store.transaction() as session:
        session.execute(text("SELECT 1"))


@router.get("/healthz", include_in_schema=True)
async def healthz(ctx: Context) -> JSONResponse:
    """Is the server up and its database reachable? The only route without sign-in."""
    try:
        await run_in_threadpool(_ping, ctx)
    except StoreError as exc:
        # Anyone may ask: say what is wrong, not where the database lives (that goes to the log).
        log.error("healthz: %s", exc)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/api/v1/openapi.json", include_in_schema=False)
def openapi(request: Request, user: CurrentUser) -> dict[str, Any]:
    return request.app.openapi()
