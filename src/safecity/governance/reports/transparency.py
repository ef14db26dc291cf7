"""The transparency report's figures for one window ``[start, end)``, from the store.

Aggregates only, no person: per camera the hours during which faces were
compared with a watchlist (identification uses clipped to the window; a use
still running, or whose process died, counts to its last heartbeat), events,
and matches by outcome (by the event's start time, outcome as of now);
the observed false-match rate (rejected / (confirmed + rejected)); subject
requests (audit records with purpose ``subject-request``, distinct requests
per action); retention runs and what they deleted (the numeric details of
``retention.run`` records, summed per key); and the authorisations whose
validity overlapped the window, by status.

Gathering returns a frozen :class:`TransparencyReport`, so tests compare its
numbers with the database and ``--json`` prints it; rendering is elsewhere.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from safecity.config import SafecityConfig
from safecity.governance.audit import AuditRecord
from safecity.governance.authorisations import AuthorisationInfo, list_authorisations
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.governance.reports.common import (
    OUTCOMES,
    audit_items,
    check_window,
    event_counts,
    false_match_rate,
    jsonable,
    match_counts,
    match_outcomes,
    union_seconds,
    use_spans,
)
from safecity.store.cameras import list_cameras
from safecity.store.db import Store

SUBJECT_REQUEST = "subject-request"
RETENTION_RUN = "retention.run"
#: Detail keys that name a subject request, in order of preference.
REQUEST_KEYS = ("request_ref", "request", "ref", "reference", "case_ref")
#: Up to this many days the matches chart has one bar a day, beyond it one a month.
DAILY_UP_TO = 62


@dataclass(frozen=True)
class CameraFigures:
    camera: str
    location: str
    identification_seconds: float  # time at least one watchlist was searched
    identification_hours: float
    uses: int  # identification uses overlapping the window
    events: int
    candidate: int
    confirmed: int
    rejected: int
    expired: int
    annulled: int
    erased: int


@dataclass(frozen=True)
class WatchlistHours:
    """Time one watchlist was searched on one camera in the window."""

    camera: str
    watchlist: str
    authorisation_id: int | None
    seconds: float
    hours: float
    uses: int
    still_open: int  # uses without an end yet: counted to their last heartbeat


@dataclass(frozen=True)
class MatchFigures:
    candidate: int  # still awaiting review
    confirmed: int
    rejected: int  # false matches found by reviewers
    expired: int  # nobody reviewed them within the snapshot period
    annulled: int  # made without a lawful basis (refused or lapsed emergency use)
    erased: int  # deleted at the request of the person concerned
    refused: int  # matches the store refused (no authorisation allowed them)
    total: int  # every outcome
    decided: int  # confirmed + rejected
    false_match_rate: float | None  # rejected / decided; None when nothing was decided

    @classmethod
    def of(cls, counts: dict[str, int], refused: int = 0) -> MatchFigures:
        c = {k: int(counts.get(k, 0)) for k in OUTCOMES}
        return cls(
            candidate=c["candidate"],
            confirmed=c["confirmed"],
            rejected=c["rejected"],
            expired=c["expired"],
            annulled=c["annulled"],
            erased=c["erased"],
            refused=refused,
            total=sum(c.values()),
            decided=c["confirmed"] + c["rejected"],
            false_match_rate=false_match_rate(c["confirmed"], c["rejected"]),
        )


@dataclass(frozen=True)
class PeriodMatches:
    """Matches of one day (or month) by outcome, for the chart."""

    period: str  # 2026-11-27, or 2026-11 for a month
    candidate: int
    confirmed: int
    rejected: int
    expired: int
    annulled: int
    erased: int


@dataclass(frozen=True)
class SubjectRequests:
    records: int  # audit records with purpose subject-request in the window
    requests: int  # distinct requests among them
    by_action: dict[str, int]  # distinct requests per audited action


@dataclass(frozen=True)
class RetentionFigures:
    runs: int  # retention.run records in the window
    deleted: dict[str, float]  # numeric details of those runs, summed per key
    audit_purges: int  # audit.purge records in the window
    audit_records_purged: int


@dataclass(frozen=True)
class AuthorisationSpan:
    """An authorisation whose validity overlapped the window."""

    id: int
    status: str
    legal_basis: str
    authority: str
    reference: str
    purpose: str
    valid_from: datetime
    valid_until: datetime
    ended_at: datetime | None
    cameras: tuple[str, ...] | None  # None: every camera
    watchlists: tuple[str, ...]


@dataclass(frozen=True)
class TransparencyReport:
    start: datetime
    end: datetime
    generated_at: datetime
    generated_by: str | None
    cameras: tuple[CameraFigures, ...]
    watchlist_hours: tuple[WatchlistHours, ...]
    identification_hours: float  # sum over cameras
    events: int
    matches: MatchFigures
    periods: tuple[PeriodMatches, ...]
    period_kind: str  # day | month
    subject_requests: SubjectRequests
    retention: RetentionFigures
    authorisations: tuple[AuthorisationSpan, ...]
    authorisations_by_status: dict[str, int]
    required_confirmations: int  # reviewers who must confirm a match (the configuration's)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (times in ISO 8601)."""
        return jsonable(asdict(self))


