"""Signing in: console sessions (cookie + CSRF token), API tokens, failed-login limits.

A session cookie and an API token are random secrets; the database keeps only
their SHA-256, so a copy of the database signs nobody in. Failed logins are
counted within a window per user name and address, per address, and per name
from anywhere. Past the first two limits that address is refused (HTTP 429)
until the window has passed; past the third every try for the name is slowed
(never refused: a stranger must not be able to lock a colleague out). Every login, logout,
failed login, lock and token change is in the audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from safecity.access.roles import Principal
from safecity.access.users import UserError, _find, sign_in_refusal, user_by_id
from safecity.config import ApiConfig
from safecity.errors import SafecityError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store
from safecity.store.schema import ApiToken, LoginFailure, LoginSession, User

TOKEN_PREFIX = "sc_"
_TOKEN_ID = re.compile(r"[0-9]{1,19}")
_MAX_ID = 2**63 - 1
_TOUCH_EVERY = timedelta(seconds=60)  # last-seen times are written at most this often
_BAD_LOGIN = "wrong user name or password"
#: Past ``login_user_max_failures`` for a name, each try for it waits this long, doubling
#: with every further failure up to ``SLOW_MAX_S``; the right password still gets in.
SLOW_FIRST_S = 0.5
SLOW_MAX_S = 5.0


class LoginError(SafecityError):
    """A login refused; ``retry_after_s`` is set when refused for too many failures."""

    def __init__(self, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class SignedIn:
    """A new console session: the cookie value and the CSRF token (neither is stored)."""

    token: str
    csrf_token: str
    principal: Principal
    expires_at: datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _failures(session: Session, since: datetime, *conditions) -> tuple[int, datetime | None]:
    query = select(func.count(), func.max(LoginFailure.at)).where(LoginFailure.at >= since)
    count, last = session.execute(query.where(*conditions)).one()
    return int(count or 0), last


@dataclass(frozen=True)
class _Counts:
    """Failed logins within the window: for this name from this address, for the name
    from anywhere (a spread-out guessing attack), and from this address (one guesser)."""

    pair: int
    name: int
    address: int
    last: datetime | None  # the newest failure from this address

    def locked(self, policy: ApiConfig) -> bool:
        """Refused from this address (only): it guessed too often."""
        return (
            self.pair >= policy.login_max_failures or self.address >= policy.login_ip_max_failures
        )

    def pause_s(self, policy: ApiConfig) -> float:
        """How long a try for this name waits first: 0 below the name's limit."""
        over = self.name - policy.login_user_max_failures
        return 0.0 if over < 0 else min(SLOW_MAX_S, SLOW_FIRST_S * 2 ** min(over, 16))


def _counts(session: Session, username: str, ip: str, since: datetime) -> _Counts:
    pair, last = _failures(session, since, LoginFailure.username == username, LoginFailure.ip == ip)
    name, _ = _failures(session, since, LoginFailure.username == username)
    address, last_ip = _failures(session, since, LoginFailure.ip == ip)
    times = [t for t in (last, last_ip) if t is not None]
    return _Counts(pair, name, address, max(times) if times else None)


def login_pause(
    store: Store,
    username: str,
    *,
    ip: str,
    policy: ApiConfig,
    clock: Clock = SYSTEM_CLOCK,
) -> float:
    """Seconds a login for ``username`` from ``ip`` must wait before its password is
    checked (0 below the name's limit), or :class:`LoginError` when the address is locked.

    The server waits without holding a worker thread (``asyncio.sleep``), so slowed
    guesses cannot starve other requests; :func:`login` waits itself when called alone.
    """
    with store.transaction() as session:
        counts = _counts(session, username[:128], ip[:64], clock.now() - _window(policy))
    _refuse_if_locked(counts, policy, clock.now())
    return counts.pause_s(policy)


def _window(policy: ApiConfig) -> timedelta:
    return timedelta(minutes=policy.login_window_minutes)


