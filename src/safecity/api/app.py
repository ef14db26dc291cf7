"""The FastAPI app: REST under /api/v1, the console's pages, /healthz.

>>> from safecity.config import SafecityConfig
>>> app = create_app  # create_app(ApiContext(config, store)) -> FastAPI
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from safecity import __version__
from safecity.api.context import ApiContext
from safecity.api.errors import install_error_handlers
from safecity.api.guard import MEGABYTE, RequestGuard
from safecity.api.routers import (
    alerts,
    audit,
    auth,
    cameras,
    cluster,
    events,
    metrics,
    review,
    stream,
    system,
    users,
    watchlists,
)
from safecity.api.routers.watchlists import MAX_PHOTOS

if TYPE_CHECKING:
    from safecity.api.remote_live import RemoteLive

API_PREFIX = "/api/v1"


def create_app(ctx: ApiContext, remote_live: RemoteLive | None = None) -> FastAPI:
    """The app for one server; ``ctx`` carries the store, config and live frames;
    ``remote_live`` the live view of cameras on a Ray cluster (``serve --cluster``)."""
    app = FastAPI(
        title="safecity",
        version=__version__,
        description=(
            "Accountable video analytics: cameras, events, watchlists under legal "
            "authorisation, four-eyes review of matches, a tamper-evident audit trail. "
            "Every route but /healthz and /api/v1/auth/login needs a session cookie "
            "(with X-CSRF-Token on changes) or 'Authorization: Bearer <API token>'."
        ),
        openapi_url=None,  # served signed-in only, by the system router
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.remote_live = remote_live
    install_error_handlers(app)
    # Enrolment takes up to MAX_PHOTOS photos of max_upload_mb each (checked one by one
    # there); every other request is small JSON.
    app.add_middleware(
        RequestGuard,
        upload_limit=int(MAX_PHOTOS * ctx.config.api.max_upload_mb * MEGABYTE) + 64 * 1024,
        json_limit=MEGABYTE,
        upload_suffix="/persons",
    )
    _one_sentence_validation_errors(app)
    app.include_router(system.router)
    app.include_router(metrics.router)  # GET /metrics, signed in
    for module in (auth, users, cameras, cluster, events, stream, watchlists, review, audit):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(alerts.router, prefix=API_PREFIX)  # alert sinks, for the health page
    from safecity.web import pages

    pages.install(app)
    return app


def _one_sentence_validation_errors(app: FastAPI) -> None:
    """Describe 422s as they are sent (see ``errors.validation_sentence``), not FastAPI's list."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = {
                    "title": "HTTPValidationError",
                    "type": "object",
                    "required": ["detail"],
                    "properties": {
                        "detail": {"type": "string", "title": "Detail"},
                        "errors": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ValidationError"},
                        },
                    },
                }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
