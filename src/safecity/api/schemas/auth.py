"""Sign-in, the signed-in user, users and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from safecity.access.roles import Role

#: A camera name as the config allows it, or '*' for every camera.
CameraName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^(\*|[A-Za-z0-9_.-]+)$")]


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class MeOut(BaseModel):
    username: str
    display_name: str
    role: Role
    permissions: list[str]
    cameras: list[str] | None = Field(description="null: every camera")
    via: str
    csrf_token: str | None = Field(None, description="send as X-CSRF-Token (console sessions)")
    password_provisional: bool = Field(
        False,
        description="the password was set by someone else (an admin): no decision may be "
        "taken until you set your own (POST /auth/password)",
    )


class LoginOut(MeOut):
    expires_at: datetime


class UserOut(BaseModel):
    username: str
    display_name: str
    role: Role
    cameras: list[str] | None = Field(description="null: every camera")
    disabled: bool
    created_at: datetime
    created_by: str


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=10, max_length=1024)
    role: Role
    cameras: list[CameraName] | None = Field(
        None, max_length=1000, description="the cameras granted; ['*']: all; null: admins only"
    )
    display_name: str = Field("", max_length=256)


class UserPatch(BaseModel):
    role: Role | None = None
    cameras: list[CameraName] | None = Field(
        None, max_length=1000, description="replaces the grants; ['*']: all"
    )
    disabled: bool | None = None


class PasswordIn(BaseModel):
    password: str = Field(min_length=10, max_length=1024)


class OwnPasswordIn(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=10, max_length=1024)


class TokenIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=128, description="what the token is for")
    expires_days: float | None = Field(None, gt=0, le=3650)


class TokenOut(BaseModel):
    id: int
    username: str
    name: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="shown once; only its hash is kept")
