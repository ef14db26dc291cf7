"""Authorisations (read), watchlists, enrolment by upload, the people on a watchlist.

Enrolment takes a multipart form: a ``name`` field and 1 to 10 ``photos``
(JPEG or PNG by their content, each at most ``api.max_upload_mb``). The photos
go to a private temporary folder only for as long as enrolment reads them;
:func:`safecity.identity.enrol.enroll` keeps only their hashes and a small
crop of the enrolled face. A refused photo refuses the whole enrolment, and
is named by the file name the operator uploaded.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select

from safecity.access.roles import Permission, Principal
from safecity.api.context import ApiContext
from safecity.api.deps import Context, Page, require
from safecity.api.errors import Conflict, NotFound
from safecity.api.schemas.common import Page as PageOf
from safecity.api.schemas.watchlists import (
    AuthorisationOut,
    EnrolOut,
    EnrolRefusedOut,
    FormErrorOut,
    PersonOut,
    PlateIn,
    PlateOut,
    RefusedPhoto,
    WatchlistIn,
    WatchlistOut,
)
from safecity.errors import AuthorisationError, EnrolmentError
from safecity.governance.audit import record
from safecity.governance.authorisations import (
    STATUSES,
    AuthorisationInfo,
    allows_matching,
    get_authorisation,
    list_authorisations,
)
from safecity.identity import enrol
from safecity.identity.photos import enrolled_photo
from safecity.identity.plate_lists import add_plate, check_kind
from safecity.identity.watchlists import (
    WatchlistError,
    WatchlistInfo,
    create_watchlist,
    get_watchlist,
    list_watchlists,
)
from safecity.store.schema import Person, Template

router = APIRouter(tags=["watchlists"])
Viewer = Annotated[Principal, Depends(require(Permission.VIEW_WATCHLISTS))]
Manager = Annotated[Principal, Depends(require(Permission.MANAGE_WATCHLISTS))]
FaceViewer = Annotated[Principal, Depends(require(Permission.SEE_FACES))]
Id = Annotated[int, PathParam(ge=1, le=2**31 - 1)]

MAX_PHOTOS = 10
_JPEG, _PNG = "image/jpeg", "image/png"
#: Declared types taken as JPEG or PNG, or as saying nothing (the content decides).
_DECLARED_OK = {_JPEG, "image/jpg", "image/pjpeg", _PNG, "application/octet-stream", ""}
_MAGIC = (
    (b"\xff\xd8\xff", _JPEG),
    (b"\x89PNG\r\n\x1a\n", _PNG),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"%PDF", "application/pdf"),
)
# One enrolment at a time: the face detector is one OpenCV object, not thread-safe.
_ENROL_LOCK = threading.Lock()


# -- authorisations -------------------------------------------------------------------
# What lies outside a user's cameras answers exactly as what does not exist: the same
# status (404) and the same sentence, so an id tells nothing about other cameras.
def authorisation_out(info: AuthorisationInfo) -> AuthorisationOut:
    return AuthorisationOut(**{f: getattr(info, f) for f in AuthorisationOut.model_fields})


def covers_yours(user: Principal, cameras: list[str] | None) -> bool:
    """Whether a scope (None: every camera) covers one of ``user``'s cameras."""
    if user.sees_all_cameras or cameras is None:
        return True
    return bool(user.cameras.intersection(cameras))


def _no_authorisation(authorisation_id: int) -> NotFound:
    return NotFound(f"there is no authorisation {authorisation_id}")


def visible_authorisation(
    ctx: ApiContext, authorisation_id: int, user: Principal
) -> AuthorisationInfo:
    """The authorisation, or 404 when it does not exist or covers none of your cameras."""
    try:
        info = get_authorisation(ctx.store, authorisation_id)
    except AuthorisationError:
        raise _no_authorisation(authorisation_id) from None
    if not covers_yours(user, info.cameras):
        raise _no_authorisation(authorisation_id)
    return info


@router.get("/authorisations", response_model=PageOf[AuthorisationOut])
def list_authorisations_route(
    user: Viewer,
    ctx: Context,
    page: Page,
    status: Annotated[str | None, Query(description=", ".join(STATUSES))] = None,
) -> PageOf[AuthorisationOut]:
    """The authorisations covering one of your cameras (or those of one status), oldest first.

    An authorisation for every camera covers yours.
    """
    if status is not None and status not in STATUSES:
        raise HTTPException(400, f"unknown status {status!r}; statuses are {', '.join(STATUSES)}")
    visible = [a for a in list_authorisations(ctx.store, status) if covers_yours(user, a.cameras)]
    rows, next_cursor = page.cut(visible[page.offset :])
    return PageOf[AuthorisationOut](
        items=[authorisation_out(a) for a in rows], next_cursor=next_cursor
    )


