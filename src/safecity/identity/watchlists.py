"""Watchlists bound to legal authorisations, and the gallery a camera may match against.

DESIGN.md invariant 1: no matching without a valid authorisation. A watchlist
cannot exist without one (legal basis, issuing authority, reference, purpose,
validity window, camera scope), and :func:`active_gallery` returns only the
templates whose authorisation is valid at the given instant *and* covers the
given camera.

Camera scope: ``cameras=None`` (or ``"all"``) authorises every camera, and is
recorded as such; a list authorises exactly those camera names; an empty list
is refused as ambiguous.

>>> create_watchlist(store, "missing-persons", legal_basis="Police Act s.12",  # doctest: +SKIP
...     authority="District Court", reference="2024/117", purpose="find missing persons",
...     valid_from=start, valid_until=end, cameras=["gate-1"])
>>> vectors, entries = active_gallery(store, "gate-1", now, embedder="dlib")  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from safecity.errors import AuthorisationError, SafecityError
from safecity.identity.matcher import GalleryEntry
from safecity.store.db import Store, StoreError
from safecity.store.schema import (
    Authorisation,
    AuthorisationCamera,
    Person,
    Template,
    Watchlist,
)

CameraScope = Sequence[str] | Literal["all"] | None

_CAMERA_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # as CameraConfig.name


class WatchlistError(SafecityError):
    """A watchlist is missing, or its name is taken."""


@dataclass(frozen=True)
class WatchlistInfo:
    """A watchlist with its authorisation, as a plain value."""

    id: int
    name: str
    legal_basis: str
    authority: str
    reference: str
    purpose: str
    valid_from: datetime
    valid_until: datetime
    cameras: list[str] | None  # None: every camera
    persons: int
    templates: int
    valid_now: bool
    created_at: datetime

    def covers(self, camera: str, at: datetime) -> bool:
        """Whether this watchlist may be matched on ``camera`` at ``at``."""
        in_time = self.valid_from <= at < self.valid_until
        return in_time and (self.cameras is None or camera in self.cameras)


def _aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise AuthorisationError(
            f"{name} must be a date and time with a time zone, e.g. 2024-05-01T00:00:00+00:00"
        )
    return value.astimezone(UTC)


def _scope(cameras: CameraScope) -> list[str] | None:
    """Validated camera names, or None for every camera."""
    if cameras is None or cameras == "all":
        return None
    if isinstance(cameras, str):
        raise AuthorisationError(
            f"camera scope {cameras!r} must be a list of camera names or 'all'"
        )
    names = sorted({c.strip() for c in cameras if c.strip()})
    if not names:
        raise AuthorisationError(
            "the camera scope is empty; list the cameras it covers, or give none for all cameras"
        )
    bad = [n for n in names if not _CAMERA_NAME.match(n)]
    if bad:
        raise AuthorisationError(f"invalid camera name(s) in the scope: {', '.join(bad)}")
    return names


def create_watchlist(
    store: Store,
    name: str,
    legal_basis: str,
    authority: str,
    reference: str,
    valid_from: datetime,
    valid_until: datetime,
    cameras: CameraScope,
    purpose: str,
) -> WatchlistInfo:
    """Create a watchlist and the authorisation it is bound to.

    Every authorisation field is required and non-empty, times are
    timezone-aware and ``valid_until > valid_from``; otherwise
    :class:`AuthorisationError`. A taken name raises :class:`WatchlistError`.
    """
    name = (name or "").strip()
    if not name:
        raise WatchlistError("a watchlist needs a name")
    fields = {
        "legal basis": legal_basis,
        "issuing authority": authority,
        "reference": reference,
        "purpose": purpose,
    }
    missing = [label for label, value in fields.items() if not (value or "").strip()]
    if missing:
        raise AuthorisationError(
            f"watchlist '{name}' needs a legal authorisation; missing: {', '.join(missing)}"
        )
    start = _aware("valid_from", valid_from)
    end = _aware("valid_until", valid_until)
    if end <= start:
        raise AuthorisationError(
            f"the authorisation for '{name}' must end after it starts "
            f"(valid until {end.isoformat()} is not after {start.isoformat()})"
        )
    scope = _scope(cameras)
    with store.transaction(write=True) as session:
        if session.scalar(select(Watchlist.id).where(Watchlist.name == name)) is not None:
            raise WatchlistError(f"a watchlist named '{name}' already exists")
        authorisation = Authorisation(
            legal_basis=legal_basis.strip(),
            authority=authority.strip(),
            reference=reference.strip(),
            purpose=purpose.strip(),
            valid_from=start,
            valid_until=end,
            all_cameras=scope is None,
            cameras=[AuthorisationCamera(camera=c) for c in scope or []],
        )
        watchlist = Watchlist(name=name, authorisation=authorisation)
        session.add(watchlist)
        try:
            session.flush()
        except IntegrityError:  # another process took the name meanwhile
            raise WatchlistError(f"a watchlist named '{name}' already exists") from None
        watchlist_id = watchlist.id
    return get_watchlist(store, watchlist_id)


def _infos(store: Store, where: object | None = None) -> list[WatchlistInfo]:
    persons = (
        select(func.count(Person.id))
        .where(Person.watchlist_id == Watchlist.id)
        .correlate(Watchlist)
        .scalar_subquery()
    )
    templates = (
        select(func.count(Template.id))
        .join(Person, Template.person_id == Person.id)
        .where(Person.watchlist_id == Watchlist.id)
        .correlate(Watchlist)
        .scalar_subquery()
    )
    query = select(Watchlist, Authorisation, persons, templates).join(
        Authorisation, Watchlist.authorisation_id == Authorisation.id
    )
    if where is not None:
        query = query.where(where)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    with store.transaction() as session:
        rows = session.execute(query.order_by(Watchlist.name)).all()
        scopes: dict[int, list[str]] = {}
        for auth_id, camera in session.execute(
            select(AuthorisationCamera.authorisation_id, AuthorisationCamera.camera).order_by(
                AuthorisationCamera.camera
            )
        ):
            scopes.setdefault(auth_id, []).append(camera)
    return [
        WatchlistInfo(
            id=w.id,
            name=w.name,
            legal_basis=a.legal_basis,
            authority=a.authority,
            reference=a.reference,
            purpose=a.purpose,
            valid_from=a.valid_from,
            valid_until=a.valid_until,
            cameras=None if a.all_cameras else scopes.get(a.id, []),
            persons=int(n_persons),
            templates=int(n_templates),
            valid_now=a.valid_from <= now < a.valid_until,
            created_at=w.created_at,
        )
        for w, a, n_persons, n_templates in rows
    ]


def list_watchlists(store: Store) -> list[WatchlistInfo]:
    """Every watchlist with its authorisation and counts, by name."""
    return _infos(store)


def get_watchlist(store: Store, watchlist: str | int) -> WatchlistInfo:
    """One watchlist by name or id; :class:`WatchlistError` when there is none."""
    key = Watchlist.id == watchlist if isinstance(watchlist, int) else Watchlist.name == watchlist
    found = _infos(store, key)
    if not found:
        raise WatchlistError(
            f"no watchlist named '{watchlist}'; create it first with safecity watchlist create"
        )
    return found[0]


def active_gallery(
    store: Store, camera: str, at: datetime, embedder: str
) -> tuple[np.ndarray, list[GalleryEntry]]:
    """The templates ``camera`` may be matched against at ``at``, for one embedder.

    Returns ``(vectors, entries)``: ``vectors`` is ``(N, D)`` float32 (one row per
    template; a person with several photos has several rows), ``entries[i]`` says
    whose row ``i`` is. Only watchlists whose authorisation is valid at ``at``
    (``valid_from <= at < valid_until``) and whose scope includes ``camera``
    contribute. With no template, ``vectors`` is ``(0, 0)``.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("active_gallery needs a timezone-aware time")
    allowed = [w.id for w in list_watchlists(store) if w.covers(camera, at)]
    return load_templates(store, embedder, allowed)