def _refuse_if_locked(counts: _Counts, policy: ApiConfig, now: datetime) -> None:
    if counts.locked(policy):
        assert counts.last is not None
        wait = max(1, int((counts.last + _window(policy) - now).total_seconds()))
        minutes = -(-wait // 60)
        raise LoginError(
            f"too many failed logins from this address; "
            f"try again in {minutes} minute{'s' if minutes != 1 else ''}",
            retry_after_s=wait,
        )


def login(
    store: Store,
    username: str,
    password: str,
    *,
    ip: str,
    policy: ApiConfig,
    clock: Clock = SYSTEM_CLOCK,
    waited: bool = False,
) -> SignedIn:
    """Check the password and open a session, or raise :class:`LoginError`.

    A name is locked per address (``login_max_failures``) and an address for
    every name (``login_ip_max_failures``), so a stranger cannot lock a colleague
    out from elsewhere. Past ``login_user_max_failures`` for a name from all
    addresses, every try for it waits first (:data:`SLOW_FIRST_S`, doubling, at
    most :data:`SLOW_MAX_S`) and then is answered as usual: guessing spread over
    many addresses is slowed, the user is never refused. ``waited``: the caller
    has already waited :func:`login_pause` (the API does, in its event loop).
    The password is checked outside any write transaction (argon2 takes a while;
    the pipeline's writes must not wait).
    """
    now = clock.now()
    window = _window(policy)
    username = username[:128]
    ip = ip[:64]
    with store.transaction() as session:
        counts = _counts(session, username, ip, now - window)
        user = _find(session, username)
        user_id = user.id if user else None
        password_hash = user.password_hash if user else None
        disabled = bool(user and user.disabled)
    _refuse_if_locked(counts, policy, now)
    pause = 0.0 if waited else counts.pause_s(policy)
    if pause:
        time.sleep(pause)  # outside any transaction
    reason = sign_in_refusal(user_id, password_hash, disabled, password)
    if reason:
        _record_failure(store, username, ip, reason, now, window, policy)
        raise LoginError(_BAD_LOGIN)
    assert user_id is not None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + timedelta(hours=policy.session_max_hours)
    with store.transaction(write=True) as session:
        session.execute(delete(LoginSession).where(LoginSession.expires_at < now))
        session.add(
            LoginSession(
                token_hash=_digest(token),
                user_id=user_id,
                csrf_token=csrf,
                created_at=now,
                last_seen_at=now,
                expires_at=expires,
                ip=ip,
            )
        )
        audit.append(
            session,
            at=now,
            actor=username,
            action="auth.login",
            object=username,
            purpose="access-control",
            details={"ip": ip},
        )
        info = user_by_id(session, user_id)
    assert info is not None
    return SignedIn(token, csrf, info.principal(), expires)


#: The actor of a failed login: nobody was authenticated (the name tried is the object).
ANONYMOUS = "anonymous"


def _record_failure(
    store: Store,
    username: str,
    ip: str,
    reason: str,
    now: datetime,
    window: timedelta,
    policy: ApiConfig,
) -> None:
    with store.transaction(write=True) as session:
        # Old failures are of no further use: they go as new ones come.
        session.execute(delete(LoginFailure).where(LoginFailure.at < now - window))
        session.add(LoginFailure(username=username, ip=ip, at=now))
        session.flush()
        counts = _counts(session, username, ip, now - window)
        audit.append(
            session,
            at=now,
            actor=ANONYMOUS,
            action="auth.login_failed",
            object=username,
            purpose="access-control",
            details={"ip": ip, "reason": reason},
        )
        # One record when a limit is reached, not one per refused try after it: the
        # address locked, or (from here on) every try for the name slowed.
        reached = []
        if (
            counts.pair == policy.login_max_failures
            or counts.address == policy.login_ip_max_failures
        ):
            reached.append("auth.login_locked")
        if counts.name == policy.login_user_max_failures:
            reached.append("auth.login_slowed")
        for action in reached:
            audit.append(
                session,
                at=now,
                actor=audit.SYSTEM_ACTOR,
                action=action,
                object=username,
                purpose="access-control",
                details={
                    "ip": ip,
                    "failures_for_user_from_ip": counts.pair,
                    "failures_for_user": counts.name,
                    "failures_from_ip": counts.address,
                    "minutes": policy.login_window_minutes,
                },
            )


def resolve_session(
    store: Store, token: str, *, policy: ApiConfig, clock: Clock = SYSTEM_CLOCK
) -> tuple[Principal, str] | None:
    """The principal and CSRF token of a live session, or None (unknown, idle, expired)."""
    if not token or len(token) > 256:
        return None
    now = clock.now()
    digest = _digest(token)
    with store.transaction() as session:
        row = session.get(LoginSession, digest)
        if row is None or row.expires_at <= now:
            return None
        if row.last_seen_at + timedelta(minutes=policy.session_idle_minutes) <= now:
            return None
        info = user_by_id(session, row.user_id)
        if info is None or info.disabled:
            return None
        csrf, stale = row.csrf_token, now - row.last_seen_at >= _TOUCH_EVERY
    if stale:
        with store.transaction(write=True) as session:
            touched = session.get(LoginSession, digest)
            if touched is not None:
                touched.last_seen_at = now
    return info.principal(), csrf


def logout(store: Store, token: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
    now = clock.now()
    with store.transaction(write=True) as session:
        row = session.get(LoginSession, _digest(token))
        if row is None:
            return
        user = session.get(User, row.user_id)
        session.delete(row)
        audit.append(
            session,
            at=now,
            actor=user.username if user else audit.SYSTEM_ACTOR,
            action="auth.logout",
            object=user.username if user else "",
            purpose="access-control",
        )


def end_sessions_of(session: Session, user_id: int) -> None:
    session.execute(delete(LoginSession).where(LoginSession.user_id == user_id))


def revoke_tokens_of(session: Session, user_id: int, *, by: str, now: datetime) -> None:
    """Revoke every live API token of a user (an account disabled), each audited."""
    live = select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    for row in session.scalars(live).all():
        row.revoked_at = now
        audit.append(
            session,
            at=now,
            actor=by,
            action="token.revoke",
            object=f"token:{row.id}",
            purpose="access-control",
            details={"reason": "account disabled"},
        )


@dataclass(frozen=True)
class TokenInfo:
    id: int
    username: str
    name: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def create_token(
    store: Store,
    username: str,
    name: str,
    *,
    by: str,
    expires_days: float | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> tuple[str, TokenInfo]:
    """A new API token for ``username``; the returned text is shown once, never stored."""
    name = name.strip()
    if not name or len(name) > 128:
        raise UserError("a token needs a name of 1-128 characters (what uses it)")
    now = clock.now()
    secret = secrets.token_urlsafe(32)
    expires = now + timedelta(days=expires_days) if expires_days else None
    with store.transaction(write=True) as session:
        user = _find(session, username)
        if user is None:
            raise UserError(f"no user named {username!r}")
        row = ApiToken(
            user_id=user.id,
            name=name,
            secret_hash=_digest(secret),
            created_at=now,
            created_by=by,
            expires_at=expires,
        )
        session.add(row)
        session.flush()
        audit.append(
            session,
            at=now,
            actor=by,
            action="token.create",
            object=f"token:{row.id}",
            purpose="access-control",
            details={
                "user": username,
                "name": name,
                "expires_at": expires.isoformat() if expires else None,
            },
        )
        return f"{TOKEN_PREFIX}{row.id}_{secret}", _token_info(row, username)


def revoke_token(store: Store, token_id: int, *, by: str, clock: Clock = SYSTEM_CLOCK) -> None:
    now = clock.now()
    with store.transaction(write=True) as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise UserError(f"no API token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = now
            audit.append(
                session,
                at=now,
                actor=by,
                action="token.revoke",
                object=f"token:{token_id}",
                purpose="access-control",
            )


def list_tokens(store: Store, username: str | None = None) -> list[TokenInfo]:
    with store.transaction() as session:
        query = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
        if username is not None:
            query = query.where(User.username == username)
        return [_token_info(t, u) for t, u in session.execute(query.order_by(ApiToken.id))]


def _token_info(row: ApiToken, username: str) -> TokenInfo:
    return TokenInfo(
        row.id,
        username,
        row.name,
        row.created_at,
        row.created_by,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
    )


def resolve_token(store: Store, text: str, *, clock: Clock = SYSTEM_CLOCK) -> Principal | None:
    """The principal of a valid API token ``sc_<id>_<secret>``, or None."""
    if not text.startswith(TOKEN_PREFIX) or len(text) > 256:
        return None
    ident, _, secret = text[len(TOKEN_PREFIX) :].partition("_")
    # ASCII digits only ("²".isdigit() is true) and within a 64-bit integer.
    if not _TOKEN_ID.fullmatch(ident) or int(ident) > _MAX_ID or not secret:
        return None
    now = clock.now()
    with store.transaction() as session:
        row = session.get(ApiToken, int(ident))
        if row is None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
            return None
        if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            return None
        info = user_by_id(session, row.user_id)
        if info is None or info.disabled:
            return None
        name, creator = row.name, row.created_by
        stale = row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY
    if stale:
        with store.transaction(write=True) as session:
            touched = session.get(ApiToken, int(ident))
            if touched is not None:
                touched.last_used_at = now
    # Whoever made the token is part of every origin it leaves in the audit trail.
    return info.principal(via=f"token {name} by {creator}")


__all__ = [
    "LoginError",
    "SignedIn",
    "TokenInfo",
    "create_token",
    "list_tokens",
    "login",
    "logout",
    "resolve_session",
    "resolve_token",
    "revoke_token",
]
