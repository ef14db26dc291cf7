"""Retention enforced by the system (DESIGN.md invariant 5), one run at a time.

What one :func:`run_retention` does, per class of data (``now`` is the clock's
time at the start of the run; event ages count from ``events.started_at``):

- **Lapsed emergency uses**: an emergency use whose request was not filed by
  ``emergency_deadline_at`` gets every result annulled
  (:func:`safecity.governance.evidence.annul_results`: no person, no score, no
  images) and ``results_deleted_at`` set.
- **Templates**: the templates (face vectors) of watchlists whose authorisation
  ended (:meth:`AuthorisationInfo.ended_at`) more than
  ``authorisations.template_grace_days`` ago are deleted and
  ``templates_deleted_at`` is set, and so are their enrolled face photos
  (after the commit), and the plates listed on plate watchlists. The persons
  (names) stay, so kept evidence still says who matched. A renewal moves the watchlists to the new
  authorisation, so renewed templates are not touched.
- **Candidate matches nobody reviewed**: once the snapshot period
  (``retention.snapshots_h``, 72 h) has passed they can no longer be checked
  against their images, so they are closed as ``expired``: what a reviewer's
  rejection does (:func:`~safecity.governance.evidence.reject_match`), images
  and person link deleted, watchlist and score kept, ``match_decided_at`` set,
  but not counted as a false match. The row then follows the event rule.
- **Snapshots** of events without a match, or with a rejected one (the review
  kept its snapshot with the formerly matched person pixelated, as for an
  ordinary event): deleted after ``snapshots_h``; the row stays.
- **Rejected and annulled matches**: their evidence is deleted at once by the
  review or the annulment; retention deletes whatever is still left (the
  person link, a match snapshot, and for annulled or erased matches any
  image), whatever its age.
- **Plate reads** of vehicles that match nothing: the plate's text, confidence
  and crop file go after ``plates.retention_days`` when that is set (and shorter
  than ``events_days``); the event row stays. Otherwise they go with the row.
- **Event rows** (not confirmed matches): deleted after ``events_days``, with
  any file they still refer to (the plate crop included).
- **Confirmed matches**: row and images are kept for the ``evidence_days`` of
  the authorisation they were made under, counted from ``match_decided_at``
  (``authorisations.default_evidence_days`` when that authorisation is gone),
  then deleted whole — also when that is sooner than ``events_days``, since the
  authorisation is what allows keeping them.
- **Legal holds**: an event with an active hold (:mod:`safecity.governance.holds`)
  is skipped by every rule above: neither its row nor its files are deleted.
- **Orphan files**: files in the media layout's day folders
  (``<camera>/<YYYY-MM-DD>/``) that no event row refers to, and enrolled face
  photos (``enrolled/<person id>/``, :mod:`safecity.identity.photos`) that no
  template refers to (its template was deleted), older than
  ``retention.orphan_grace_s`` (a sink crash between file and row; a temp file
  ``.*.tmp`` of an interrupted write) are deleted; younger ones may still be
  getting their row. File ages are read on the machine's clock, as the file
  system writes them. Nothing outside those folders is ever touched, so a media
  folder shared with other files is safe.
- **Empty day folders** (and empty enrolled-photo folders) older than the grace
  are removed.
- **Audit trail**: records older than ``retention.audit_days`` are purged
  (:func:`safecity.governance.audit.purge_before`; ``None`` keeps them).

Then one audit record ``retention.run`` with the counts (never contents).

Safety with the pipeline running: rows are changed in batches of
``batch_size`` events, each batch its own short write transaction with its
rows locked (``FOR UPDATE`` on PostgreSQL; SQLite's write lock), and holds are
read again after the lock, so a hold placed meanwhile is honoured. Files are
removed only after their batch commits (a failed commit leaves files, which
the orphan sweep removes later, never rows pointing at missing files). Every
rule selects only what still needs doing, so a second run finds nothing and
two runs at once do no harm.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from safecity.config import SafecityConfig
from safecity.errors import SafecityError
from safecity.governance import audit
from safecity.governance.authorisations import list_authorisations
from safecity.governance.clock import SYSTEM_CLOCK, Clock, ManualClock
from safecity.governance.evidence import (
    annul_match,
    annul_results,
    drop_snapshots,
    expire_match,
)
from safecity.governance.holds import active_hold_exists, held_event_ids
from safecity.identity.photos import photo_folders, photo_paths
from safecity.identity.plate_lists import delete_listed_plates
from safecity.store.db import Store
from safecity.store.schema import (
    Authorisation,
    EventRecord,
    LegalHold,
    ListedPlate,
    Person,
    Template,
    Watchlist,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 500
_DAY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PG_RETENTION_LOCK = 0x5AFE7E7
# Matches that turned out to be nobody's: the event is an ordinary one.
_NO_MATCH = ("rejected", "expired")


@dataclass(frozen=True)
class RetentionReport:
    """What one run deleted, per class of data (counts only)."""

    snapshots: int = 0  # events with no match (or a rejected one) whose snapshots went
    candidates_expired: int = 0  # unreviewed candidate matches closed as expired
    rejected_evidence: int = 0  # rejected/annulled matches whose leftover evidence went
    plates: int = 0  # vehicle events whose plate read (text, confidence, crop) went
    events: int = 0  # event rows deleted after events_days
    confirmed: int = 0  # confirmed matches deleted after their evidence period
    held: int = 0  # events kept by an active legal hold (after the run)
    emergency_uses: int = 0  # lapsed emergency uses whose results were annulled
    emergency_results: int = 0  # matches annulled for them
    template_authorisations: int = 0  # authorisations whose templates were deleted
    templates: int = 0  # templates (face vectors) deleted
    listed_plates: int = 0  # plates listed on plate watchlists, deleted like templates
    persons: int = 0  # enrolled names deleted with their templates (no match refers to them)
    erasures: int = 0  # matches erased on request once their legal hold was released
    files: int = 0  # media files deleted (enrolled face photos and orphans included)
    orphans: int = 0  # of which files no row referred to
    folders: int = 0  # empty day (and enrolled-photo) folders removed
    file_errors: int = 0  # files that could not be deleted (retried as orphans)
    audit_records: int = 0  # audit records purged

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def describe(self) -> str:
        """One line naming the non-zero counts.

        >>> RetentionReport(snapshots=3, files=3).describe()
        'retention: snapshots 3, files 3'
        >>> RetentionReport().describe()
        'retention: nothing to delete'
        """
        done = [f"{name.replace('_', ' ')} {n}" for name, n in self.as_dict().items() if n]
        return "retention: " + (", ".join(done) if done else "nothing to delete")


class _Tally:
    """Mutable counts while a run goes on; frozen into a report at the end."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {f.name: 0 for f in fields(RetentionReport)}

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def report(self) -> RetentionReport:
        return RetentionReport(**self.counts)


