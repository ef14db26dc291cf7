"""Roles, what each may do, and the principal a request acts as.

Five roles, each limited to the cameras granted to the user (an admin sees all):

- ``viewer``: cameras, events and health, with every face pixelated and no identities;
- ``operator``: what a viewer sees, unpixelated, plus watchlists and enrolment;
- ``reviewer``: events with identities and the review queue (four-eyes decisions),
  and approving or refusing authorisations;
- ``auditor``: events with identities, watchlists and the audit trail (read and verify);
- ``admin``: everything but decisions, including users and tokens. Admins administer;
  they do not decide (they could set up the accounts of the deciders; see
  :mod:`safecity.access.duties`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"
    VIEWER = "viewer"


class Permission(StrEnum):
    VIEW_CAMERAS = "view cameras, events and health"
    SEE_FACES = "see faces and identities"
    VIEW_WATCHLISTS = "view watchlists and authorisations"
    MANAGE_WATCHLISTS = "create watchlists and enrol people"
    REVIEW = "confirm or reject candidate matches"
    DECIDE_AUTHORISATIONS = "approve or refuse authorisations"
    VIEW_AUDIT = "read and verify the audit trail"
    MANAGE_USERS = "manage users and tokens"


#: Decisions that need a second person: never an admin's (see access.duties).
DECISIONS = frozenset({Permission.REVIEW, Permission.DECIDE_AUTHORISATIONS})
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission) - DECISIONS,
    Role.OPERATOR: frozenset(
        {
            Permission.VIEW_CAMERAS,
            Permission.SEE_FACES,
            Permission.VIEW_WATCHLISTS,
            Permission.MANAGE_WATCHLISTS,
        }
    ),
    Role.REVIEWER: frozenset(
        {
            Permission.VIEW_CAMERAS,
            Permission.SEE_FACES,
            Permission.VIEW_WATCHLISTS,
            Permission.REVIEW,
            Permission.DECIDE_AUTHORISATIONS,
        }
    ),
    Role.AUDITOR: frozenset(
        {
            Permission.VIEW_CAMERAS,
            Permission.SEE_FACES,
            Permission.VIEW_WATCHLISTS,
            Permission.VIEW_AUDIT,
        }
    ),
    Role.VIEWER: frozenset({Permission.VIEW_CAMERAS}),
}


def parse_role(text: str) -> Role:
    """``Role`` from its name, or ValueError naming the roles there are."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise ValueError(f"unknown role {text!r}; roles are {names}") from None


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a user, through a session or an API token.

    >>> p = Principal(1, "ana", Role.VIEWER, all_cameras=False, cameras=frozenset({"gate-1"}))
    >>> p.can(Permission.SEE_FACES), p.sees_camera("gate-1"), p.sees_camera("square")
    (False, True, False)
    """

    user_id: int
    username: str
    role: Role
    all_cameras: bool
    cameras: frozenset[str]
    via: str = "session"  # or "token <name>"

    def can(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]

    @property
    def sees_all_cameras(self) -> bool:
        return self.all_cameras or self.role is Role.ADMIN

    def sees_camera(self, camera: str) -> bool:
        return self.sees_all_cameras or camera in self.cameras

    def camera_filter(self) -> frozenset[str] | None:
        """The cameras to restrict a query to; None: all of them."""
        return None if self.sees_all_cameras else self.cameras

    def visible(self, cameras: Iterable[str]) -> list[str]:
        return [c for c in cameras if self.sees_camera(c)]
