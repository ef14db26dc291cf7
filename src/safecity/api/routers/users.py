"""Accounts and API tokens (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from safecity.access import duties, sessions, users
from safecity.access.roles import Permission, Principal
from safecity.api.deps import Context, Page, require
from safecity.api.errors import Conflict, NotFound
from safecity.api.schemas.auth import (
    NewTokenOut,
    PasswordIn,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
    UserPatch,
)
from safecity.api.schemas.common import Page as PageOf

router = APIRouter(tags=["users"])
Admin = Annotated[Principal, Depends(require(Permission.MANAGE_USERS))]
Username = Annotated[str, Path(min_length=1, max_length=64)]


def user_out(info: users.UserInfo) -> UserOut:
    return UserOut(
        username=info.username,
        display_name=info.display_name,
        role=info.role,
        cameras=None if info.all_cameras else list(info.cameras),
        disabled=info.disabled,
        created_at=info.created_at,
        created_by=info.created_by,
    )


def _known(ctx, username: str) -> None:
    try:
        users.get_user(ctx.store, username)
    except users.UserError:
        raise NotFound(f"no user named {username!r}") from None


@router.get("/users", response_model=PageOf[UserOut])
def list_users(admin: Admin, ctx: Context, page: Page) -> PageOf[UserOut]:
    rows, next_cursor = page.cut(
        users.list_users(ctx.store, limit=page.limit + 1, offset=page.offset)
    )
    return PageOf[UserOut](items=[user_out(u) for u in rows], next_cursor=next_cursor)


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserIn, admin: Admin, ctx: Context) -> UserOut:
    try:
        users.get_user(ctx.store, body.username)
        raise Conflict(f"a user named {body.username!r} already exists")
    except users.UserError:
        pass
    info = users.create_user(
        ctx.store,
        body.username,
        body.password,
        body.role,
        by=admin.username,
        also_by=duties.token_creator(admin),
        cameras=body.cameras,
        display_name=body.display_name,
        clock=ctx.clock,
    )
    return user_out(info)


@router.patch("/users/{username}", response_model=UserOut)
def update_user(username: Username, body: UserPatch, admin: Admin, ctx: Context) -> UserOut:
    _known(ctx, username)
    info = users.update_user(
        ctx.store,
        username,
        by=admin.username,
        role=body.role,
        cameras=body.cameras,
        set_cameras="cameras" in body.model_fields_set,
        disabled=body.disabled,
        clock=ctx.clock,
    )
    return user_out(info)


@router.post("/users/{username}/password", status_code=204)
def set_password(username: Username, body: PasswordIn, admin: Admin, ctx: Context) -> None:
    """Reset a password: provisional (no decisions) until its owner sets their own, and
    the admin is recorded for good as having set up the account."""
    _known(ctx, username)
    users.set_password(
        ctx.store,
        username,
        body.password,
        by=admin.username,
        also_by=duties.token_creator(admin),
        clock=ctx.clock,
    )


def token_out(info: sessions.TokenInfo) -> TokenOut:
    return TokenOut(**{f: getattr(info, f) for f in TokenOut.model_fields})


@router.get("/tokens", response_model=PageOf[TokenOut])
def list_tokens(admin: Admin, ctx: Context, page: Page) -> PageOf[TokenOut]:
    rows, next_cursor = page.cut(sessions.list_tokens(ctx.store)[page.offset :])
    return PageOf[TokenOut](items=[token_out(t) for t in rows], next_cursor=next_cursor)


@router.post("/tokens", response_model=NewTokenOut, status_code=201)
def create_token(body: TokenIn, admin: Admin, ctx: Context) -> NewTokenOut:
    _known(ctx, body.username)
    text, info = sessions.create_token(
        ctx.store,
        body.username,
        body.name,
        by=admin.username,
        expires_days=body.expires_days,
        clock=ctx.clock,
    )
    return NewTokenOut(**token_out(info).model_dump(), token=text)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], admin: Admin, ctx: Context
) -> None:
    try:
        sessions.revoke_token(ctx.store, token_id, by=admin.username, clock=ctx.clock)
    except users.UserError as exc:
        raise NotFound(str(exc)) from None