def run_retention(
    store: Store,
    config: SafecityConfig,
    *,
    clock: Clock = SYSTEM_CLOCK,
    actor: str = audit.SYSTEM_ACTOR,
    batch_size: int = BATCH_SIZE,
) -> RetentionReport:
    """Enforce every retention rule once (see the module docstring) and audit the counts.

    Raises :class:`~safecity.store.StoreError` when the database fails; what the
    batches before the failure did stays done, and the next run carries on.
    """
    actor = audit.check_actor(actor)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = clock.now()
    policy = config.retention
    tally = _Tally()

    try:
        _enforce(store, config, now, tally, batch_size)
    except SafecityError as exc:
        # What the batches before the failure deleted is done: put it on record.
        _record_failure(store, now, actor, tally, exc)
        raise

    with store.transaction(write=True) as session:
        if session.get_bind().dialect.name == "postgresql":
            # Two runs at once (the scheduler and the command) purge one after the other.
            session.execute(select(func.pg_advisory_xact_lock(_PG_RETENTION_LOCK)))
        if policy.audit_days is not None:
            cutoff = now - timedelta(days=policy.audit_days)
            signer = audit.HeadSigner(config.audit.key_path, config.audit.heads_path)
            purged = audit.purge_before(session, cutoff, actor=actor, at=now, signer=signer)
            tally.add("audit_records", purged)
        tally.add(
            "held",
            int(
                session.scalar(
                    select(func.count(func.distinct(LegalHold.event_id))).where(
                        LegalHold.released_at.is_(None)
                    )
                )
                or 0
            ),
        )
        report = tally.report()
        audit.append(
            session,
            at=now,
            actor=actor,
            action="retention.run",
            object="retention",
            details=report.as_dict(),
        )
    log.info("%s", report.describe())
    return report


