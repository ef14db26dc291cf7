"""``GET /metrics``: the Prometheus text exposition, for a signed-in scraper.

Outside ``/api/v1`` because that is where Prometheus looks, but signed in like the API
(an API token in ``Authorization: Bearer``, as a scraper's ``authorization`` setting
sends it, or a console session): it is a GET, so no CSRF token and no JSON body.

What it says: the database's figures (:class:`safecity.metrics.DatabaseCollector`:
matches by status, audit head age, alerts per sink) and, when this server runs cameras
itself (``safecity serve``), those cameras' figures too. The figures span every camera,
so only someone who may see the health of *all* cameras may read them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool

from safecity import metrics
from safecity.access.roles import Permission, Principal
from safecity.api.deps import require

router = APIRouter(tags=["system"])
Viewer = Annotated[Principal, Depends(require(Permission.VIEW_CAMERAS))]


def _registry(request: Request) -> CollectorRegistry:
    """This server's registry: the cameras' own when it runs them (it includes the
    database's figures), else one with the database's figures only (made once)."""
    running = metrics.current()
    if running is not None:
        return running.registry
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        ctx = request.app.state.ctx
        registry = CollectorRegistry()
        registry.register(metrics.DatabaseCollector(ctx.store, ctx.config, clock=ctx.clock))
        request.app.state.metrics_registry = registry
    return registry


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def prometheus_metrics(request: Request, user: Viewer) -> Response:
    """Prometheus metrics (text exposition); for users who see every camera."""
    if user.camera_filter() is not None:
        raise HTTPException(403, "metrics cover every camera; your account sees only some of them")
    body = await run_in_threadpool(generate_latest, _registry(request))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
