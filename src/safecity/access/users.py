"""Local user accounts: argon2id password hashes, roles and camera grants.

Every change to an account is audited (``user.create``, ``user.update``,
``user.password``); passwords and their hashes never reach the audit trail.

Who set each account's current password is kept (``password_set_by``): a
password set by someone else (an admin creating the account or resetting it) is
provisional, and the account takes no decision until its owner sets their own
(:func:`change_own_password`). Who created an account and everyone else who ever
set its password are kept too, append-only (``account_sponsors``), for the
separation-of-duties rules of :mod:`safecity.access.duties`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.access.roles import Principal, Role
from safecity.errors import SafecityError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store
from safecity.store.schema import AccountSponsor, User, UserCamera

MIN_PASSWORD = 10
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults
# Verified against when the user name is unknown, so a wrong name costs the same time.
_DUMMY_HASH = _hasher.hash("safecity: no such user")


class UserError(SafecityError):
    """An account cannot be created or changed (bad name, weak password, unknown user)."""


@dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    display_name: str
    role: Role
    all_cameras: bool
    cameras: tuple[str, ...]
    disabled: bool
    created_at: datetime
    created_by: str
    password_set_by: str = ""

    @property
    def provisional(self) -> bool:
        """Whether the current password was set by someone other than its owner."""
        return self.password_set_by != self.username

    def principal(self, via: str = "session") -> Principal:
        return Principal(
            self.id, self.username, self.role, self.all_cameras, frozenset(self.cameras), via
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; an unknown user (None) costs the same time."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def sign_in_refusal(
    user_id: int | None, password_hash: str | None, disabled: bool, password: str
) -> str:
    """Why a sign-in fails ('' when it does not), as the audit trail says it: unknown
    user, wrong password or account disabled. The password is checked in every case,
    so an unknown name costs the same time; run it outside any write transaction."""
    if not password_matches(password_hash, password):
        return "unknown user" if user_id is None else "wrong password"
    return "account disabled" if disabled else ""


def check_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    if password.lower() == username.lower():
        raise UserError("the password must not be the user name")


def check_username(username: str) -> str:
    if not _USERNAME.match(username):
        raise UserError(
            f"{username!r} is not a valid user name "
            "(1-64 letters, digits and the characters _ . @ -)"
        )
    return username


def _info(user: User) -> UserInfo:
    return UserInfo(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=Role(user.role),
        all_cameras=user.all_cameras,
        cameras=tuple(sorted(c.camera for c in user.cameras)),
        disabled=user.disabled,
        created_at=user.created_at,
        created_by=user.created_by,
        password_set_by=user.password_set_by,
    )


def _sponsor(session: Session, user: User, names: Iterable[str], reason: str, at: datetime) -> None:
    """Append who set up ``user`` (never its owner: one's own password sponsors nobody)."""
    for name in dict.fromkeys(n for n in names if n and n != user.username):
        session.add(AccountSponsor(user_id=user.id, sponsor=name, reason=reason, at=at))


def _grants(cameras: Iterable[str] | None) -> tuple[bool, list[str]]:
    """``None`` or ``["*"]``: every camera; otherwise exactly those named."""
    if cameras is None:
        return True, []
    names = sorted({c.strip() for c in cameras if c.strip()})
    if "*" in names:
        return True, []
    return False, names


def create_user(
    store: Store,
    username: str,
    password: str,
    role: Role,
    *,
    by: str,
    cameras: Iterable[str] | None = None,
    display_name: str = "",
    also_by: Iterable[str] = (),
    bootstrap: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> UserInfo:
    """Create an account; ``["*"]`` grants every camera (None too, for an admin only).

    ``by`` (and ``also_by``: whoever made the API token ``by`` acted with) are recorded
    as its sponsors, and its password is provisional until its owner changes it.
    ``bootstrap``: the first admin, made on the command line when there was none.
    """
    check_username(username)
    check_password(password, username)
    if cameras is None and role is not Role.ADMIN:
        raise UserError(
            "name the cameras this user may see (or '*' for all); only admins see all by default"
        )
    all_cameras, names = _grants(cameras)
    now = clock.now()
    with store.transaction(write=True) as session:
        if _find(session, username) is not None:
            raise UserError(f"a user named {username!r} already exists")
        user = User(
            username=username,
            display_name=display_name,
            password_hash=hash_password(password),
            role=role.value,
            all_cameras=all_cameras,
            disabled=False,
            created_at=now,
            created_by=by,
            password_changed_at=now,
            password_set_by=by,
            cameras=[UserCamera(camera=c) for c in names],
        )
        session.add(user)
        session.flush()
        _sponsor(session, user, [by, *also_by], "bootstrap" if bootstrap else "created", now)
        audit.append(
            session,
            at=now,
            actor=by,
            action="user.create",
            object=username,
            purpose="access-control",
            details={"role": role.value, "cameras": "*" if all_cameras else names},
        )
        return _info(user)


def update_user(
    store: Store,
    username: str,
    *,
    by: str,
    role: Role | None = None,
    cameras: Iterable[str] | None = None,
    set_cameras: bool = False,
    disabled: bool | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> UserInfo:
    """Change role, camera grants (when ``set_cameras``) or whether the account is disabled.

    Disabling an account ends its sessions and revokes its API tokens for good.
    """
    now = clock.now()
    with store.transaction(write=True) as session:
        user = _require(session, username)
        was_admin = user.role == Role.ADMIN.value and not user.disabled
        changes: dict[str, object] = {}
        if role is not None and role.value != user.role:
            changes["role"] = role.value
            user.role = role.value
        if set_cameras:
            all_cameras, names = _grants(cameras)
            user.all_cameras = all_cameras
            user.cameras = [UserCamera(camera=c) for c in names]
            changes["cameras"] = "*" if all_cameras else names
        if disabled is not None and disabled != user.disabled:
            user.disabled = disabled
            changes["disabled"] = disabled
        if was_admin and (user.role != Role.ADMIN.value or user.disabled):
            others = session.scalar(
                select(func.count())
                .select_from(User)
                .where(User.role == Role.ADMIN.value, User.disabled.is_(False), User.id != user.id)
            )
            if not others:
                raise UserError(f"{username} is the last admin; make another admin first")
        if disabled:
            from safecity.access.sessions import end_sessions_of, revoke_tokens_of

            end_sessions_of(session, user.id)
            # For good: enabling the account again does not bring its tokens back.
            revoke_tokens_of(session, user.id, by=by, now=now)
        if changes:
            audit.append(
                session,
                at=now,
                actor=by,
                action="user.update",
                object=username,
                purpose="access-control",
                details=changes,
            )
        session.flush()
        return _info(user)


def set_password(
    store: Store,
    username: str,
    password: str,
    *,
    by: str,
    also_by: Iterable[str] = (),
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """A new password; the user's console sessions end.

    Set by anyone but the owner, it is provisional and they become the account's
    sponsors for good (``also_by``: whoever made the API token ``by`` acted with).
    """
    check_password(password, username)
    now = clock.now()
    with store.transaction(write=True) as session:
        user = _require(session, username)
        user.password_hash = hash_password(password)
        user.password_changed_at = now
        user.password_set_by = by
        _sponsor(session, user, [by, *also_by], "password", now)
        from safecity.access.sessions import end_sessions_of

        end_sessions_of(session, user.id)
        audit.append(
            session,
            at=now,
            actor=by,
            action="user.password",
            object=username,
            purpose="access-control",
        )


def change_own_password(
    store: Store,
    username: str,
    old_password: str,
    new_password: str,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """The owner sets their own password, proving the old one; every session ends.

    This is what makes a provisional password (set by an admin) the owner's own.
    A wrong old password raises :class:`UserError`.
    """
    with store.transaction() as session:
        user = _find(session, username)
        password_hash = user.password_hash if user is not None else None
    if not password_matches(password_hash, old_password):
        raise UserError("the current password is wrong")
    if new_password == old_password:
        raise UserError("the new password must differ from the current one")
    set_password(store, username, new_password, by=username, clock=clock)


def get_user(store: Store, username: str) -> UserInfo:
    with store.transaction() as session:
        return _info(_require(session, username))


def list_users(store: Store, *, limit: int = 100, offset: int = 0) -> list[UserInfo]:
    with store.transaction() as session:
        rows = session.scalars(select(User).order_by(User.username).limit(limit).offset(offset))
        return [_info(u) for u in rows]


def count_users(store: Store) -> int:
    with store.transaction() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def _find(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def _require(session: Session, username: str) -> User:
    user = _find(session, username)
    if user is None:
        raise UserError(f"no user named {username!r}")
    return user


def user_by_id(session: Session, user_id: int) -> UserInfo | None:
    user = session.get(User, user_id)
    return None if user is None else _info(user)


__all__ = [
    "MIN_PASSWORD",
    "UserError",
    "UserInfo",
    "change_own_password",
    "check_password",
    "count_users",
    "create_user",
    "get_user",
    "list_users",
    "password_matches",
    "sign_in_refusal",
    "set_password",
    "update_user",
]