def gather_transparency(
    store: Store,
    config: SafecityConfig | None,
    start: datetime,
    end: datetime,
    *,
    by: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> TransparencyReport:
    """Every figure of the transparency report for ``[start, end)``."""
    start, end = check_window(start, end)
    generated_at = clock.now()
    locations = {c.name: c.location for c in list_cameras(store)}
    configured = [c.name for c in (config.cameras if config else [])]
    locations.update({c.name: c.location for c in (config.cameras if config else [])})
    with store.transaction() as session:
        spans = use_spans(session, start, end)
        matches = match_counts(session, start, end)
        events = event_counts(session, start, end)
        refused = len(audit_items(session, start=start, end=end, action="match.refused"))
        periods, period_kind = _periods(session, start, end)
        requests = _subject_requests(
            audit_items(session, start=start, end=end, purpose=SUBJECT_REQUEST)
        )
        retention = _retention(
            audit_items(session, start=start, end=end, action=RETENTION_RUN),
            audit_items(session, start=start, end=end, action="audit.purge"),
        )
    cameras = []
    names = dict.fromkeys(configured)
    names.update(dict.fromkeys(sorted({s.camera for s in spans} | set(events))))
    for camera in names:
        mine = [s for s in spans if s.camera == camera]
        seconds = union_seconds((s.start, s.end) for s in mine)
        cameras.append(
            CameraFigures(
                camera=camera,
                location=locations.get(camera, ""),
                identification_seconds=seconds,
                identification_hours=seconds / 3600,
                uses=len(mine),
                events=events.get(camera, 0),
                **{k: matches.get((camera, k), 0) for k in OUTCOMES},
            )
        )
    totals = Counter()
    for (_camera, status), n in matches.items():
        totals[status] += n
    authorisations = [a for a in list_authorisations(store) if _overlaps(a, start, end)]
    return TransparencyReport(
        start=start,
        end=end,
        generated_at=generated_at,
        generated_by=by,
        cameras=tuple(cameras),
        watchlist_hours=_watchlist_hours(spans),
        identification_hours=sum(c.identification_seconds for c in cameras) / 3600,
        events=sum(events.values()),
        matches=MatchFigures.of(totals, refused),
        periods=periods,
        period_kind=period_kind,
        subject_requests=requests,
        retention=retention,
        authorisations=tuple(_span(a) for a in authorisations),
        authorisations_by_status=dict(sorted(Counter(a.status for a in authorisations).items())),
        required_confirmations=(config or SafecityConfig()).review.required_confirmations,
    )


def _watchlist_hours(spans) -> tuple[WatchlistHours, ...]:
    groups: dict[tuple[str, str, int | None], list] = defaultdict(list)
    for span in spans:
        groups[(span.camera, span.watchlist, span.authorisation_id)].append(span)
    out = []
    for (camera, watchlist, authorisation_id), mine in sorted(
        groups.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or 0)
    ):
        seconds = union_seconds((s.start, s.end) for s in mine)
        out.append(
            WatchlistHours(
                camera,
                watchlist,
                authorisation_id,
                seconds,
                seconds / 3600,
                len(mine),
                sum(1 for s in mine if s.open),
            )
        )
    return tuple(out)


