"""Authentication and permission checks, as FastAPI dependencies.

A request is authenticated by an API token (``Authorization: Bearer sc_…``) or
by the console's session cookie. With the cookie, every state-changing request
must also carry the session's CSRF token in ``X-CSRF-Token`` (SameSite=Strict
stops most cross-site requests already; the token stops the rest). The user and
address become the audit origin of whatever the request does.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from safecity.access.roles import Permission, Principal
from safecity.access.sessions import resolve_session, resolve_token
from safecity.api.context import ApiContext
from safecity.governance.audit import ORIGIN

T = TypeVar("T")
SESSION_COOKIE = "safecity_session"
CSRF_COOKIE = "safecity_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_OFFSET = 2**53  # fits every database's integer (SQLite's and PostgreSQL's are 64-bit)
MAX_ID = 2**63 - 1  # the largest id a 64-bit database integer holds
_DIGITS = re.compile(r"[0-9]{1,19}")
#: Where the request guard leaves what it found, for ``authenticate`` to take once.
_CHECKED = "safecity.authenticated"


def parse_id(text: str | None) -> int | None:
    """``text`` as a database id (ASCII digits, at most 2**63-1), or None when it is not one.

    ``str.isdigit`` alone lets through '²' (which ``int`` refuses) and numbers no
    database integer holds.
    """
    text = (text or "").strip()
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def context(request: Request) -> ApiContext:
    return request.app.state.ctx


Context = Annotated[ApiContext, Depends(context)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _unauthorised(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request) -> Principal | None:
    """The principal of the request's token or session, or None (raises on a bad one).

    The request guard runs this before a body is read; its answer is taken here once.
    """
    checked = request.scope.pop(_CHECKED, None)
    if checked is not None:
        return checked[0]
    return await _authenticate(request)


async def check_before_body(request: Request) -> Principal | None:
    """For the request guard: authenticate (raising as :func:`authenticate` does) and keep
    the answer for the request's own dependencies."""
    principal = await _authenticate(request)
    request.scope[_CHECKED] = (principal,)
    return principal


async def _authenticate(request: Request) -> Principal | None:
    ctx: ApiContext = request.app.state.ctx
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorised("use 'Authorization: Bearer <API token>'")
        principal = await run_in_threadpool(
            resolve_token, ctx.store, value.strip(), clock=ctx.clock
        )
        if principal is None:
            raise _unauthorised("the API token is not valid (unknown, revoked or expired)")
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    found = await run_in_threadpool(
        resolve_session, ctx.store, cookie, policy=ctx.config.api, clock=ctx.clock
    )
    if found is None:
        raise _unauthorised("your session has ended; sign in again")
    principal, csrf = found
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf.encode()):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header; reload the page")
    return principal


async def still_signed_in(request: Request) -> Principal | None:
    """For long streams and pages: the principal now, or None (signed out, ended, no cookie)."""
    try:
        return await authenticate(request)
    except HTTPException:
        return None


async def current_principal(request: Request) -> Principal:
    """Every endpoint but /healthz and login depends on this."""
    principal = await authenticate(request)
    if principal is None:
        raise _unauthorised("sign in first (or send an API token)")
    # Set in the request's own task, so the handler (run in a thread with a copy of
    # this context) records it with every audit entry it writes.
    ORIGIN.set(f"api {principal.username}@{client_ip(request)} ({principal.via})")
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets through only users whose role has ``permission``."""

    async def check(principal: CurrentUser) -> Principal:
        if not principal.can(permission):
            raise HTTPException(
                403, f"your role ({principal.role.value}) may not {permission.value}"
            )
        return principal

    return check


def check_camera(principal: Principal, camera: str) -> None:
    if not principal.sees_camera(camera):
        raise HTTPException(403, f"camera {camera!r} is not granted to you")


class PageParams:
    """``limit`` and an opaque ``cursor`` (from the previous page's ``next_cursor``)."""

    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=500, description="items per page")] = 50,
        cursor: Annotated[
            str | None, Query(max_length=32, pattern=r"^[0-9]+$", description="next_cursor")
        ] = None,
    ) -> None:
        self.limit = limit
        self.cursor = cursor

    @property
    def offset(self) -> int:
        """For lists paged by position: the cursor is the offset of the next item."""
        offset = int(self.cursor) if self.cursor else 0
        if offset > MAX_OFFSET:  # no list is this long; the database could not take it
            raise HTTPException(400, "the cursor is not valid; start again from the first page")
        return offset

    @property
    def below_id(self) -> int | None:
        """For lists paged by id, newest first: the cursor is the id to continue below."""
        return self.offset if self.cursor else None

    def cut(self, rows: Sequence[T]) -> tuple[list[T], str | None]:
        """This page of ``rows`` (read from ``offset``, at least ``limit + 1`` of them when
        there are more), and the cursor of the next page: None on the last one."""
        more = len(rows) > self.limit
        return list(rows[: self.limit]), str(self.offset + self.limit) if more else None


Page = Annotated[PageParams, Depends()]