def _enforce(
    store: Store, config: SafecityConfig, now: datetime, tally: _Tally, batch_size: int
) -> None:
    """Every rule but the audit trail's, each in its own short transactions."""
    policy = config.retention
    decision = timedelta(hours=config.authorisations.emergency_decision_h)
    _annul_lapsed_emergencies(store, now, decision, tally)
    _delete_templates(store, now, timedelta(days=config.authorisations.template_grace_days), tally)

    snapshot_cutoff = now - timedelta(hours=policy.snapshots_h)
    events_cutoff = now - timedelta(days=policy.events_days)
    sweep = _Sweeper(store, batch_size, tally)

    sweep.run(
        "candidates_expired",
        [EventRecord.match_status == "candidate", EventRecord.started_at < snapshot_cutoff],
        lambda session, event: expire_match(session, event, now),
    )
    sweep.run(
        "snapshots",
        [
            # A false match is an ordinary event: its snapshot (pixelated) goes with theirs.
            or_(EventRecord.match_status.is_(None), EventRecord.match_status.in_(_NO_MATCH)),
            EventRecord.started_at < snapshot_cutoff,
            _has_files(),
        ],
        lambda session, event: drop_snapshots(event),
    )
    sweep.run(
        "rejected_evidence",
        [
            or_(
                and_(
                    EventRecord.match_status.in_(("annulled", "erased")),
                    or_(_has_files(), EventRecord.match_person_id.is_not(None)),
                ),
                and_(
                    EventRecord.match_status.in_(_NO_MATCH),
                    or_(
                        EventRecord.match_snapshot_path.is_not(None),
                        EventRecord.match_person_id.is_not(None),
                    ),
                ),
            )
        ],
        _drop_leftover_evidence,
    )
    # Erasures that a legal hold deferred: done once the hold is released.
    deferred = select(Person.id).where(Person.erasure_ref.is_not(None))
    sweep.run(
        "erasures",
        [
            EventRecord.match_person_id.in_(deferred),
            EventRecord.match_status.not_in(("annulled", "erased")),
        ],
        lambda session, event: annul_match(
            session, event, now, status="erased", purpose="subject-request"
        ),
    )
    plate_days = config.plates.retention_days
    if plate_days is not None and plate_days < policy.events_days:
        sweep.run(
            "plates",
            [
                EventRecord.match_status.is_(None),
                EventRecord.started_at < now - timedelta(days=plate_days),
                or_(EventRecord.plate_text.is_not(None), EventRecord.plate_crop_path.is_not(None)),
            ],
            lambda session, event: drop_plate(event),
        )
    for where in _expired_confirmed(store, now, config.authorisations.default_evidence_days):
        sweep.run("confirmed", where, None)
    sweep.run(
        "events",
        [
            or_(EventRecord.match_status.is_(None), EventRecord.match_status != "confirmed"),
            EventRecord.started_at < events_cutoff,
        ],
        None,
    )

    _delete_unneeded_persons(store, tally)
    _sweep_media(store, policy.orphan_grace_s, tally)


def _record_failure(
    store: Store, now: datetime, actor: str, tally: _Tally, error: Exception
) -> None:
    try:
        audit.record(
            store,
            actor=actor,
            action="retention.failed",
            object="retention",
            details={**tally.report().as_dict(), "error": str(error)},
            clock=ManualClock(now),
        )
    except SafecityError:
        log.error("retention failed and its partial counts could not be recorded")


# -- events, in batches ---------------------------------------------------------------
def _has_files() -> ColumnElement[bool]:
    return or_(EventRecord.snapshot_path.is_not(None), EventRecord.match_snapshot_path.is_not(None))


def _event_files(event: EventRecord) -> list[str]:
    """Every media file an event row refers to."""
    paths = (event.snapshot_path, event.match_snapshot_path, event.plate_crop_path)
    return [p for p in paths if p]


def drop_plate(event: EventRecord) -> list[str]:
    """Clear the event's plate read; returns its crop file, to delete after the commit."""
    files = [event.plate_crop_path] if event.plate_crop_path else []
    event.plate_text = event.plate_confidence = event.plate_crop_path = None
    return files


def _drop_leftover_evidence(session: Session, event: EventRecord) -> list[str]:
    event.match_person_id = None
    return drop_snapshots(event)


