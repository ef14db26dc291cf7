"""Re-embedding: templates for a newly configured embedder, from the kept face photos.

Templates are stored per embedder, and a camera searches only the templates of
the configured one: after ``embedder.kind`` changes (say from ``dlib`` to
``fused``) every person enrolled before has no template for it and silently
stops matching. :func:`reembed` closes that gap from what enrolment kept: per
template, a JPEG of the enrolled face (:mod:`safecity.identity.photos`). Each
such photo is read, its face found again and embedded with the configured
embedder; the new template keeps the original photo's ``source_sha256`` and
enroller, and gets a copy of the face photo of its own (a photo goes with its
template). The old templates stay, so switching back needs nothing.

Per person it is one transaction, audited like enrolment (``enrolment.reembed``,
with the sha256 of each face photo used, never the photo). A person none of
whose photos can be used (deleted by retention, no face found in it) is listed
as needing re-enrolment from new photos. The watchlist's authorisation is
checked as enrolment checks it: refused, revoked or expired → refused.

>>> result = reembed(store, detector, make_embedder(config.embedder), by="alice")  # doctest: +SKIP
>>> [p.person_name for p in result.needs_reenrolment]  # doctest: +SKIP
['John Roe']
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import cv2
import numpy as np
from sqlalchemy import func, select

from safecity.errors import AuthorisationError, EnrolmentError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.identity.enrol import Embedder, FaceFinder, _Photo, _vector, check_authorisation
from safecity.identity.photos import photo_relative, remove_photos, write_photo
from safecity.identity.plate_lists import check_kind
from safecity.identity.watchlists import WatchlistInfo, get_watchlist, list_watchlists
from safecity.store.db import Store, StoreError
from safecity.store.schema import Person, Template, Watchlist

Status = Literal["re-embedded", "up to date", "needs re-enrolment"]


@dataclass(frozen=True)
class PersonOutcome:
    """What re-embedding did for one person."""

    person_id: int
    person_name: str
    watchlist: str
    status: Status
    added: int  # templates added now for the configured embedder
    problems: tuple[str, ...] = ()  # per photo that could not be used, why


@dataclass(frozen=True)
class ReembedResult:
    """Every person looked at, and the watchlists refused (authorisation)."""

    embedder: str
    persons: tuple[PersonOutcome, ...]
    refused: tuple[str, ...]  # one sentence per watchlist refused

    @property
    def needs_reenrolment(self) -> tuple[PersonOutcome, ...]:
        return tuple(p for p in self.persons if p.status == "needs re-enrolment")

    @property
    def added(self) -> int:
        return sum(p.added for p in self.persons)


def persons_without_templates(store: Store, embedder: str) -> dict[int, int]:
    """Per watchlist id, how many enrolled persons have no template of ``embedder``.

    Such persons are never matched while ``embedder`` is configured; see :func:`reembed`.
    """
    has = select(Template.id).where(Template.person_id == Person.id, Template.embedder == embedder)
    faces = select(Watchlist.id).where(Watchlist.kind == "face")  # a plate list has none
    query = (
        select(Person.watchlist_id, func.count(Person.id))
        .where(Person.removed_at.is_(None), ~has.exists(), Person.watchlist_id.in_(faces))
        .group_by(Person.watchlist_id)
    )
    with store.transaction() as session:
        return {int(w): int(n) for w, n in session.execute(query).all()}


def reembed(
    store: Store,
    detector: FaceFinder,
    embedder: Embedder,
    *,
    by: str,
    watchlist: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> ReembedResult:
    """Give every enrolled person templates of ``embedder`` from their kept face photos.

    ``watchlist``: only that one (its authorisation refused, revoked or expired
    raises :class:`AuthorisationError`); None: every watchlist, those whose
    authorisation forbids it are listed in ``refused`` and left alone.
    :class:`~safecity.store.StoreError` when the database or media folder fails.
    """
    by = audit.check_actor(by)
    now = clock.now()
    if watchlist is not None:
        infos = [get_watchlist(store, watchlist, clock=clock)]
        check_kind(infos[0], "face")
        check_authorisation(infos[0], now, "re-embedding")
    else:
        infos = [w for w in list_watchlists(store, clock=clock) if w.kind == "face"]
    outcomes: list[PersonOutcome] = []
    refused: list[str] = []
    for info in infos:
        try:
            check_authorisation(info, now, "re-embedding")
        except AuthorisationError as error:
            refused.append(str(error))
            continue
        with store.transaction() as session:
            people = session.execute(
                select(Person.id, Person.name)
                .where(Person.watchlist_id == info.id, Person.removed_at.is_(None))
                .order_by(Person.id)
            ).all()
        for person_id, name in people:
            outcomes.append(_person(store, info, person_id, name, detector, embedder, by, now))
    return ReembedResult(embedder.name, tuple(outcomes), tuple(refused))


@dataclass(frozen=True)
class _Source:
    sha256: str  # of the original enrolment photo
    photo_path: str | None
    enrolled_by: str


def _person(
    store: Store,
    info: WatchlistInfo,
    person_id: int,
    name: str,
    detector: FaceFinder,
    embedder: Embedder,
    by: str,
    now: datetime,
) -> PersonOutcome:
    """Re-embed one person's photos (read outside, stored in one transaction)."""
    with store.transaction() as session:
        rows = session.execute(
            select(Template.embedder, Template.source_sha256, Template.photo_path,
                   Template.enrolled_by)
            .where(Template.person_id == person_id)
            .order_by(Template.id)
        ).all()  # fmt: skip
    done = {sha for kind, sha, _, _ in rows if kind == embedder.name}
    sources: dict[str, _Source] = {}
    for kind, sha, path, enroller in rows:
        if kind == embedder.name or sha in done:
            continue
        # Several old templates of one source (two old embedders): any photo of it will do.
        if sha not in sources or (sources[sha].photo_path is None and path):
            sources[sha] = _Source(sha, path, enroller)
    if not sources:
        status: Status = "up to date" if done else "needs re-enrolment"
        problems = () if done else ("no template and no kept photo to re-embed from",)
        return PersonOutcome(person_id, name, info.name, status, 0, problems)

    ready: list[tuple[_Source, bytes, bytes, str]] = []  # source, vector, photo bytes, photo sha
    problems: list[str] = []
    for source in sources.values():
        try:
            data = _read_photo(store, source)
            photo = _find_face(data, source, detector)
            ready.append((source, _vector(embedder, photo), data, photo.sha256))
        except EnrolmentError as error:
            problems.append(str(error))
    if not ready:
        status = "up to date" if done else "needs re-enrolment"
        return PersonOutcome(person_id, name, info.name, status, 0, tuple(problems))

    written: list[str] = []
    try:
        added = _store(store, info, person_id, embedder, ready, by, now, written)
    except BaseException:
        remove_photos(store, written)  # the rows were rolled back: so go the files
        raise
    return PersonOutcome(person_id, name, info.name, "re-embedded", added, tuple(problems))