@router.get("/authorisations/{authorisation_id}", response_model=AuthorisationOut)
def get_authorisation_route(authorisation_id: Id, user: Viewer, ctx: Context) -> AuthorisationOut:
    """One authorisation; 404 as for a missing one when it covers none of your cameras."""
    return authorisation_out(visible_authorisation(ctx, authorisation_id, user))


# -- watchlists -----------------------------------------------------------------------
def _watchlists_out(ctx: ApiContext, infos: list[WatchlistInfo]) -> list[WatchlistOut]:
    auths = {a.id: a for a in list_authorisations(ctx.store)}
    now = ctx.clock.now()
    return [
        WatchlistOut(
            id=w.id,
            name=w.name,
            created_at=w.created_at,
            persons=w.persons,
            templates=w.templates,
            authorisation=authorisation_out(auths[w.authorisation_id]),
            matching_now=allows_matching(w, w.cameras, None, now),
            kind=w.kind,
        )
        for w in infos
    ]


def _in_scope(user: Principal, info: WatchlistInfo) -> bool:
    """A watchlist is seen by those granted a camera its authorisation covers."""
    return covers_yours(user, info.cameras)


def _watchlist(ctx: ApiContext, watchlist_id: int, user: Principal) -> WatchlistInfo:
    try:
        info = get_watchlist(ctx.store, watchlist_id, clock=ctx.clock)
    except WatchlistError:
        info = None
    if info is None or not _in_scope(user, info):
        raise NotFound(f"there is no watchlist {watchlist_id} on your cameras")
    return info


@router.get("/watchlists", response_model=PageOf[WatchlistOut])
def list_watchlists_route(user: Viewer, ctx: Context, page: Page) -> PageOf[WatchlistOut]:
    """Every watchlist covering one of your cameras, with its authorisation, by name."""
    visible = [w for w in list_watchlists(ctx.store, clock=ctx.clock) if _in_scope(user, w)]
    rows, next_cursor = page.cut(visible[page.offset :])
    return PageOf[WatchlistOut](items=_watchlists_out(ctx, rows), next_cursor=next_cursor)


@router.get("/watchlists/{watchlist_id}", response_model=WatchlistOut)
def get_watchlist_route(watchlist_id: Id, user: Viewer, ctx: Context) -> WatchlistOut:
    return _watchlists_out(ctx, [_watchlist(ctx, watchlist_id, user)])[0]


@router.post(
    "/watchlists",
    response_model=WatchlistOut,
    status_code=201,
    responses={
        409: {"description": "the name is taken"},
        400: {"description": "unusable"},
        404: {"description": "no such authorisation covers one of your cameras"},
    },
)
def create_watchlist_route(body: WatchlistIn, user: Manager, ctx: Context) -> WatchlistOut:
    """A watchlist under an existing authorisation covering one of your cameras (not a
    refused or revoked one).

    Watchlist names are unique in the whole installation, so a taken name is refused
    with the same 409 sentence whether or not you can see the watchlist that has it;
    the answer names nothing else, and a clash with a watchlist outside your cameras
    is recorded in the audit trail (``watchlist.name_taken``).
    """
    name = body.name.strip()
    if not name:
        raise HTTPException(400, "a watchlist needs a name")
    visible_authorisation(ctx, body.authorisation_id, user)  # 404 first: nothing else told
    try:
        info = create_watchlist(
            ctx.store,
            name,
            by=user.username,
            authorisation=body.authorisation_id,
            clock=ctx.clock,
            kind=body.kind,
        )
    except WatchlistError:
        raise _name_taken(ctx, user, name) from None
    return _watchlists_out(ctx, [info])[0]


def _name_taken(ctx: ApiContext, user: Principal, name: str) -> Conflict:
    try:
        holder = get_watchlist(ctx.store, name, clock=ctx.clock)
    except WatchlistError:  # removed meanwhile
        holder = None
    if holder is not None and not _in_scope(user, holder):
        record(
            ctx.store,
            actor=user.username,
            action="watchlist.name_taken",
            object=f"watchlist:{holder.id}",
            details={"name": name, "holder_hidden": True},
            clock=ctx.clock,
        )
    # The sentence of a clash with a visible watchlist: it names nothing but the name.
    return Conflict(f"a watchlist named '{name}' already exists")