def load_templates(
    store: Store, embedder: str, watchlist_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, list[GalleryEntry]]:
    """Every template of ``embedder`` on the given watchlists (None: all watchlists).

    The caller decides which watchlists are authorised; see :func:`active_gallery`
    and :class:`safecity.identity.gallery.GalleryCache`.
    """
    query = (
        select(Template.vector, Template.dim, Person.id, Person.name, Watchlist.id, Watchlist.name)
        .join(Person, Template.person_id == Person.id)
        .join(Watchlist, Person.watchlist_id == Watchlist.id)
        .where(Template.embedder == embedder)
        .order_by(Watchlist.id, Person.id, Template.id)
    )
    if watchlist_ids is not None:
        query = query.where(Watchlist.id.in_(list(watchlist_ids)))
    with store.transaction() as session:
        rows = session.execute(query).all()
    if not rows:
        return np.zeros((0, 0), np.float32), []
    dims = {dim for _, dim, *_ in rows}
    if len(dims) != 1:
        raise StoreError(
            f"templates of embedder '{embedder}' have different sizes {sorted(dims)}; "
            "the database is inconsistent"
        )
    dim = dims.pop()
    vectors = np.empty((len(rows), dim), np.float32)
    entries = []
    for i, (blob, _, person_id, person_name, wl_id, wl_name) in enumerate(rows):
        if len(blob) != 4 * dim:
            raise StoreError(f"a template of '{person_name}' is damaged ({len(blob)} bytes)")
        vectors[i] = np.frombuffer(blob, "<f4")
        entries.append(GalleryEntry(person_id, person_name, wl_id, wl_name))
    return vectors, entries
