"""The figures of a draft data-protection impact assessment, read from the live system.

A DPIA is the data-protection officer's document; safecity drafts the parts it
knows for certain: which cameras and places, under which authorisations
(purpose, legal basis, authority, reference, validity, scope, evidence
retention), which watchlists with how many people, what data is kept and what
is never kept, retention per class, accuracy at the configured threshold (the
latest ``safecity eval lfw`` on record, and the false-match rate reviewers
observed), the safeguards in force (with the audit trail verified now), and a
first table of risks and mitigations. What only the DPO can judge is left
as marked fields in the rendering.

Gathering returns a frozen :class:`DpiaReport`; rendering is elsewhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.config import SafecityConfig
from safecity.errors import SafecityError
from safecity.governance.accuracy import latest_evaluation
from safecity.governance.audit import HeadSigner
from safecity.governance.authorisations import AuthorisationInfo, allows_matching
from safecity.governance.authorisations import list_authorisations as _authorisations
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.governance.reports.common import (
    audit_items,
    event_counts,
    jsonable,
    match_counts,
    union_seconds,
    use_spans,
)
from safecity.governance.reports.openset import OpenSetFigures, gather_open_set
from safecity.governance.reports.transparency import RETENTION_RUN, MatchFigures
from safecity.identity.watchlists import list_watchlists
from safecity.store.cameras import list_cameras
from safecity.store.db import Store
from safecity.store.schema import (
    AuditRecordRow,
    EventRecord,
    IdentificationUse,
    LegalHold,
    Person,
    Review,
    Template,
)

#: What the DPIA states about sensitive traits (DESIGN.md invariant 6).
NO_SENSITIVE_TRAITS = (
    "safecity offers no classification or inference of sensitive traits: not ethnicity or "
    "race, religion or belief, health, sex life or sexual orientation, nor political "
    "opinion. It detects people and vehicles, finds faces, and compares a face only with "
    "the persons enrolled on watchlists authorised for that camera at that time; no "
    "attribute of a face is estimated, stored or offered by any command or interface."
)
NO_EVALUATION = "no evaluation on record: run safecity eval lfw"
LFW_CAVEAT = (
    "Labeled Faces in the Wild is a research benchmark of mostly frontal, well-lit portraits "
    "of public figures; results on it do not show fitness for any operational use, nor "
    "equal accuracy across groups of people."
)


@dataclass(frozen=True)
class DpiaCamera:
    name: str
    location: str
    configured: bool  # in the configuration now
    enabled: bool | None  # None: not configured
    seen_in: tuple[str, ...]  # config, camera table, events, identification, authorisation scope
    events: int
    identification_hours: float  # all time, to the last heartbeat of running uses
    authorisations: tuple[int, ...]  # authorisations in force whose scope covers it


@dataclass(frozen=True)
class DpiaAuthorisation:
    id: int
    status: str
    in_force: bool  # matching allowed now (within its window, not revoked/refused/lapsed)
    legal_basis: str
    authority: str
    reference: str
    purpose: str
    valid_from: datetime
    valid_until: datetime
    cameras: tuple[str, ...] | None  # None: every camera
    evidence_days: int
    proposed_by: str
    decided_by: str | None
    decided_at: datetime | None
    emergency_deadline_at: datetime | None
    request_filed_at: datetime | None
    watchlists: tuple[str, ...]


@dataclass(frozen=True)
class DpiaWatchlist:
    name: str
    authorisation_id: int
    status: str
    reference: str
    purpose: str
    persons: int
    templates: int
    cameras: tuple[str, ...] | None


@dataclass(frozen=True)
class DataCategory:
    name: str
    description: str
    count: int | None  # rows or files held now, where countable


@dataclass(frozen=True)
class RetentionRule:
    data: str
    period: str
    how: str


@dataclass(frozen=True)
class AccuracyFigures:
    threshold: float  # the configured cosine threshold
    margin: float
    embedder: str  # configured
    evaluated: bool
    problem: str  # why figures are missing ("" when there is an evaluation)
    evaluated_at: datetime | None
    protocol: str | None
    evaluation_embedder: str | None
    pairs: int | None
    accuracy: float | None  # at the evaluation's own threshold
    accuracy_std: float | None
    evaluation_threshold: float | None
    tar_at_far: float | None
    far_target: float | None
    far_threshold: float | None
    tar_at_threshold: float | None  # at the configured threshold, when recorded
    far_at_threshold: float | None
    accuracy_at_threshold: float | None
    observed: MatchFigures  # reviewers' decisions, all time


@dataclass(frozen=True)
class Safeguard:
    name: str
    state: str  # in force | check | broken
    detail: str


@dataclass(frozen=True)
class Risk:
    risk: str
    mitigation: str


@dataclass(frozen=True)
class DpiaReport:
    generated_at: datetime
    generated_by: str | None
    cameras: tuple[DpiaCamera, ...]
    authorisations: tuple[DpiaAuthorisation, ...]
    watchlists: tuple[DpiaWatchlist, ...]
    purposes: tuple[str, ...]  # of the authorisations in force
    data_kept: tuple[DataCategory, ...]
    data_not_kept: tuple[str, ...]
    retention: tuple[RetentionRule, ...]
    accuracy: AccuracyFigures
    safeguards: tuple[Safeguard, ...]
    risks: tuple[Risk, ...]
    sensitive_traits: str
    audit_ok: bool
    audit_summary: str
    required_confirmations: int
    open_set: OpenSetFigures | None = None  # 1:N figures (safecity eval identify)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def gather_dpia(
    store: Store,
    config: SafecityConfig,
    *,
    by: str | None = None,
    evaluations_home: Path | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> DpiaReport:
    """Every figure of the DPIA draft, as the store and configuration stand now."""
    now = clock.now()
    infos = _authorisations(store)
    authorisations = tuple(_authorisation(a, now) for a in infos)
    in_force = [a for a in authorisations if a.in_force]
    watchlists = tuple(
        DpiaWatchlist(
            w.name,
            w.authorisation_id,
            w.status,
            w.reference,
            w.purpose,
            w.persons,
            w.templates,
            tuple(w.cameras) if w.cameras is not None else None,
        )
        for w in list_watchlists(store, clock=clock)
    )
    with store.transaction() as session:
        counts = _counts(session)
        events = event_counts(session)
        spans = use_spans(session)
        observed = Counter()
        for (_camera, status), n in match_counts(session).items():
            observed[status] += n
        refused = len(audit_items(session, action="match.refused"))
        runs = audit_items(session, action=RETENTION_RUN)
    cameras = _cameras(store, config, events, spans, infos, in_force)
    audit_ok, audit_summary, audit_state = _verify(store, config)
    accuracy = _accuracy(config, evaluations_home, MatchFigures.of(observed, refused))
    return DpiaReport(
        generated_at=now,
        generated_by=by,
        cameras=cameras,
        authorisations=authorisations,
        watchlists=watchlists,
        purposes=tuple(sorted({a.purpose for a in in_force})),
        data_kept=_data_kept(counts, observed),
        data_not_kept=DATA_NOT_KEPT,
        retention=_retention(config, authorisations, counts),
        accuracy=accuracy,
        safeguards=_safeguards(config, authorisations, audit_state, audit_summary, runs),
        risks=_risks(config, accuracy),
        sensitive_traits=NO_SENSITIVE_TRAITS,
        audit_ok=audit_ok,
        audit_summary=audit_summary,
        required_confirmations=config.review.required_confirmations,
        open_set=gather_open_set(store, config, evaluations_home, clock),
    )


# -- parts ---------------------------------------------------------------------------
def _authorisation(info: AuthorisationInfo, now: datetime) -> DpiaAuthorisation:
    return DpiaAuthorisation(
        id=info.id,
        status=info.status,
        in_force=allows_matching(info, None, None, now),
        legal_basis=info.legal_basis,
        authority=info.authority,
        reference=info.reference,
        purpose=info.purpose,
        valid_from=info.valid_from,
        valid_until=info.valid_until,
        cameras=tuple(info.cameras) if info.cameras is not None else None,
        evidence_days=info.evidence_days,
        proposed_by=info.proposed_by,
        decided_by=info.decided_by,
        decided_at=info.decided_at,
        emergency_deadline_at=info.emergency_deadline_at,
        request_filed_at=info.request_filed_at,
        watchlists=tuple(info.watchlists),
    )


def _cameras(
    store: Store,
    config: SafecityConfig,
    events: dict[str, int],
    spans,
    infos: list[AuthorisationInfo],
    in_force: list[DpiaAuthorisation],
) -> tuple[DpiaCamera, ...]:
    table = {c.name: c for c in list_cameras(store)}
    configured = {c.name: c for c in config.cameras}
    scoped = {c for a in infos for c in (a.cameras or [])}
    used = {s.camera for s in spans}
    names = list(configured) + sorted((set(table) | set(events) | used | scoped) - set(configured))
    out = []
    for name in names:
        seen = [
            label
            for label, found in (
                ("config", name in configured),
                ("camera table", name in table),
                ("events", name in events),
                ("identification", name in used),
                ("authorisation scope", name in scoped),
            )
            if found
        ]
        location = configured[name].location if name in configured else ""
        if not location and name in table:
            location = table[name].location
        seconds = union_seconds((s.start, s.end) for s in spans if s.camera == name)
        out.append(
            DpiaCamera(
                name=name,
                location=location,
                configured=name in configured,
                enabled=configured[name].enabled if name in configured else None,
                seen_in=tuple(seen),
                events=events.get(name, 0),
                identification_hours=seconds / 3600,
                authorisations=tuple(
                    a.id for a in in_force if a.cameras is None or name in a.cameras
                ),
            )
        )
    return tuple(out)


def _counts(session: Session) -> dict[str, int]:
    def count(column, *where) -> int:
        return int(session.scalar(select(func.count(column)).where(*where)) or 0)

    return {
        "events": count(EventRecord.id),
        "snapshots": count(EventRecord.id, EventRecord.snapshot_path.is_not(None)),
        "match_snapshots": count(EventRecord.id, EventRecord.match_snapshot_path.is_not(None)),
        "persons": count(Person.id),
        "templates": count(Template.id),
        "reviews": count(Review.id),
        "legal_holds": count(LegalHold.id, LegalHold.released_at.is_(None)),
        "audit_records": count(AuditRecordRow.id),
        "uses": count(IdentificationUse.id),
    }


DATA_NOT_KEPT = (
    "Face vectors of people who match nobody: computed in memory for the length of a track "
    "and dropped; never written to the database, a file, a log, a queue or an alert.",
    "Unpixelated faces of people who match nobody: every such face is pixelated before a "
    "snapshot or video is first written.",
    "Any estimate of sensitive traits (ethnicity, religion, health, sexual orientation, "
    "political opinion) or of other personal attributes: none is computed.",
    "Enrolment photos: only their SHA-256 is kept, to identify the photo without holding it.",
    "Evidence of a rejected (false) match: its snapshots and person link are deleted at the "
    "rejection; only the watchlist and score stay for the error statistics.",
)


def _data_kept(counts: dict[str, int], observed: Counter) -> tuple[DataCategory, ...]:
    matched = sum(observed.values())
    return (
        DataCategory(
            "Events",
            "camera, time span, object class (person, vehicle …), track number, detection score",
            counts["events"],
        ),
        DataCategory(
            "Event snapshots",
            "one image per event, every face pixelated unless it is the matched person's",
            counts["snapshots"],
        ),
        DataCategory(
            "Match records",
            "person, watchlist, authorisation, similarity score and review status of a match",
            matched,
        ),
        DataCategory(
            "Match snapshots",
            "the frame a match was made on, the matched face visible for human review",
            counts["match_snapshots"],
        ),
        DataCategory(
            "Enrolled persons",
            "name of each person on a watchlist and who enrolled them",
            counts["persons"],
        ),
        DataCategory(
            "Face templates",
            "face vectors of enrolled persons only (biometric data); the only vectors stored",
            counts["templates"],
        ),
        DataCategory("Reviews", "reviewer's name, decision and note per match", counts["reviews"]),
        DataCategory(
            "Identification uses",
            "when each watchlist was searched on each camera",
            counts["uses"],
        ),
        DataCategory(
            "Audit trail",
            "who did what, when, on which object and why (hash-chained)",
            counts["audit_records"],
        ),
    )


def _days(value: float) -> str:
    return f"{value:g} day{'s' if value != 1 else ''}"


def _retention(
    config: SafecityConfig, authorisations: tuple[DpiaAuthorisation, ...], counts: dict[str, int]
) -> tuple[RetentionRule, ...]:
    r, policy = config.retention, config.authorisations
    evidence = sorted({a.evidence_days for a in authorisations if a.in_force})
    evidence_text = (
        ", ".join(_days(d) for d in evidence) + " (per authorisation in force, see above)"
        if evidence
        else f"as each authorisation sets (default {_days(policy.default_evidence_days)})"
    )
    audit = _days(r.audit_days) if r.audit_days is not None else "kept for ever (no limit set)"
    every = f"enforced by safecity every {r.interval_s:g} s"
    return (
        RetentionRule("Snapshots and footage", f"{r.snapshots_h:g} hours", every),
        RetentionRule("Event rows", _days(r.events_days), every),
        RetentionRule(
            "Confirmed-match evidence",
            evidence_text,
            every + "; longer only under a legal hold for a case, itself audited "
            f"({counts['legal_holds']} hold(s) in place now)",
        ),
        RetentionRule(
            "Rejected-match evidence", "none", "deleted at the rejection by the reviewer"
        ),
        RetentionRule(
            "Results of a refused or lapsed emergency use", "none", "annulled and deleted"
        ),
        RetentionRule(
            "Face templates",
            f"until the authorisation ends, plus {_days(policy.template_grace_days)}",
            every + "; a renewal approved in time keeps them",
        ),
        RetentionRule("Audit trail", audit, every + "; the purge itself is recorded in the trail"),
        RetentionRule(
            "Media files no row refers to",
            f"{r.orphan_grace_s:g} s",
            every,
        ),
    )


def _accuracy(config: SafecityConfig, home: Path | None, observed: MatchFigures) -> AccuracyFigures:
    from safecity.identity.matcher import matcher_settings

    threshold, margin = matcher_settings(config)
    empty = dict.fromkeys(
        (
            "evaluated_at",
            "protocol",
            "evaluation_embedder",
            "pairs",
            "accuracy",
            "accuracy_std",
            "evaluation_threshold",
            "tar_at_far",
            "far_target",
            "far_threshold",
            "tar_at_threshold",
            "far_at_threshold",
            "accuracy_at_threshold",
        )
    )
    base = dict(
        threshold=threshold, margin=margin, embedder=config.embedder.kind, observed=observed
    )
    try:
        evaluation = latest_evaluation(home)
    except SafecityError as error:
        return AccuracyFigures(evaluated=False, problem=str(error), **base, **empty)
    if evaluation is None:
        return AccuracyFigures(evaluated=False, problem=NO_EVALUATION, **base, **empty)
    report = evaluation.report

    def number(key: str) -> float | None:
        value = report.get(key)
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    point = evaluation.at_threshold(threshold) or {}
    pairs = number("pairs")
    problem = ""
    if report.get("embedder") not in (None, config.embedder.kind):
        problem = (
            f"the evaluation on record used embedder {report.get('embedder')}, but the "
            f"configuration uses {config.embedder.kind}: run safecity eval lfw again"
        )
    elif not point:
        problem = (
            f"the evaluation on record does not give TAR and FAR at the configured threshold "
            f"{threshold:g}; the figures below are at the evaluation's own thresholds"
        )
    return AccuracyFigures(
        evaluated=True,
        problem=problem,
        evaluated_at=evaluation.saved_at,
        protocol=str(report.get("protocol")) if report.get("protocol") else None,
        evaluation_embedder=str(report.get("embedder")) if report.get("embedder") else None,
        pairs=int(pairs) if pairs is not None else None,
        accuracy=number("accuracy"),
        accuracy_std=number("accuracy_std"),
        evaluation_threshold=number("threshold"),
        tar_at_far=number("tar_at_far"),
        far_target=number("far_target"),
        far_threshold=number("far_threshold"),
        tar_at_threshold=point.get("tar"),
        far_at_threshold=point.get("far"),
        accuracy_at_threshold=point.get("accuracy"),
        **base,
    )


def _verify(store: Store, config: SafecityConfig) -> tuple[bool, str, str]:
    """(ok, one-paragraph summary, safeguard state) of verifying the audit trail now."""
    signer = HeadSigner(config.audit.key_path, config.audit.heads_path)
    try:
        report = signer.verify(store)
    except SafecityError as error:
        return False, f"the audit trail could not be verified: {error}", "broken"
    summary = report.format().replace("\n", "; ")
    if not report.ok:
        return False, summary, "broken"
    return True, summary, "in force" if report.heads_checked else "check"


def _safeguards(
    config: SafecityConfig,
    authorisations: tuple[DpiaAuthorisation, ...],
    audit_state: str,
    audit_summary: str,
    runs,
) -> tuple[Safeguard, ...]:
    approved = [a for a in authorisations if a.status == "active"]
    second = [a for a in approved if a.decided_by and a.decided_by != a.proposed_by]
    in_force = sum(1 for a in authorisations if a.in_force)
    retention = config.retention
    last_run = runs[-1].at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if runs else None
    return (
        Safeguard(
            "Authorisation before identification",
            "in force",
            f"{in_force} authorisation(s) in force. A watchlist cannot exist without an "
            "authorisation, and is searched only on the cameras in its scope, within its "
            "validity window; every start and end of a search is audited.",
        ),
        Safeguard(
            "Two-user approval of authorisations",
            "in force" if len(second) == len(approved) else "check",
            f"{len(second)} of {len(approved)} approved authorisation(s) were approved by a "
            "user other than the one who proposed them; the system refuses self-approval.",
        ),
        Safeguard(
            "Emergency-use deadline",
            "in force",
            f"an emergency use must file its request within "
            f"{config.authorisations.emergency_deadline_h:g} h, or it stops and its results "
            "are deleted; a refused request deletes them too.",
        ),
        Safeguard(
            "Four-eyes review of matches",
            "in force",
            f"{config.review.required_confirmations} different reviewers must confirm a match "
            "before it counts; nobody reviews a match of a person they enrolled; one "
            "rejection deletes the match's evidence.",
        ),
        Safeguard("Tamper-evident audit trail", audit_state, audit_summary),
        Safeguard(
            "Signed chain heads",
            "in force",
            f"the newest audit record is signed every {config.audit.sign_interval_s:g} s with "
            f"a local Ed25519 key; heads are kept outside the database "
            f"({config.audit.heads_path}).",
        ),
        Safeguard(
            "Retention enforced by the system",
            "in force" if runs else "check",
            f"retention runs every {retention.interval_s:g} s; "
            + (
                f"{len(runs)} run(s) on record, the last at {last_run}."
                if runs
                else "no retention run on record yet."
            ),
        ),
        Safeguard(
            "No stored vectors of non-matched people",
            "in force",
            "built in: the only face vectors stored are enrolled persons' templates.",
        ),
        Safeguard(
            "Pixelation of non-matched faces",
            "in force",
            "built in: every face not matched is pixelated before an image is first written.",
        ),
        Safeguard(
            "No sensitive-trait inference",
            "in force",
            "built in: no command or interface estimates ethnicity, religion, health, sexual "
            "orientation, political opinion or any other attribute of a face (section 5).",
        ),
    )


def _risks(config: SafecityConfig, accuracy: AccuracyFigures) -> tuple[Risk, ...]:
    rate = accuracy.observed.false_match_rate
    observed = (
        f"observed false-match rate {100 * rate:.1f} % of {accuracy.observed.decided} decided "
        "matches"
        if rate is not None
        else "no decided match yet to measure a false-match rate"
    )
    return (
        Risk(
            "A passer-by is wrongly identified as someone on a watchlist (false match), "
            "leading to an unjustified intervention.",
            f"cosine threshold {accuracy.threshold:g} with a margin of {accuracy.margin:g} over "
            f"the next person; {config.review.required_confirmations} independent confirmations "
            f"before a match counts; {observed}.",
        ),
        Risk(
            "Biometric data of people who are not sought is processed or kept.",
            "faces are compared only on cameras and times an authorisation covers; a vector "
            "that matches nobody is dropped; every non-matched face is pixelated before "
            "storage.",
        ),
        Risk(
            "Identification beyond what the authorisation allows (function creep).",
            "one rule decides every search (status, window, camera scope); two-user approval; "
            "emergency deadline; every use, match, review and export audited.",
        ),
        Risk(
            "Data kept longer than necessary.",
            f"snapshots {config.retention.snapshots_h:g} h, events "
            f"{_days(config.retention.events_days)}, evidence per authorisation, all enforced "
            "by the system; holds beyond that only for a case, audited.",
        ),
        Risk(
            "Records are altered or deleted to hide misuse.",
            "hash-chained audit trail that the database refuses to update or delete, signed "
            "chain heads, verification on demand (result above).",
        ),
        Risk(
            "Accuracy differs between groups of people (age, sex, skin tone).",
            "four-eyes review; the threshold chosen for a low false-accept rate; no "
            "sensitive-trait inference. The DPO should require a test on a population "
            "representative of the area before use. " + LFW_CAVEAT,
        ),
        Risk(
            "People avoid public places or lawful assembly for fear of being watched.",
            "identification only under authorisations, published transparency reports "
            "(safecity report transparency).",
        ),
    )


__all__ = [
    "AccuracyFigures",
    "DataCategory",
    "DpiaAuthorisation",
    "DpiaCamera",
    "DpiaReport",
    "DpiaWatchlist",
    "Risk",
    "RetentionRule",
    "Safeguard",
    "gather_dpia",
]