def _read_photo(store: Store, source: _Source) -> bytes:
    short = source.sha256[:12]
    if not source.photo_path:
        raise EnrolmentError(f"photo {short}: no face photo was kept for it")
    try:
        return store.media.path(source.photo_path).read_bytes()
    except FileNotFoundError:
        raise EnrolmentError(
            f"photo {short}: its kept face photo is gone (deleted by retention or by hand)"
        ) from None
    except (OSError, ValueError) as error:
        raise EnrolmentError(
            f"photo {short}: its kept face photo cannot be read ({error})"
        ) from None


def _find_face(data: bytes, source: _Source, detector: FaceFinder) -> _Photo:
    """The face in a kept face photo: the largest one (the crop is centred on it)."""
    short = source.sha256[:12]
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise EnrolmentError(f"photo {short}: the kept face photo is not a readable image")
    faces = detector.detect(image)
    if not faces:
        raise EnrolmentError(f"photo {short}: no face found in the kept face photo")
    face = max(faces, key=lambda f: float(f.width))
    return _Photo(source.photo_path or short, hashlib.sha256(data).hexdigest(), image, face)  # type: ignore[arg-type]


def _store(
    store: Store,
    info: WatchlistInfo,
    person_id: int,
    embedder: Embedder,
    ready: list[tuple[_Source, bytes, bytes, str]],
    by: str,
    now: datetime,
    written: list[str],
) -> int:
    """One person's new templates and their photos, and the audit record: one transaction."""
    with store.transaction(write=True) as session:
        person = session.get(Person, person_id)
        if person is None or person.removed_at is not None:
            return 0  # removed meanwhile: nothing to add
        known = set(
            session.scalars(
                select(Template.source_sha256).where(
                    Template.person_id == person_id, Template.embedder == embedder.name
                )
            )
        )
        fresh = [item for item in ready if item[0].sha256 not in known]
        templates = [
            Template(
                person_id=person_id,
                embedder=embedder.name,
                dim=int(embedder.dim),
                vector=vector,
                source_sha256=source.sha256,
                enrolled_by=source.enrolled_by,  # the enroller still may not review them
                created_at=now,
            )
            for source, vector, _, _ in fresh
        ]
        session.add_all(templates)
        session.flush()
        for template, (_, _, data, _) in zip(templates, fresh, strict=True):
            relative = photo_relative(person_id, template.id, template.source_sha256)
            written.append(relative)
            try:
                write_photo(store, relative, data)
            except (OSError, ValueError) as error:
                reason = getattr(error, "strerror", None) or error
                raise StoreError(
                    f"cannot write the face photo {relative} under the media folder "
                    f"{store.media_dir}: {reason}; nothing was re-embedded for this person"
                ) from None
            template.photo_path = relative
        session.flush()
        audit.append(
            session,
            at=now,
            actor=by,
            action="enrolment.reembed",
            object=f"person:{person_id}",
            details={
                "person_id": person_id,
                "watchlist": info.name,
                "embedder": embedder.name,
                "templates": len(templates),
                "photos_sha256": [photo_sha for _, _, _, photo_sha in fresh],
                "sources_sha256": [source.sha256 for source, _, _, _ in fresh],
            },
        )
    return len(templates)


__all__ = [
    "PersonOutcome",
    "ReembedResult",
    "persons_without_templates",
    "reembed",
]
