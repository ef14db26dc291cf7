"""What every request passes before the app reads it, and every response gets on its way out.

A plain ASGI middleware (no buffering, so live streams flow through untouched):

- a request body that would change something under ``/api/v1`` must come with
  valid credentials (a live session cookie with its CSRF token, or a valid bearer
  token), checked here as the routes check them; otherwise it is refused (401,
  403) before a byte of it is read;
- bodies are limited while they arrive, whether or not they announce their
  length: a photo upload may carry ``upload_limit`` bytes, anything else
  ``json_limit`` (413 with the limit in words);
- responses get the console's security headers, and API answers ``no-store``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException
from starlette.requests import Request

from safecity.api.deps import check_before_body
from safecity.store.db import StoreError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MEGABYTE = 1024 * 1024
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
}
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_PUBLIC_WITH_BODY = {"/api/v1/auth/login"}


class TooLarge(HTTPException):
    """Raised from inside the body stream; FastAPI passes HTTPExceptions through as they are."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request is too large; the limit is {limit / MEGABYTE:.1f} MB")


class RequestGuard:
    def __init__(
        self, app: ASGIApp, *, upload_limit: int, json_limit: int, upload_suffix: str
    ) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.json_limit = json_limit
        self.upload_suffix = upload_suffix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope["headers"])
        if (
            scope["method"] in _BODY_METHODS
            and path.startswith("/api/")
            and path not in _PUBLIC_WITH_BODY
        ):
            # Valid, not merely present: nobody unknown makes the server take in a body.
            try:
                principal = await check_before_body(Request(scope))
            except HTTPException as exc:
                await _answer(send, exc.status_code, str(exc.detail))
                return
            except StoreError:
                await _answer(send, 503, "the database is unavailable; try again shortly")
                return
            if principal is None:
                await _answer(send, 401, "sign in first (or send an API token)")
                return
        limit = self.upload_limit if path.endswith(self.upload_suffix) else self.json_limit
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _answer(
                send,
                413,
                f"the request is too large ({int(length) / MEGABYTE:.1f} MB); "
                f"the limit is {limit / MEGABYTE:.1f} MB",
            )
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge(limit)
            return message

        api = path.startswith("/api/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.encode(), v.encode())
                    for k, v in SECURITY_HEADERS.items()
                    if k.encode() not in present
                ]
                if api and b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, limited, with_headers)


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