class _Sweeper:
    """Applies one rule to the matching events, a batch per write transaction."""

    def __init__(self, store: Store, batch_size: int, tally: _Tally) -> None:
        self.store = store
        self.batch_size = batch_size
        self.tally = tally

    def run(
        self,
        count: str,
        where: Sequence[ColumnElement[bool]],
        change: Callable[[Session, EventRecord], list[str]] | None,
    ) -> None:
        """``change`` edits one locked row and returns its files; ``None`` deletes the row.

        Held events never match ``where`` (and are checked again once locked);
        the id only grows from batch to batch, so the loop always ends.
        """
        after = 0
        while True:
            files: list[str] = []
            with self.store.transaction(write=True) as session:
                rows = session.scalars(
                    select(EventRecord)
                    .where(EventRecord.id > after, ~active_hold_exists(), *where)
                    .order_by(EventRecord.id)
                    .limit(self.batch_size)
                    .with_for_update()
                ).all()
                if not rows:
                    return
                after = rows[-1].id
                held = held_event_ids(session, [r.id for r in rows])
                todo = [r for r in rows if r.id not in held]
                for row in todo:
                    if change is None:
                        files += _event_files(row)
                    else:
                        files += change(session, row)
                if change is None and todo:
                    session.execute(
                        delete(EventRecord).where(EventRecord.id.in_([r.id for r in todo])),
                        execution_options={"synchronize_session": False},
                    )
            self.tally.add(count, len(todo))
            _remove_files(self.store, files, self.tally)
            if len(rows) < self.batch_size:
                return


def _expired_confirmed(
    store: Store, now: datetime, default_days: int
) -> list[list[ColumnElement[bool]]]:
    """One filter per evidence period: confirmed matches whose period has passed."""
    with store.transaction() as session:
        periods = session.execute(select(Authorisation.id, Authorisation.evidence_days)).all()
    filters: list[list[ColumnElement[bool]]] = []
    by_days: dict[int, list[int]] = {}
    for auth_id, days in periods:
        by_days.setdefault(int(days), []).append(int(auth_id))
    groups: list[tuple[ColumnElement[bool], int]] = [
        (EventRecord.match_authorisation_id.in_(ids), days) for days, ids in by_days.items()
    ]
    groups.append((EventRecord.match_authorisation_id.is_(None), default_days))
    for scope, days in groups:
        cutoff = now - timedelta(days=days)
        filters.append(
            [
                EventRecord.match_status == "confirmed",
                scope,
                or_(
                    EventRecord.match_decided_at < cutoff,
                    (EventRecord.match_decided_at.is_(None) & (EventRecord.started_at < cutoff)),
                ),
            ]
        )
    return filters


# -- authorisations -------------------------------------------------------------------
def _unapproved_emergency(decision: timedelta, now: datetime) -> ColumnElement[bool]:
    """Emergency uses that ended without approval: request not filed by the deadline,
    revoked or refused before approval, or not approved within ``decision`` after it."""
    return and_(
        Authorisation.emergency_deadline_at.is_not(None),
        Authorisation.approved_at.is_(None),
        or_(
            and_(
                Authorisation.request_filed_at.is_(None),
                Authorisation.emergency_deadline_at <= now,
            ),
            Authorisation.status.in_(("revoked", "refused")),
            Authorisation.emergency_deadline_at <= now - decision,
        ),
    )


def _annul_lapsed_emergencies(
    store: Store, now: datetime, decision: timedelta, tally: _Tally
) -> None:
    """Annul what emergency uses that ended without approval matched (a result stored
    after an earlier run too)."""
    lapsed_rule = _unapproved_emergency(decision, now)
    with store.transaction() as session:
        lapsed = list(session.scalars(select(Authorisation.id).where(lapsed_rule)))
    for auth_id in lapsed:
        with store.transaction(write=True) as session:
            row = session.scalar(
                select(Authorisation)
                .where(Authorisation.id == auth_id, lapsed_rule)
                .with_for_update()
            )
            if row is None:
                continue  # approved meanwhile
            annulled, files = annul_results(session, auth_id, at=now)
            if row.results_deleted_at is None:
                row.results_deleted_at = now
                tally.add("emergency_uses")
        tally.add("emergency_results", annulled)
        _remove_files(store, files, tally)


def _delete_templates(store: Store, now: datetime, grace: timedelta, tally: _Tally) -> None:
    due = []
    for info in list_authorisations(store):
        ended = info.ended_at()
        if ended is not None and ended + grace <= now:
            due.append(info.id)
    if not due:
        return
    photos: list[str] = []
    with store.transaction(write=True) as session:
        for auth_id in due:
            persons = (
                select(Person.id)
                .join(Watchlist, Person.watchlist_id == Watchlist.id)
                .where(Watchlist.authorisation_id == auth_id)
            )
            photos += photo_paths(session, Template.person_id.in_(persons))
            result = session.execute(
                delete(Template).where(Template.person_id.in_(persons)),
                execution_options={"synchronize_session": False},
            )
            tally.add("templates", int(result.rowcount or 0))  # type: ignore[attr-defined]
            # A plate watchlist's listed plates are its templates: they go at the same time.
            listed = delete_listed_plates(session, ListedPlate.person_id.in_(persons))
            tally.add("listed_plates", listed)
            row = session.get(Authorisation, auth_id)
            if row is not None and row.templates_deleted_at is None:
                row.templates_deleted_at = now
                tally.add("template_authorisations")
    _remove_files(store, photos, tally)  # the photos go with their templates


