"""Sign in and out; who am I."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from safecity.access.roles import PERMISSIONS, Principal
from safecity.access.sessions import LoginError, login, logout
from safecity.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Context,
    CurrentUser,
    client_ip,
)
from safecity.api.schemas.auth import LoginIn, LoginOut, MeOut
from safecity.governance.audit import ORIGIN

router = APIRouter(prefix="/auth", tags=["auth"])


def me_out(principal: Principal, csrf: str | None, display_name: str = "") -> MeOut:
    return MeOut(
        username=principal.username,
        display_name=display_name,
        role=principal.role,
        permissions=sorted(p.name.lower() for p in PERMISSIONS[principal.role]),
        cameras=None if principal.sees_all_cameras else sorted(principal.cameras),
        via=principal.via,
        csrf_token=csrf,
    )


@router.post(
    "/login",
    response_model=LoginOut,
    responses={401: {"description": "wrong user name or password"}, 429: {"description": "locked"}},
)
def sign_in(body: LoginIn, request: Request, response: Response, ctx: Context) -> LoginOut:
    """Open a console session: sets an HttpOnly session cookie; returns the CSRF token."""
    # Nobody is authenticated yet: the origin is the address alone (the actor says who).
    ORIGIN.set(f"api {client_ip(request)} (login)")
    try:
        signed = login(
            ctx.store,
            body.username,
            body.password,
            ip=client_ip(request),
            policy=ctx.config.api,
            clock=ctx.clock,
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
    me = me_out(signed.principal, signed.csrf_token)
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
def whoami(request: Request, user: CurrentUser) -> MeOut:
    """The signed-in user, role, permissions and cameras (and the session's CSRF token)."""
    csrf = request.cookies.get(CSRF_COOKIE) if user.via == "session" else None
    return me_out(user, csrf)
