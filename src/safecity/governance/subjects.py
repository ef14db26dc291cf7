"""Subject rights: find what safecity holds on a person, report it, erase it.

A person (or someone acting for them) asks what the system holds about them.
By design only two things can exist: an entry on a watchlist (a person row
with face templates, each with its enrolled face photo) and the evidence of
matches against that entry (event rows, reviews, legal holds and snapshot
files). Faces that match nothing are never stored (DESIGN.md invariant 2),
so there is nothing else to look for.

The search starts from a photo of the person, checked like an enrolment photo
(exactly one clear face, else a refusal that says why). Its face is embedded
and compared with *every* template of that embedder on *every* watchlist,
whatever the state of the watchlist's authorisation: this search serves the
person's right of access, not identification, so it must not miss an entry
because its authorisation has lapsed. The photo and its vector live only in
memory; only the photo's sha256 is kept, in the audit record.

Evidence can outlive its templates (retention deletes templates a grace period
after the authorisation ends; an erasure keeps held evidence): for persons
with match evidence but no template left, the probe is also compared with the
faces in their stored match snapshots, so such evidence is still found.

A match here uses the configured threshold but no margin: when two entries
look like the person, both are shown, and whoever answers the request judges
them (the scores are in the report). A false match would show one person
another's data, so the operator reviews the report before handing it over.

Every step is audited under the purpose ``subject-request`` with the request
reference: ``subject.find`` (counts and entry ids, never names of people who
did not match), ``subject.export`` (file and format) and ``subject.erase``
(what was deleted and what was withheld). Evidence under an active legal hold
is not erased: the law that placed the hold requires it to be kept; it is
reported as withheld with its case reference, and the person's entry stays
(without templates, so it can no longer match) as the identity that evidence
refers to.

>>> found = find_subject(store, Path("me.jpg"), request_ref="SAR-2026-014",  # doctest: +SKIP
...                      detector=detector, embedder=embedder, threshold=0.925, by="alice")
>>> export_findings(store, found, Path("sar-2026-014.html"), by="alice")  # doctest: +SKIP
>>> erase_subject(store, found, by="alice").events_erased  # doctest: +SKIP
2
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from safecity.config import SafecityConfig
from safecity.errors import EnrolmentError, SafecityError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.governance.evidence import annul_match
from safecity.governance.holds import HoldInfo
from safecity.identity.enrol import Embedder, FaceFinder, check_photo
from safecity.identity.photos import photo_paths, remove_photos
from safecity.identity.watchlists import load_templates
from safecity.store.db import Store, StoreError
from safecity.store.media import MediaStore, write_atomically
from safecity.store.schema import (
    Authorisation,
    Camera,
    EventRecord,
    LegalHold,
    Person,
    Review,
    Template,
    Watchlist,
)

log = logging.getLogger(__name__)

#: The audit purpose of every step of a subject request.
PURPOSE = "subject-request"
MAX_REF = 128
TEMPLATE_FILE = "subject_report.html.j2"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class SubjectError(SafecityError):
    """A subject request cannot be carried out (bad photo or reference, unknown format)."""


# -- values ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewDecision:
    """One reviewer's decision on a match."""

    reviewer: str
    decision: str  # confirm | reject
    note: str
    at: datetime


@dataclass(frozen=True)
class MatchEvidence:
    """One stored match of the person: where, when, how sure, what became of it."""

    event_id: int
    event_uuid: str
    camera: str
    location: str  # the camera's location, "" if unknown
    started_at: datetime
    ended_at: datetime
    score: float | None
    status: str  # candidate | confirmed
    decided_at: datetime | None
    reviews: tuple[ReviewDecision, ...]
    holds: tuple[HoldInfo, ...]
    snapshot_path: str | None  # relative to the media folder
    match_snapshot_path: str | None

    @property
    def held(self) -> bool:
        """Under an active legal hold (may not be erased)."""
        return any(h.active for h in self.holds)

    @property
    def files(self) -> list[str]:
        return [p for p in (self.snapshot_path, self.match_snapshot_path) if p]


@dataclass(frozen=True)
class WatchlistEntry:
    """The person as enrolled on one watchlist, why, and the matches against it."""

    person_id: int
    person_name: str
    watchlist_id: int
    watchlist_name: str
    authorisation_id: int
    authorisation_status: str
    legal_basis: str
    authority: str
    reference: str
    purpose: str
    valid_until: datetime
    evidence_days: int
    enrolled_at: datetime
    enrolled_by: str
    templates: int  # face templates stored for this entry (all embedders)
    best_score: float  # the matcher's score of the probe on the closest template
    evidence: tuple[MatchEvidence, ...]