def _delete_unneeded_persons(store: Store, tally: _Tally) -> None:
    """Names without templates (removed, or their authorisation's templates deleted) stay
    only while match evidence refers to them."""
    referenced = select(EventRecord.match_person_id).where(EventRecord.match_person_id.is_not(None))
    expired = (
        select(Watchlist.id)
        .join(Authorisation, Watchlist.authorisation_id == Authorisation.id)
        .where(Authorisation.templates_deleted_at.is_not(None))
    )
    unneeded = [
        or_(
            Person.removed_at.is_not(None),
            Person.erasure_ref.is_not(None),
            Person.watchlist_id.in_(expired),
        ),
        Person.id.not_in(referenced),
    ]
    with store.transaction(write=True) as session:
        # Their templates are normally gone already; any left go by cascade, photos after.
        photos = photo_paths(session, Template.person_id.in_(select(Person.id).where(*unneeded)))
        gone = session.execute(
            delete(Person).where(*unneeded),
            execution_options={"synchronize_session": False},
        )
        tally.add("persons", int(gone.rowcount or 0))  # type: ignore[attr-defined]
    _remove_files(store, photos, tally)


# -- media ----------------------------------------------------------------------------
def _remove_files(store: Store, files: list[str], tally: _Tally) -> None:
    """Delete files whose rows are committed; a failure is logged and left to the sweep."""
    for relative in files:
        try:
            path = store.media.path(relative)
            existed = path.exists()
            store.media.remove(relative)
        except (OSError, ValueError) as error:
            log.warning("retention could not delete media file %s: %s", relative, error)
            tally.add("file_errors")
            continue
        if existed:
            tally.add("files")


def _age(path: Path) -> float:
    """Seconds since ``path`` was last modified.

    Measured on the machine's clock, the one the file system stamps files with,
    not the run's (possibly manual) clock: a file the sink wrote a second ago is
    young whatever time the run pretends it is.
    """
    return time.time() - path.stat().st_mtime


def _day_folders(root: Path) -> list[Path]:
    folders = []
    for camera in sorted(root.iterdir()):
        if camera.is_symlink() or not camera.is_dir():
            continue
        folders += [
            day
            for day in sorted(camera.iterdir())
            if _DAY_FOLDER.match(day.name) and not day.is_symlink() and day.is_dir()
        ]
    return folders


def _sweep_media(store: Store, grace_s: float, tally: _Tally) -> None:
    """Delete old files no row refers to, then empty day (and enrolled-photo) folders."""
    root = store.media.root
    try:
        folders = _day_folders(root) + photo_folders(root)
    except OSError as error:
        log.warning("retention cannot read the media folder %s: %s", root, error)
        tally.add("file_errors")
        return
    old: list[str] = []
    for folder in folders:
        try:
            for file in folder.iterdir():
                if file.is_file() and not file.is_symlink() and _age(file) >= grace_s:
                    old.append(file.relative_to(root).as_posix())
        except OSError as error:  # a folder removed meanwhile, unreadable
            log.warning("retention cannot read %s: %s", folder, error)
    referenced = _referenced(store, old)
    orphans = [rel for rel in old if rel not in referenced]
    before = tally.counts["files"]
    _remove_files(store, orphans, tally)
    tally.add("orphans", tally.counts["files"] - before)
    for folder in folders:
        try:
            if not any(folder.iterdir()) and _age(folder) >= grace_s:
                folder.rmdir()  # fails harmlessly if a sink wrote into it meanwhile
                tally.add("folders")
        except OSError:
            continue


def _referenced(store: Store, files: list[str], chunk: int = 500) -> set[str]:
    """Which of ``files`` (relative paths) some event or template row refers to."""
    found: set[str] = set()
    columns = (
        EventRecord.snapshot_path,
        EventRecord.match_snapshot_path,
        EventRecord.plate_crop_path,
        Template.photo_path,
    )
    with store.transaction() as session:
        for start in range(0, len(files), chunk):
            part = files[start : start + chunk]
            for column in columns:
                found.update(session.scalars(select(column).where(column.in_(part))))
    return found
