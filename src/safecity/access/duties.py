"""Separation of duties: no one person, admin included, takes a four-eyes decision alone.

The decisions that need a second person — confirming or rejecting a candidate
match, approving or refusing an authorisation (emergency ones included) — go
through this module from both the command line and the API, so neither can
take a weaker path. The rules:

1. **Admins administer; they do not decide.** Only a role with the permission
   decides (``reviewer``: :data:`~safecity.access.roles.Permission.REVIEW` and
   ``DECIDE_AUTHORISATIONS``); an admin has neither.
2. **A decider is an existing, enabled account, authenticated** — a console
   session on the API (never an API token, which an admin could mint for
   anyone), a password on the command line (:func:`authenticate`).
3. **A password set by someone else is provisional.** An account whose current
   password was set by another (its creator, an admin's reset) decides nothing
   until its owner sets their own.
4. **Two decisions are by two people only if neither set the other up.** An
   account is *set up* by whoever created it or ever set its password other than
   its owner (``account_sponsors``, append-only), and — transitively — by whoever
   set up those accounts. Two deciders (the two confirmations of a match; the
   proposer, emergency starter or filer of an authorisation and its approver)
   are refused when one set up the other, when the direct sponsor of one set up
   the other, or when both were set up by a common account other than the
   bootstrap admin (the first admin, made on the command line when no admin
   existed: the root every chain ends at, trusted to hand out admin accounts).

Library functions of :mod:`safecity.governance` keep taking plain names (tests,
retention); the command line and the API call :func:`review`, :func:`approve` and
:func:`refuse` here, which check the rules inside the decision's own transaction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.access.roles import PERMISSIONS, Permission, Principal, Role
from safecity.access.users import UserInfo, _find, sign_in_refusal, user_by_id
from safecity.errors import SafecityError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store
from safecity.store.schema import AccountSponsor, Authorisation, User

_TWO_PEOPLE = "a decision needs two people who did not set up each other's accounts"


class DutyError(SafecityError):
    """A decision refused by the separation-of-duties rules (the message says why)."""


class AuthenticationError(DutyError):
    """A command-line identity that could not be authenticated."""


# -- who may decide -------------------------------------------------------------------
def role_refusal(role: Role, permission: Permission) -> str | None:
    """Why ``role`` may not take decisions of ``permission`` (None: it may)."""
    if permission in PERMISSIONS[role]:
        return None
    if role is Role.ADMIN:
        return (
            f"admins administer accounts and do not decide: to {permission.value} "
            "takes a reviewer's account"
        )
    return f"your role ({role.value}) may not {permission.value}"


def _decider(session: Session, username: str, permission: Permission) -> User:
    user = _find(session, username)
    if user is None:
        raise DutyError(f"there is no user named {username!r}; only a reviewer's account decides")
    if user.disabled:
        raise DutyError(f"the account {username!r} is disabled")
    why = role_refusal(Role(user.role), permission)
    if why:
        raise DutyError(why)
    if user.password_set_by != user.username:
        raise DutyError(
            f"your password was set by {user.password_set_by or 'someone else'}; set your own "
            "password before taking decisions (the console asks at sign-in; on the command "
            f"line: safecity --user {username} user password {username})"
        )
    return user


def session_decider(principal: Principal) -> str:
    """The user name of an API principal that may decide: a console session only."""
    if principal.via != "session":
        raise DutyError(
            "decisions are made by a person signed in to the console, not a token "
            "(anyone who can make a token could decide as another)"
        )
    return principal.username


# -- who set up whom ------------------------------------------------------------------
class _Provenance:
    """Who set up each account (direct sponsors), without the bootstrap edges."""

    def __init__(self, session: Session) -> None:
        self.sponsors: dict[str, set[str]] = {}
        self.roots: set[str] = set()
        rows = session.execute(
            select(User.username, AccountSponsor.sponsor, AccountSponsor.reason).join(
                AccountSponsor, AccountSponsor.user_id == User.id
            )
        )
        for username, sponsor, reason in rows:
            if reason == "bootstrap":
                self.roots.add(username)
            else:
                self.sponsors.setdefault(username, set()).add(sponsor)

    def up(self, name: str) -> dict[str, list[str]]:
        """Everyone who set ``name`` up, directly or not, each with the chain down to it."""
        found: dict[str, list[str]] = {}
        queue = deque([(name, [name])])
        while queue:
            current, chain = queue.popleft()
            for sponsor in sorted(self.sponsors.get(current, ())):
                if sponsor not in found and sponsor != name:
                    found[sponsor] = [*chain, sponsor]
                    queue.append((sponsor, found[sponsor]))
        return found


def _set_up(chain: list[str], you: bool) -> str:
    """``[a, b, c]`` as 'a's account was set up by b, whose account was set up by c'."""
    head = "your account" if you else f"the account of {chain[0]}"
    text = f"{head} was set up by {chain[1]}"
    for name in chain[2:]:
        text += f", whose account was set up by {name}"
    return text


def link(session: Session, you: str, other: str, act: str) -> str | None:
    """Why ``you`` and ``other`` (who ``act``) may be one person; None if they are two."""
    if you == other:
        return f"you {act}; {_TWO_PEOPLE}"
    graph = _Provenance(session)
    up_you, up_other = graph.up(you), graph.up(other)
    if other in up_you:
        return f"{_set_up(up_you[other], True)}, who {act}; {_TWO_PEOPLE}"
    if you in up_other:
        return f"{_set_up(up_other[you], False)} (you), who {act}; {_TWO_PEOPLE}"
    direct_you = graph.sponsors.get(you, set())
    direct_other = graph.sponsors.get(other, set())
    for name in sorted(direct_you & set(up_other)) + sorted(direct_other & set(up_you)):
        return (
            f"your account and that of {other}, who {act}, were both set up by {name} "
            f"({_set_up(up_you[name], True)}; {_set_up(up_other[name], False)}); {_TWO_PEOPLE}"
        )
    for name in sorted((set(up_you) & set(up_other)) - graph.roots):
        return (
            f"your account and that of {other}, who {act}, were both set up by {name} "
            f"({_set_up(up_you[name], True)}; {_set_up(up_other[name], False)}); {_TWO_PEOPLE}"
        )
    return None