def _periods(
    session: Session, start: datetime, end: datetime
) -> tuple[tuple[PeriodMatches, ...], str]:
    """Matches per day (per month for long windows), every period of the window listed."""
    daily = (end - start) <= timedelta(days=DAILY_UP_TO)
    kind = "day" if daily else "month"

    def label(at: datetime) -> str:
        return at.date().isoformat() if daily else at.strftime("%Y-%m")

    labels: dict[str, Counter] = {}
    day = start.date()
    last = (end - timedelta(microseconds=1)).date()
    while day <= last:
        text = day.isoformat() if daily else day.strftime("%Y-%m")
        labels.setdefault(text, Counter())
        day += timedelta(days=1)
    for match in match_outcomes(session, start, end):
        labels.setdefault(label(match.frame_time), Counter())[match.outcome] += 1
    return (
        tuple(PeriodMatches(p, *(c.get(k, 0) for k in OUTCOMES)) for p, c in labels.items()),
        kind,
    )


def request_ref(item: AuditRecord) -> str:
    """Which subject request an audit record belongs to (see :data:`REQUEST_KEYS`)."""
    for key in REQUEST_KEYS:
        value = item.details.get(key)
        if isinstance(value, str | int) and str(value).strip():
            return str(value).strip()
    return item.object or f"record:{item.id}"


def _subject_requests(items: list[AuditRecord]) -> SubjectRequests:
    per_action: dict[str, set[str]] = defaultdict(set)
    for item in items:
        per_action[item.action].add(request_ref(item))
    return SubjectRequests(
        records=len(items),
        requests=len({request_ref(i) for i in items}),
        by_action={action: len(refs) for action, refs in sorted(per_action.items())},
    )


def numeric_details(details: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers among ``details`` (nested dicts flattened to ``a.b``; booleans skipped).

    >>> numeric_details({"events": 3, "files": {"snapshots": 2}, "dry": False, "at": "x"})
    {'events': 3, 'files.snapshots': 2}
    """
    out: dict[str, float] = {}
    for key, value in details.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[name] = value
        elif isinstance(value, dict):
            out.update(numeric_details(value, f"{name}."))
    return out


def _retention(runs: list[AuditRecord], purges: list[AuditRecord]) -> RetentionFigures:
    deleted: Counter = Counter()
    for run in runs:
        # "held" is a gauge (holds in place at that run), not something deleted.
        deleted.update({k: v for k, v in numeric_details(run.details).items() if k != "held"})
    purged = sum(int(p.details.get("records", 0) or 0) for p in purges)
    return RetentionFigures(len(runs), dict(sorted(deleted.items())), len(purges), purged)


def _overlaps(info: AuthorisationInfo, start: datetime, end: datetime) -> bool:
    stop = info.ended_at() or info.valid_until
    return info.valid_from < end and stop > start and stop > info.valid_from


def _span(info: AuthorisationInfo) -> AuthorisationSpan:
    return AuthorisationSpan(
        id=info.id,
        status=info.status,
        legal_basis=info.legal_basis,
        authority=info.authority,
        reference=info.reference,
        purpose=info.purpose,
        valid_from=info.valid_from,
        valid_until=info.valid_until,
        ended_at=info.ended_at(),
        cameras=tuple(info.cameras) if info.cameras is not None else None,
        watchlists=tuple(info.watchlists),
    )