@dataclass(frozen=True)
class SubjectFindings:
    """Everything the system holds on the person in the probe photo (maybe nothing)."""

    request_ref: str
    probe_sha256: str  # identifies the photo searched with; neither it nor its vector is kept
    embedder: str
    threshold: float
    templates_compared: int
    searched_at: datetime
    searched_by: str
    entries: tuple[WatchlistEntry, ...]

    @property
    def found(self) -> bool:
        return bool(self.entries)

    @property
    def evidence(self) -> list[MatchEvidence]:
        return [e for entry in self.entries for e in entry.evidence]


@dataclass(frozen=True)
class RetentionTerms:
    """How long things are kept, from the config, in the words the report uses."""

    snapshots_h: float = 72.0
    events_days: float = 30.0
    template_grace_days: float = 7.0
    audit_days: float | None = 1825.0

    @classmethod
    def from_config(cls, config: SafecityConfig) -> RetentionTerms:
        return cls(
            snapshots_h=config.retention.snapshots_h,
            events_days=config.retention.events_days,
            template_grace_days=config.authorisations.template_grace_days,
            audit_days=config.retention.audit_days,
        )


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: Literal["html", "json"]
    images: int  # snapshots embedded (HTML only)


@dataclass(frozen=True)
class Withheld:
    """Evidence kept despite the erasure request, and the case(s) that require it."""

    event_id: int
    event_uuid: str
    person_id: int
    case_refs: tuple[str, ...]


@dataclass(frozen=True)
class ErasureResult:
    request_ref: str
    persons_deleted: int
    persons_kept: tuple[int, ...]  # entries kept (without templates) for withheld evidence
    templates_deleted: int
    events_erased: int
    files_removed: int
    files_left: tuple[str, ...]  # could not be removed now; the retention sweep removes them
    withheld: tuple[Withheld, ...] = field(default_factory=tuple)
    photos_removed: int = 0  # enrolled face photos deleted with the templates


# -- find -----------------------------------------------------------------------------
def check_request_ref(ref: str) -> str:
    """The request reference, stripped; SubjectError if empty, too long or not one line.

    >>> check_request_ref("  SAR-2026-014 ")
    'SAR-2026-014'
    """
    ref = (ref or "").strip()
    if not ref or len(ref) > MAX_REF or not ref.isprintable():
        raise SubjectError(
            f"give the subject request's reference (--request-ref), one line of 1 to {MAX_REF} "
            "characters"
        )
    return ref