def _linked_to_any(session: Session, you: str, others: Iterable[tuple[str, str]]) -> None:
    for other, act in others:
        why = link(session, you, other, act)
        if why:
            raise DutyError(why)


# -- authentication on the command line -----------------------------------------------
def authenticate(
    store: Store, username: str, password: str, *, purpose: str, clock: Clock = SYSTEM_CLOCK
) -> UserInfo:
    """The enabled account ``username`` if ``password`` is its password.

    A failure is audited (``auth.login_failed``, ``via: cli``) and answered with the
    console's words, whatever failed.
    """
    with store.transaction() as session:
        user = _find(session, username)
        user_id = user.id if user is not None else None
        password_hash = user.password_hash if user is not None else None
        disabled = bool(user is not None and user.disabled)
    reason = sign_in_refusal(user_id, password_hash, disabled, password)
    if reason:
        audit.record(
            store,
            actor="anonymous",
            action="auth.login_failed",
            object=username[:128],
            purpose="access-control",
            details={"via": "cli", "reason": reason, "for": purpose},
            clock=clock,
        )
        raise AuthenticationError(f"wrong user name or password for {username!r}")
    with store.transaction() as session:
        info = user_by_id(session, user_id)  # type: ignore[arg-type]
    assert info is not None
    return info


# -- the decisions --------------------------------------------------------------------
def review(
    store: Store,
    event_id: int,
    *,
    decider: str,
    decision: str,
    note: str = "",
    required: int = 2,
    clock: Clock = SYSTEM_CLOCK,
):
    """:func:`~safecity.governance.review.review_match` by an authenticated ``decider``."""
    from safecity.governance.review import review_match

    def vet(session: Session, confirmed: list[str]) -> None:
        _decider(session, decider, Permission.REVIEW)
        if decision == "confirm":
            _linked_to_any(
                session,
                decider,
                [(c, "confirmed this match") for c in dict.fromkeys(confirmed) if c != decider],
            )

    return review_match(
        store,
        event_id,
        by=decider,
        decision=decision,  # type: ignore[arg-type]
        note=note,
        required=required,
        clock=clock,
        vet=vet,
    )


def review_refusal(store: Store, username: str, confirmed_by: list[str]) -> str | None:
    """Why ``username`` may not confirm a match already confirmed by ``confirmed_by``."""
    with store.transaction() as session:
        try:
            _decider(session, username, Permission.REVIEW)
            _linked_to_any(
                session,
                username,
                [(c, "confirmed this match") for c in dict.fromkeys(confirmed_by) if c != username],
            )
        except DutyError as exc:
            return str(exc)
    return None


def _authorisation_vet(decider: str, approving: bool):
    def vet(session: Session, row: Authorisation) -> None:
        _decider(session, decider, Permission.DECIDE_AUTHORISATIONS)
        if not approving:
            return
        others = [(row.proposed_by, _proposed(row))]
        if row.filed_by:
            others.append((row.filed_by, f"filed the request of authorisation {row.id}"))
        for name, act in others:
            if _find(session, name) is None:
                raise DutyError(
                    f"{name}, who {act}, has no account here, so nobody can tell you are "
                    "another person; it must be proposed again by a signed-in user"
                )
        _linked_to_any(session, decider, others)

    return vet


def _proposed(row: Authorisation) -> str:
    if row.emergency_deadline_at is not None:
        return f"started emergency use {row.id}"
    return f"proposed authorisation {row.id}"


def approve(
    store: Store,
    authorisation_id: int,
    *,
    decider: str,
    note: str = "",
    clock: Clock = SYSTEM_CLOCK,
):
    """:func:`~safecity.governance.authorisations.approve` by an authenticated ``decider``."""
    from safecity.governance.authorisations import approve as approve_

    return approve_(
        store,
        authorisation_id,
        by=decider,
        note=note,
        clock=clock,
        vet=_authorisation_vet(decider, approving=True),
    )


def refuse(
    store: Store, authorisation_id: int, *, decider: str, reason: str, clock: Clock = SYSTEM_CLOCK
):
    """:func:`~safecity.governance.authorisations.refuse` by an authenticated ``decider``."""
    from safecity.governance.authorisations import refuse as refuse_

    return refuse_(
        store,
        authorisation_id,
        by=decider,
        reason=reason,
        clock=clock,
        vet=_authorisation_vet(decider, approving=False),
    )


def enabled_admins(store: Store) -> int:
    """How many enabled admin accounts there are (none: the next admin is a bootstrap)."""
    with store.transaction() as session:
        return len(
            session.scalars(
                select(User.id).where(User.role == Role.ADMIN.value, User.disabled.is_(False))
            ).all()
        )


def token_creator(principal: Principal) -> list[str]:
    """Whoever made the API token a principal acts with (they could be acting as it)."""
    if principal.via.startswith("token ") and " by " in principal.via:
        return [principal.via.rpartition(" by ")[2]]
    return []


__all__ = [
    "AuthenticationError",
    "DutyError",
    "approve",
    "authenticate",
    "enabled_admins",
    "link",
    "refuse",
    "review",
    "review_refusal",
    "role_refusal",
    "session_decider",
    "token_creator",
]
