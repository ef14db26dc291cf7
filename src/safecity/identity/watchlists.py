"""Watchlists bound to legal authorisations, and the gallery a camera may match against.

DESIGN.md invariant 1: no matching without a valid authorisation. A watchlist
cannot exist without one (see :mod:`safecity.governance.authorisations`: two
users, legal basis, issuing authority, reference, purpose, validity window,
camera scope), and :func:`active_gallery` returns only the templates whose
authorisation allows matching at the given instant *on* the given camera.

Camera scope: ``cameras=None`` (or ``"all"``) authorises every camera, and is
recorded as such; a list authorises exactly those camera names; an empty list
is refused as ambiguous.

>>> info = create_watchlist(store, "missing-persons", by="alice",  # doctest: +SKIP
...     legal_basis="Police Act s.12", authority="District Court", reference="2024/117",
...     purpose="find missing persons",
...     valid_from=start, valid_until=end, cameras=["gate-1"])
>>> approve(store, info.authorisation_id, by="bob")  # doctest: +SKIP
>>> vectors, entries = active_gallery(store, "gate-1", now, embedder="dlib")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from safecity.errors import AuthorisationError, SafecityError
from safecity.governance import audit
from safecity.governance.authorisations import (
    CameraScope,
    allows_matching,
    camera_scopes,
    propose_in,
)
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.identity.matcher import GalleryEntry
from safecity.store.db import Store, StoreError
from safecity.store.schema import (
    Authorisation,
    Person,
    Template,
    Watchlist,
)


class WatchlistError(SafecityError):
    """A watchlist is missing, or its name is taken."""


#: What a watchlist lists: persons by face templates, or vehicles by licence plate.
KINDS = ("face", "plate")


@dataclass(frozen=True)
class WatchlistInfo:
    """A watchlist with its authorisation, as a plain value."""

    id: int
    name: str
    authorisation_id: int
    status: str  # the authorisation's: proposed, active, emergency, refused, revoked
    legal_basis: str
    authority: str
    reference: str
    purpose: str
    valid_from: datetime
    valid_until: datetime
    cameras: list[str] | None  # None: every camera
    persons: int
    templates: int
    valid_now: bool  # matching allowed now (on some camera in scope)
    created_at: datetime
    emergency_deadline_at: datetime | None = None
    request_filed_at: datetime | None = None
    kind: str = "face"  # what it lists: faces, or licence plates (identity.plate_lists)

    def covers(self, camera: str, at: datetime) -> bool:
        """Whether this watchlist may be matched on ``camera`` at ``at``."""
        return allows_matching(self, self.cameras, camera, at)


def create_watchlist(
    store: Store,
    name: str,
    *,
    by: str,
    authorisation: int | None = None,
    legal_basis: str = "",
    authority: str = "",
    reference: str = "",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    cameras: CameraScope = None,
    purpose: str = "",
    evidence_days: int = 90,
    clock: Clock = SYSTEM_CLOCK,
    kind: str = "face",
) -> WatchlistInfo:
    """Create a watchlist under an existing authorisation, or under a new proposal.

    ``kind``: ``"face"`` (persons, enrolled from photos) or ``"plate"`` (vehicles,
    listed by licence plate: :mod:`safecity.identity.plate_lists`).

    With ``authorisation`` the watchlist joins that authorisation (not a
    refused or revoked one). Without it, the legal fields propose a new
    authorisation (by ``by``) that another user must approve before anything
    matches. Invalid fields raise :class:`AuthorisationError`; a taken name
    :class:`WatchlistError`.
    """
    name = (name or "").strip()
    if not name:
        raise WatchlistError("a watchlist needs a name")
    if kind not in KINDS:
        raise WatchlistError(
            f"a watchlist lists faces or plates (kind face or plate), not '{kind}'"
        )
    with store.transaction(write=True) as session:
        if session.scalar(select(Watchlist.id).where(Watchlist.name == name)) is not None:
            raise WatchlistError(f"a watchlist named '{name}' already exists")
        if authorisation is not None:
            row = session.get(Authorisation, authorisation)
            if row is None:
                raise AuthorisationError(f"there is no authorisation {authorisation}")
            if row.status in ("refused", "revoked"):
                raise AuthorisationError(
                    f"authorisation {authorisation} is {row.status}; a watchlist needs a valid one"
                )
        else:
            if valid_from is None or valid_until is None:
                raise AuthorisationError(
                    f"watchlist '{name}' needs a legal authorisation: give an existing one, "
                    "or its validity window and legal fields"
                )
            row = propose_in(
                session,
                by=by,
                legal_basis=legal_basis,
                authority=authority,
                reference=reference,
                purpose=purpose,
                valid_from=valid_from,
                valid_until=valid_until,
                cameras=cameras,
                evidence_days=evidence_days,
                clock=clock,
            )
        watchlist = Watchlist(name=name, authorisation_id=row.id, created_at=clock.now(), kind=kind)
        session.add(watchlist)
        try:
            session.flush()
        except IntegrityError:  # another process took the name meanwhile
            raise WatchlistError(f"a watchlist named '{name}' already exists") from None
        audit.append(
            session,
            at=clock.now(),
            actor=by,
            action="watchlist.create",
            object=f"watchlist:{watchlist.id}",
            details={
                "name": name,
                "authorisation": row.id,
                "reference": row.reference,
                "kind": kind,
            },
        )
        watchlist_id = watchlist.id
    return get_watchlist(store, watchlist_id, clock=clock)


def _infos(
    store: Store, where: object | None = None, clock: Clock = SYSTEM_CLOCK
) -> list[WatchlistInfo]:
    persons = (
        select(func.count(Person.id))
        .where(Person.watchlist_id == Watchlist.id, Person.removed_at.is_(None))
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
    now = clock.now()
    with store.transaction() as session:
        rows = session.execute(query.order_by(Watchlist.name)).all()
        scopes = camera_scopes(session)
    return [
        WatchlistInfo(
            id=w.id,
            name=w.name,
            authorisation_id=a.id,
            status=a.status,
            legal_basis=a.legal_basis,
            authority=a.authority,
            reference=a.reference,
            purpose=a.purpose,
            valid_from=a.valid_from,
            valid_until=a.valid_until,
            cameras=None if a.all_cameras else scopes.get(a.id, []),
            persons=int(n_persons),
            templates=int(n_templates),
            valid_now=allows_matching(a, None, None, now),
            created_at=w.created_at,
            emergency_deadline_at=a.emergency_deadline_at,
            request_filed_at=a.request_filed_at,
            kind=w.kind,
        )
        for w, a, n_persons, n_templates in rows
    ]


def list_watchlists(store: Store, *, clock: Clock = SYSTEM_CLOCK) -> list[WatchlistInfo]:
    """Every watchlist with its authorisation and counts, by name (``valid_now`` on ``clock``)."""
    return _infos(store, clock=clock)


def get_watchlist(
    store: Store, watchlist: str | int, *, clock: Clock = SYSTEM_CLOCK
) -> WatchlistInfo:
    """One watchlist by name or id; :class:`WatchlistError` when there is none."""
    key = Watchlist.id == watchlist if isinstance(watchlist, int) else Watchlist.name == watchlist
    found = _infos(store, key, clock)
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