# -- people ---------------------------------------------------------------------------
@router.get("/watchlists/{watchlist_id}/persons", response_model=PageOf[PersonOut])
def list_persons(watchlist_id: Id, user: Viewer, ctx: Context, page: Page) -> PageOf[PersonOut]:
    """The people enrolled on a watchlist (not those removed), by name; each page that
    shows someone is audited (``view.watchlist_persons``)."""
    _watchlist(ctx, watchlist_id, user)
    templates = (
        select(func.count(Template.id))
        .where(Template.person_id == Person.id)
        .correlate(Person)
        .scalar_subquery()
    )
    photos = (
        select(func.count(Template.id))
        .where(Template.person_id == Person.id, Template.photo_path.is_not(None))
        .correlate(Person)
        .scalar_subquery()
    )
    query = (
        select(Person, templates, photos)
        .where(Person.watchlist_id == watchlist_id, Person.removed_at.is_(None))
        .order_by(Person.name, Person.id)
        .limit(page.limit + 1)
        .offset(page.offset)
    )
    with ctx.store.transaction() as session:
        rows = [
            PersonOut(
                id=p.id,
                name=p.name,
                templates=int(n_templates),
                enrolled_by=p.enrolled_by,
                created_at=p.created_at,
                photo=bool(n_photos),
            )
            for p, n_templates, n_photos in session.execute(query).all()
        ]
    rows, next_cursor = page.cut(rows)
    if rows:
        # Names of people on a watchlist: every page shown is on record, as a search is.
        record(
            ctx.store,
            actor=user.username,
            action="view.watchlist_persons",
            object=f"watchlist:{watchlist_id}",
            details={"persons": [r.id for r in rows], "page": bool(page.cursor)},
            clock=ctx.clock,
        )
    return PageOf[PersonOut](items=rows, next_cursor=next_cursor)


def _person(ctx: ApiContext, person_id: int, watchlist_id: int | None = None) -> Person:
    with ctx.store.transaction() as session:
        person = session.get(Person, person_id)
        if (
            person is None
            or person.removed_at is not None
            or (watchlist_id is not None and person.watchlist_id != watchlist_id)
        ):
            where = f" on watchlist {watchlist_id}" if watchlist_id is not None else ""
            raise NotFound(f"there is no person {person_id}{where}")
        session.expunge(person)
        return person


@router.delete("/watchlists/{watchlist_id}/persons/{person_id}", status_code=204)
def remove_person(
    watchlist_id: Id,
    person_id: Id,
    user: Manager,
    ctx: Context,
    reason: Annotated[str, Query(min_length=1, max_length=1000, description="why (audited)")],
) -> None:
    """Remove a person and their templates from a watchlist; matching them stops at once."""
    info = _watchlist(ctx, watchlist_id, user)
    person = _person(ctx, person_id, watchlist_id)
    if not reason.strip():
        raise HTTPException(400, "say why the person is removed (reason)")
    enrol.remove_person(
        ctx.store, info.name, person.name, by=user.username, reason=reason, clock=ctx.clock
    )


@router.get(
    "/persons/{person_id}/photo.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no photo"}},
)
def person_photo(person_id: Id, user: FaceViewer, ctx: Context) -> Response:
    """The newest enrolled face photo of a person (for reviewers, beside the probe)."""
    person = _person(ctx, person_id)
    try:
        _watchlist(ctx, person.watchlist_id, user)  # its watchlist covers one of your cameras
    except NotFound:
        raise NotFound(f"there is no person {person_id}") from None  # as if it did not exist
    path = enrolled_photo(ctx.store, person_id)
    data = None
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError:  # removed meanwhile
            data = None
    if data is None:
        raise NotFound(f"there is no enrolled photo of person {person_id}")
    record(
        ctx.store,
        actor=user.username,
        action="view.enrolled_photo",
        object=f"person:{person_id}",
        clock=ctx.clock,
    )
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


# -- enrolment ------------------------------------------------------------------------
def _display_name(filename: str | None, number: int) -> str:
    """The uploaded file's own name, without any folder, fit to show back."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = "".join(c for c in base if c.isprintable()).strip()[:120]
    return base or f"photo {number}"


def _sniff(head: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "image/heic" if b"hei" in head[8:12] or b"mif1" in head[8:12] else "image/avif"
    return None


def _read_upload(upload: UploadFile, name: str, limit_mb: float) -> tuple[bytes, str]:
    """The photo's bytes and its file suffix, or 413 / 415 saying what is wrong."""
    limit = int(limit_mb * 1024 * 1024)
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(
            413, f"photo {name} is larger than the limit of {limit_mb:g} MB; send a smaller one"
        )
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    sniffed = _sniff(data[:16])
    if sniffed in (_JPEG, _PNG) and declared in _DECLARED_OK:
        try:  # from the header, before anything decodes it (a decompression bomb)
            enrol.check_pixels(data, name)
        except enrol.PhotoTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except EnrolmentError:
            pass  # a damaged header: refused with the other photos' reasons below
        return data, ".jpg" if sniffed == _JPEG else ".png"
    if declared not in _DECLARED_OK:
        kind = declared
    elif not data:
        kind = "empty"
    else:
        kind = sniffed or "not a JPEG or PNG image (by its content)"
    raise HTTPException(415, f"only JPEG or PNG photos are accepted; {name} is {kind}")


