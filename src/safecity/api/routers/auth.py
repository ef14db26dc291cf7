"""Sign in and out; who am I."""

from __future__ import annotations

import asyncio
from functools import partial

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from safecity.access import users
from safecity.access.roles import PERMISSIONS, Principal
from safecity.access.sessions import LoginError, login, login_pause, logout
from safecity.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Context,
    CurrentUser,
    client_ip,
)
from safecity.api.schemas.auth import LoginIn, LoginOut, MeOut, OwnPasswordIn
from safecity.governance.audit import ORIGIN

router = APIRouter(prefix="/auth", tags=["auth"])


def me_out(
    principal: Principal, csrf: str | None, display_name: str = "", provisional: bool = False
) -> MeOut:
    return MeOut(
        username=principal.username,
        display_name=display_name,
        role=principal.role,
        permissions=sorted(p.name.lower() for p in PERMISSIONS[principal.role]),
        cameras=None if principal.sees_all_cameras else sorted(principal.cameras),
        via=principal.via,
        csrf_token=csrf,
        password_provisional=provisional,
    )


def _provisional(ctx, username: str) -> bool:
    try:
        return users.get_user(ctx.store, username).provisional
    except users.UserError:
        return False


@router.post(
    "/login",
    response_model=LoginOut,
    responses={401: {"description": "wrong user name or password"}, 429: {"description": "locked"}},
)
async def sign_in(body: LoginIn, request: Request, response: Response, ctx: Context) -> LoginOut:
    """Open a console session: sets an HttpOnly session cookie; returns the CSRF token."""
    # Nobody is authenticated yet: the origin is the address alone (the actor says who).
    # Set in this task, so the threads below (copies of its context) record it.
    ORIGIN.set(f"api {client_ip(request)} (login)")
    where = {"ip": client_ip(request), "policy": ctx.config.api, "clock": ctx.clock}
    try:
        pause = await run_in_threadpool(login_pause, ctx.store, body.username, **where)
        if pause:
            # A slowed name waits here, in the event loop: no worker thread is held,
            # so guesses from many addresses cannot starve other requests.
            await asyncio.sleep(pause)
        signed = await run_in_threadpool(
            partial(login, waited=True, **where), ctx.store, body.username, body.password
        )
    except LoginError as exc:
        if exc.retry_after_s is not None:
            raise HTTPException(
                429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}
            ) from None
        raise HTTPException(401, str(exc)) from None
    secure = ctx.config.api.secure_cookies
    max_age = int((signed.expires_at - ctx.clock.now()).total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    # Readable by the console's scripts (it is no secret without the session cookie).
    response.set_cookie(
        CSRF_COOKIE, signed.csrf_token, max_age=max_age, samesite="strict", secure=secure, path="/"
    )
    me = me_out(
        signed.principal,
        signed.csrf_token,
        provisional=await run_in_threadpool(_provisional, ctx, signed.principal.username),
    )
    return LoginOut(**me.model_dump(), expires_at=signed.expires_at)


@router.post("/logout", status_code=204)
async def sign_out(request: Request, response: Response, user: CurrentUser, ctx: Context) -> None:
    """End this console session (API tokens are revoked under /tokens instead)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        await run_in_threadpool(logout, ctx.store, cookie, clock=ctx.clock)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.get("/me", response_model=MeOut)
def whoami(request: Request, user: CurrentUser, ctx: Context) -> MeOut:
    """The signed-in user, role, permissions and cameras (and the session's CSRF token)."""
    csrf = request.cookies.get(CSRF_COOKIE) if user.via == "session" else None
    return me_out(user, csrf, provisional=_provisional(ctx, user.username))


@router.post(
    "/password",
    status_code=204,
    responses={
        400: {"description": "wrong current password, or a weak new one"},
        403: {"description": "not a console session"},
    },
)
def change_own_password(
    body: OwnPasswordIn, response: Response, user: CurrentUser, ctx: Context
) -> None:
    """Set your own password, giving the current one (a console session only).

    A password an admin set (at creation or in a reset) is provisional: no decision is
    taken with it until its owner sets their own here. Every session of the account
    ends, this one included: sign in again with the new password.
    """
    if user.via != "session":
        raise HTTPException(403, "change your password in a console session, not with a token")
    try:
        users.change_own_password(
            ctx.store, user.username, body.current_password, body.new_password, clock=ctx.clock
        )
    except users.UserError as exc:
        raise HTTPException(400, str(exc)) from None
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
