"""Errors as JSON an operator can read: ``{"detail": "one sentence"}``, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from safecity.errors import SafecityError
from safecity.store.db import StoreError, StoreValueError

log = logging.getLogger(__name__)


class NotFound(SafecityError):
    """What was asked for does not exist, or is not visible to the user."""


class Conflict(SafecityError):
    """The request clashes with the current state (a name already taken …)."""


def _field(location: tuple) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "the request body"


def validation_sentence(exc: RequestValidationError) -> str:
    """FastAPI's list of problems as one sentence: 'invalid request: limit: …; name: …'."""
    problems = [
        f"{_field(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in exc.errors()
    ]
    return "invalid request: " + "; ".join(problems[:5]) + (" …" if len(problems) > 5 else "")


def _itemised(exc: RequestValidationError) -> list[dict]:
    """Where and what, without echoing the input (a password, a whole body, bad unicode)."""
    return [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # One sentence for people; the itemised problems for programs.
        return JSONResponse(
            {"detail": validation_sentence(exc), "errors": _itemised(exc)},
            status_code=422,
        )

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(StoreValueError)
    async def _value(_: Request, exc: StoreValueError) -> JSONResponse:
        return JSONResponse({"detail": f"a value was refused: {exc}"}, status_code=400)

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        # Where the database lives is for the log, not for whoever asked.
        log.error("database error: %s", exc)
        return JSONResponse(
            {"detail": "the database is unavailable; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(SafecityError)
    async def _refused(_: Request, exc: SafecityError) -> JSONResponse:
        # Every SafecityError is an explained refusal (bad photo, expired authorisation,
        # a reviewer reviewing twice …): the request cannot be done as asked.
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "internal error; the server log has the details"}, status_code=500
        )