@contextmanager
def _private_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="safecity-enrol-"))  # mode 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _refused(message: str, refused: list[RefusedPhoto]) -> JSONResponse:
    body = EnrolRefusedOut(detail=message, refused=refused)
    return JSONResponse(body.model_dump(), status_code=422)


@router.post(
    "/watchlists/{watchlist_id}/persons",
    response_model=EnrolOut,
    status_code=201,
    responses={
        422: {
            "model": EnrolRefusedOut | FormErrorOut,
            "description": "a photo was refused (nothing stored), or the form is invalid",
        },
        413: {"description": "a photo is too large"},
        415: {"description": "a file is not a JPEG or PNG photo"},
    },
)
def enrol_person(
    watchlist_id: Id,
    user: Manager,
    ctx: Context,
    name: Annotated[str, Form(min_length=1, max_length=256, description="the person's name")],
    photos: Annotated[
        list[UploadFile], File(description=f"1 to {MAX_PHOTOS} JPEG or PNG photos, one face each")
    ],
) -> EnrolOut | JSONResponse:
    """Enrol a person from photos with exactly one clear face each; all or nothing."""
    info = _watchlist(ctx, watchlist_id, user)
    check_kind(info, "face")  # 400 before any photo is read
    person = name.strip()
    if not person:
        raise HTTPException(400, "give the name of the person to enrol")
    if not 1 <= len(photos) <= MAX_PHOTOS:
        raise HTTPException(400, f"send 1 to {MAX_PHOTOS} photos (got {len(photos)})")
    names = [_display_name(p.filename, i) for i, p in enumerate(photos, 1)]
    uploads = [
        _read_upload(p, n, ctx.config.api.max_upload_mb) for p, n in zip(photos, names, strict=True)
    ]
    with _private_folder() as folder:
        paths = []
        for number, (data, suffix) in enumerate(uploads, 1):
            path = folder / f"photo-{number:02d}{suffix}"
            _write_private(path, data)
            paths.append(path)
        # Temporary paths → the operator's own file names (longest first: no prefix clash).
        shown = sorted(zip(map(str, paths), names, strict=True), key=lambda p: -len(p[0]))

        def own_names(text: str) -> str:
            for temp, original in shown:
                text = text.replace(temp, original)
            return text.replace(str(folder), "(upload)")

        detector = ctx.model("face_detector")
        embedder = ctx.model("embedder")
        with _ENROL_LOCK:
            # Each photo's own reason first (enroll joins them into one sentence).
            refused = []
            for path, shown_name in zip(paths, names, strict=True):
                try:
                    enrol.check_photo(path, detector)
                except EnrolmentError as exc:
                    refused.append(RefusedPhoto(photo=shown_name, reason=own_names(str(exc))))
            if refused:
                prefix = (
                    "" if len(refused) == 1 else f"{len(refused)} of {len(paths)} photos refused: "
                )
                reasons = "; ".join(r.reason for r in refused)
                return _refused(f"{prefix}{reasons}; nothing was enrolled", refused)
            try:
                result = enrol.enroll(
                    ctx.store,
                    info.name,
                    person,
                    paths,
                    detector,
                    embedder,
                    by=user.username,
                    clock=ctx.clock,
                )
            except EnrolmentError as exc:
                message = own_names(str(exc))
                named = [
                    RefusedPhoto(photo=n, reason=message)
                    for p, n in zip(paths, names, strict=True)
                    if str(p) in str(exc)
                ]
                return _refused(message, named)
    return EnrolOut(
        person_id=result.person_id,
        person=result.person_name,
        watchlist_id=result.watchlist_id,
        templates=result.templates,
        skipped=result.skipped,
        created_person=result.created_person,
    )


@router.post(
    "/watchlists/{watchlist_id}/plates",
    response_model=PlateOut,
    status_code=201,
    responses={
        400: {"description": "refused: a face watchlist, an ended authorisation, not a plate"}
    },
)
def list_plate(watchlist_id: Id, body: PlateIn, user: Manager, ctx: Context) -> PlateOut:
    """List a vehicle by licence plate on a plate watchlist (audited as
    ``enrolment.add_plate``; the lister may not review its hits). Remove it as a person."""
    info = _watchlist(ctx, watchlist_id, user)
    result = add_plate(
        ctx.store,
        info.name,
        body.plate,
        name=body.name,
        by=user.username,
        countries=ctx.config.plates.countries,
        clock=ctx.clock,
    )
    return PlateOut(
        person_id=result.person_id,
        name=result.name,
        plate=result.plate,
        watchlist_id=result.watchlist_id,
        added=result.added,
    )
