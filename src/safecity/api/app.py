"""The FastAPI app: REST under /api/v1, the console's pages, /healthz.

>>> from safecity.config import SafecityConfig
>>> app = create_app  # create_app(ApiContext(config, store)) -> FastAPI
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from safecity import __version__
from safecity.api.context import ApiContext
from safecity.api.errors import install_error_handlers
from safecity.api.routers import (
    audit,
    auth,
    cameras,
    events,
    review,
    stream,
    system,
    users,
    watchlists,
)

API_PREFIX = "/api/v1"
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    ),
}


def create_app(ctx: ApiContext) -> FastAPI:
    """The app for one server; ``ctx`` carries the store, config and live frames."""
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
    install_error_handlers(app)
    limit = int(ctx.config.api.max_upload_mb * 1024 * 1024)

    @app.middleware("http")
    async def _guard(request: Request, call_next):  # type: ignore[no-untyped-def]
        length = request.headers.get("content-length", "")
        # A photo plus the form's framing; bigger bodies are refused before they are read.
        if length.isdigit() and int(length) > limit + 64 * 1024:
            return JSONResponse(
                {
                    "detail": f"the request is too large ({int(length) / 1048576:.1f} MB); "
                    f"the limit is {ctx.config.api.max_upload_mb:g} MB"
                },
                status_code=413,
            )
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(API_PREFIX):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.include_router(system.router)
    for module in (auth, users, cameras, events, stream, watchlists, review, audit):
        app.include_router(module.router, prefix=API_PREFIX)
    from safecity.web import pages

    pages.install(app) if hasattr(pages, "install") else app.include_router(pages.router)
    return app