def _probe(path: Path, detector: FaceFinder, embedder: Embedder) -> tuple[np.ndarray, str]:
    """The probe's unit vector (memory only) and its photo's sha256."""
    try:
        photo = check_photo(Path(path), detector)
    except EnrolmentError as error:
        raise SubjectError(
            f"cannot search with this photo: {error}; nothing was searched"
        ) from None
    vector = np.asarray(embedder.embed(photo.image, photo.face), np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if vector.shape != (embedder.dim,) or not np.isfinite(vector).all() or norm == 0:
        raise SubjectError(
            f"the {embedder.name} embedder gave no usable vector for {path}; nothing was searched"
        )
    return vector / norm, photo.sha256


def _best_scores(store: Store, embedder: str, probe: np.ndarray) -> tuple[dict[int, float], int]:
    """Best matcher score per person over every template of ``embedder``, and the template count.

    Scores are the matcher's own (:func:`~safecity.identity.matcher.score_templates`):
    a cosine for one embedder, the fused z-score for ``dlib+faceres``; the
    configured threshold is in the same units.
    """
    from safecity.identity.matcher import score_templates

    vectors, entries = load_templates(store, embedder, None)
    if not entries:
        return {}, 0
    if vectors.shape[1] != probe.shape[0]:
        raise StoreError(
            f"the stored {embedder} templates have {vectors.shape[1]} values, the probe "
            f"{probe.shape[0]}; the database is inconsistent"
        )
    scores = score_templates(embedder, vectors, probe)
    best: dict[int, float] = {}
    for entry, score in zip(entries, scores.tolist(), strict=True):
        best[entry.person_id] = max(score, best.get(entry.person_id, -float("inf")))
    return best, len(entries)


def _snapshot_scores(
    store: Store, detector: FaceFinder, embedder: Embedder, probe: np.ndarray
) -> dict[int, float]:
    """Best matcher score per template-less person over the faces in their match snapshots."""
    import cv2

    from safecity.identity.matcher import score_templates

    with store.transaction() as session:
        has_template = select(Template.id).where(
            Template.person_id == EventRecord.match_person_id, Template.embedder == embedder.name
        )
        rows = session.execute(
            select(EventRecord.match_person_id, EventRecord.match_snapshot_path).where(
                EventRecord.match_person_id.is_not(None),
                EventRecord.match_snapshot_path.is_not(None),
                ~has_template.exists(),
            )
        ).all()
    best: dict[int, float] = {}
    for person_id, relative in rows:
        image = cv2.imread(str(store.media.path(relative)))
        if image is None:
            log.warning("match snapshot %s is missing or unreadable; not searched", relative)
            continue
        for face in detector.detect(image):
            vector = np.asarray(embedder.embed(image, face), np.float32).reshape(-1)
            if vector.shape == probe.shape and np.linalg.norm(vector) > 0:
                score = float(score_templates(embedder.name, vector[None], probe)[0])
                best[person_id] = max(score, best.get(person_id, -float("inf")))
    return best


def find_subject(
    store: Store,
    image: Path,
    *,
    request_ref: str,
    detector: FaceFinder,
    embedder: Embedder,
    threshold: float,
    by: str,
    clock: Clock = SYSTEM_CLOCK,
) -> SubjectFindings:
    """Search every watchlist for the person in ``image``; audited as ``subject.find``.

    Raises :class:`SubjectError` when the photo cannot be used (not an image, no
    face, several faces, too small or blurred): then nothing is searched and
    nothing is audited. A search that finds nothing is audited all the same.
    """
    by = audit.check_actor(by)
    ref = check_request_ref(request_ref)
    probe, digest = _probe(image, detector, embedder)
    best, compared = _best_scores(store, embedder.name, probe)
    for person_id, score in _snapshot_scores(store, detector, embedder, probe).items():
        best[person_id] = max(score, best.get(person_id, -float("inf")))
    del probe  # only the scores leave this function
    matched = {pid: score for pid, score in best.items() if score >= threshold}
    now = clock.now()
    with store.transaction(write=True) as session:
        entries = _entries(session, matched)
        events = sum(len(e.evidence) for e in entries)
        audit.append(
            session,
            at=now,
            actor=by,
            action="subject.find",
            object=f"subject-request:{ref}",
            purpose=PURPOSE,
            details={
                "request_ref": ref,
                "probe_sha256": digest,
                "embedder": embedder.name,
                "threshold": threshold,
                "templates_compared": compared,
                "persons_compared": len(best),
                "persons_found": len(entries),
                "person_ids": [e.person_id for e in entries],
                "events_found": events,
            },
        )
    return SubjectFindings(
        request_ref=ref,
        probe_sha256=digest,
        embedder=embedder.name,
        threshold=float(threshold),
        templates_compared=compared,
        searched_at=now,
        searched_by=by,
        entries=tuple(entries),
    )


def _entries(session: Session, scores: dict[int, float]) -> list[WatchlistEntry]:
    if not scores:
        return []
    ids = list(scores)
    rows = session.execute(
        select(Person, Watchlist, Authorisation)
        .join(Watchlist, Person.watchlist_id == Watchlist.id)
        .join(Authorisation, Watchlist.authorisation_id == Authorisation.id)
        .where(Person.id.in_(ids))
        .order_by(Watchlist.name, Person.name, Person.id)
    ).all()
    counts = dict(
        session.execute(
            select(Template.person_id, func.count(Template.id))
            .where(Template.person_id.in_(ids))
            .group_by(Template.person_id)
        ).all()
    )
    evidence = _evidence(session, ids)
    return [
        WatchlistEntry(
            person_id=person.id,
            person_name=person.name,
            watchlist_id=watchlist.id,
            watchlist_name=watchlist.name,
            authorisation_id=auth.id,
            authorisation_status=auth.status,
            legal_basis=auth.legal_basis,
            authority=auth.authority,
            reference=auth.reference,
            purpose=auth.purpose,
            valid_until=auth.valid_until,
            evidence_days=auth.evidence_days,
            enrolled_at=person.created_at,
            enrolled_by=person.enrolled_by,
            templates=int(counts.get(person.id, 0)),
            best_score=round(float(scores[person.id]), 4),
            evidence=tuple(evidence.get(person.id, [])),
        )
        for person, watchlist, auth in rows
    ]


def _evidence(session: Session, person_ids: Sequence[int]) -> dict[int, list[MatchEvidence]]:
    events = session.scalars(
        select(EventRecord)
        .where(EventRecord.match_person_id.in_(list(person_ids)))
        .order_by(EventRecord.started_at, EventRecord.id)
    ).all()
    if not events:
        return {}
    event_ids = [e.id for e in events]
    reviews: dict[int, list[ReviewDecision]] = {}
    for r in session.scalars(
        select(Review).where(Review.event_id.in_(event_ids)).order_by(Review.created_at, Review.id)
    ):
        reviews.setdefault(r.event_id, []).append(
            ReviewDecision(r.reviewer, r.decision, r.note, r.created_at)
        )
    holds: dict[int, list[HoldInfo]] = {}
    for h in session.scalars(
        select(LegalHold)
        .where(LegalHold.event_id.in_(event_ids))
        .order_by(LegalHold.placed_at, LegalHold.id)
    ):
        holds.setdefault(h.event_id, []).append(HoldInfo.from_row(h))
    cameras = {e.camera for e in events}
    locations = dict(
        session.execute(select(Camera.name, Camera.location).where(Camera.name.in_(cameras))).all()
    )
    found: dict[int, list[MatchEvidence]] = {}
    for e in events:
        found.setdefault(e.match_person_id, []).append(
            MatchEvidence(
                event_id=e.id,
                event_uuid=e.uuid,
                camera=e.camera,
                location=locations.get(e.camera) or "",
                started_at=e.started_at,
                ended_at=e.ended_at,
                score=None if e.match_score is None else round(float(e.match_score), 4),
                status=e.match_status or "",
                decided_at=e.match_decided_at,
                reviews=tuple(reviews.get(e.id, [])),
                holds=tuple(holds.get(e.id, [])),
                snapshot_path=e.snapshot_path,
                match_snapshot_path=e.match_snapshot_path,
            )
        )
    return found


# -- export ---------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def findings_json(findings: SubjectFindings, terms: RetentionTerms | None = None) -> dict:
    """The findings and the retention terms as a JSON-ready dict."""
    data = _jsonable(asdict(findings))
    for entry, raw in zip(findings.entries, data["entries"], strict=True):
        for evidence, item in zip(entry.evidence, raw["evidence"], strict=True):
            item["under_legal_hold"] = evidence.held
    data["found"] = findings.found
    data["retention"] = asdict(terms or RetentionTerms())
    return data


def _image_data(media: MediaStore | None, relative: str | None) -> str | None:
    """A stored snapshot as a data: URI (None if absent or unreadable)."""
    if media is None or not relative:
        return None
    try:
        data = media.path(relative).read_bytes()
    except (OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def render_html(
    findings: SubjectFindings,
    terms: RetentionTerms | None = None,
    media: MediaStore | None = None,
) -> tuple[str, int]:
    """The report for the person concerned, and how many snapshots it embeds.

    With ``media`` the snapshots are embedded as images: the person may see
    their own data. Everything is HTML-escaped (names come from operators).
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    images: dict[str, str] = {}
    for evidence in findings.evidence:
        for relative in evidence.files:
            uri = _image_data(media, relative)
            if uri is not None:
                images[relative] = uri
    html = env.get_template(TEMPLATE_FILE).render(
        f=findings,
        terms=terms or RetentionTerms(),
        images=images,
        when=lambda value: "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC"),
    )
    return html, len(images)


def export_findings(
    store: Store,
    findings: SubjectFindings,
    path: Path,
    *,
    by: str,
    terms: RetentionTerms | None = None,
    embed_images: bool = True,
    clock: Clock = SYSTEM_CLOCK,
) -> ExportResult:
    """Write the report to ``path`` (``.html`` or ``.json``); audited as ``subject.export``.

    The file (mode 0600) and its audit record are written together: if either
    fails, neither remains.
    """
    by = audit.check_actor(by)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        kind: Literal["html", "json"] = "html"
        text, images = render_html(findings, terms, store.media if embed_images else None)
    elif suffix == ".json":
        kind, images = "json", 0
        text = json.dumps(findings_json(findings, terms), indent=2, ensure_ascii=False) + "\n"
    else:
        raise SubjectError(f"cannot export to {path}: name a .html or .json file")
    if not path.parent.is_dir():
        raise SubjectError(f"cannot export to {path}: the folder {path.parent} does not exist")
    written = False
    try:
        with store.transaction(write=True) as session:
            audit.append(
                session,
                at=clock.now(),
                actor=by,
                action="subject.export",
                object=f"subject-request:{findings.request_ref}",
                purpose=PURPOSE,
                details={
                    "request_ref": findings.request_ref,
                    "file": str(path.resolve()),
                    "format": kind,
                    "entries": len(findings.entries),
                    "events": len(findings.evidence),
                    "images": images,
                },
            )
            try:
                write_atomically(path, text)  # owner-only: it is personal data
            except OSError as error:
                raise SubjectError(
                    f"cannot write {path}: {error.strerror or error}; nothing was exported"
                ) from None
            written = True
    except BaseException:
        if written:
            path.unlink(missing_ok=True)
        raise
    return ExportResult(path, kind, images)


# -- erase ----------------------------------------------------------------------------
def erase_subject(
    store: Store,
    findings: SubjectFindings,
    *,
    person_ids: Sequence[int],
    by: str,
    clock: Clock = SYSTEM_CLOCK,
) -> ErasureResult:
    """Erase the chosen found entries and their match evidence; audited as ``subject.erase``.

    ``person_ids`` are the entries the operator confirmed to be the person
    (a search without margin can find a lookalike too); each must be among the
    findings, else :class:`SubjectError` and nothing is erased.

    Works from the entries' ids as they stand *now*: a match stored since the
    search is erased too. Evidence under an active legal hold is kept and
    reported as withheld, and so is the entry it refers to (its templates are
    deleted all the same, so it matches no more). Snapshot files and the
    templates' enrolled face photos are removed after the commit.
    """
    by = audit.check_actor(by)
    now = clock.now()
    found = {e.person_id for e in findings.entries}
    ids = sorted(set(person_ids))
    if not ids:
        raise SubjectError("name the entries to erase (--person ID), as confirmed from the report")
    stray = [i for i in ids if i not in found]
    if stray:
        raise SubjectError(
            f"person(s) {', '.join(map(str, stray))} were not found by request "
            f"{findings.request_ref}; nothing was erased"
        )
    files: list[str] = []
    photos: list[str] = []
    withheld: list[Withheld] = []
    erased = templates = deleted = 0
    kept: set[int] = set()
    with store.transaction(write=True) as session:
        if ids:
            events = session.scalars(
                select(EventRecord)
                .where(EventRecord.match_person_id.in_(ids))
                .order_by(EventRecord.id)
                .with_for_update()  # a hold placed meanwhile waits, then sees the erasure
            ).all()
            active: dict[int, list[str]] = {}
            for event_id, case_ref in session.execute(
                select(LegalHold.event_id, LegalHold.case_ref)
                .where(
                    LegalHold.event_id.in_([e.id for e in events]),
                    LegalHold.released_at.is_(None),
                )
                .order_by(LegalHold.id)
            ):
                active.setdefault(event_id, []).append(case_ref)
            for event in events:
                if event.id in active:
                    person_id = int(event.match_person_id)
                    kept.add(person_id)
                    withheld.append(
                        Withheld(event.id, event.uuid, person_id, tuple(active[event.id]))
                    )
                else:
                    files += annul_match(
                        session, event, now, status="erased", actor=by, purpose=PURPOSE
                    )
                    erased += 1
            session.flush()
            present = set(session.scalars(select(Person.id).where(Person.id.in_(ids))))
            photos = photo_paths(session, Template.person_id.in_(ids))
            templates = session.execute(
                delete(Template).where(Template.person_id.in_(ids))
            ).rowcount
            gone = sorted(present - kept)
            if gone:
                deleted = session.execute(delete(Person).where(Person.id.in_(gone))).rowcount
            for person in session.scalars(select(Person).where(Person.id.in_(sorted(kept)))):
                # Retention finishes the erasure when the hold is released.
                person.erasure_ref = findings.request_ref
        audit.append(
            session,
            at=now,
            actor=by,
            action="subject.erase",
            object=f"subject-request:{findings.request_ref}",
            purpose=PURPOSE,
            details={
                "request_ref": findings.request_ref,
                "persons_deleted": deleted,
                "persons_kept_for_holds": sorted(kept),
                "templates_deleted": templates,
                "events_erased": erased,
                "files_to_remove": len(files),
                "enrolled_photos_to_remove": len(photos),
                "withheld": [
                    {"event": w.event_uuid, "case_refs": list(w.case_refs)} for w in withheld
                ],
            },
        )
    removed, left = 0, []
    for relative in files:
        try:
            store.media.remove(relative)
            removed += 1
        except (OSError, ValueError) as error:
            log.warning("could not remove %s after erasure: %s", relative, error)
            left.append(relative)
    photos_removed, photos_left = remove_photos(store, photos)
    left += photos_left
    return ErasureResult(
        request_ref=findings.request_ref,
        persons_deleted=deleted,
        persons_kept=tuple(sorted(kept)),
        templates_deleted=templates,
        events_erased=erased,
        files_removed=removed,
        files_left=tuple(left),
        withheld=tuple(withheld),
        photos_removed=photos_removed,
    )
