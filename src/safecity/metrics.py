"""Prometheus metrics: what the analysing processes do, and what the database holds.

Operators watch Prometheus, not a table; these are the figures it scrapes. Every name
has the ``safecity_`` prefix and its unit (``_seconds``, ``_bytes``) per Prometheus
conventions; counters end in ``_total`` in the exposition.

Per process (:class:`ProcessMetrics`, one registry each, served on
``config.metrics.host:port`` by ``safecity run`` and by every cluster worker):

- ``safecity_camera_frames_in_total{camera}``, ``..._frames_analysed_total``,
  ``..._frames_dropped_total``, ``..._reconnects_total``: read from the fleet's
  :class:`~safecity.runtime.local.CameraStats` at scrape time (the same figures as
  ``safecity run``'s table and the console's health page, so they cannot disagree);
- ``safecity_camera_lag_seconds{camera}`` (newest frame) and the histogram
  ``safecity_frame_lag_seconds{camera}`` (every frame: from its time to the end of its
  analysis); ``safecity_camera_state{camera,state}`` is 1 for the camera's state;
- ``safecity_stage_duration_seconds{stage}``: a histogram of each pipeline stage
  (``FrameResult.timings_ms``: motion, detector, faces, identify);
- ``safecity_events_stored_total{camera,label}``: events this process *inserted* into
  the database. The store is idempotent by event uuid, so a re-store of a stored event
  (an outbox retry of a batch the database did commit, a restarted camera reproducing
  its events) inserts nothing and counts nothing (:meth:`ProcessMetrics.counting`);
- ``safecity_outbox_events{outbox}``, ``safecity_outbox_bytes{outbox}``: what waits.

From the database (:class:`DatabaseCollector`, at scrape time, cached ``cache_s``):
``safecity_matches{status}``, ``safecity_audit_head_age_seconds`` (now minus the newest
audit record's time), ``safecity_audit_signed_head_age_seconds`` and
``safecity_audit_unsigned_records`` (since the last signed head), and
``safecity_alerts_pending{sink}`` / ``safecity_alerts_failed{sink}`` from
``safecity.alerts.status.pending`` (left out while that module does not exist).
``safecity_database_up`` says whether the last read worked: a database outage never
breaks a scrape. The API serves the same at ``GET /metrics`` (signed in).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from safecity.config import MetricsConfig, SafecityConfig
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store, StoreError
from safecity.store.schema import AuditRecordRow, EventRecord

if TYPE_CHECKING:
    from safecity.events import Event
    from safecity.pipeline import FrameResult
    from safecity.runtime.local import CameraStats
    from safecity.runtime.outbox import Outbox

log = logging.getLogger(__name__)

#: Seconds a database read is reused: scrapes every few seconds cost one read.
CACHE_S = 5.0
#: Pipeline stages take milliseconds (motion) to a second (a detector on a busy CPU).
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Lag from a frame's time to the end of its analysis: well under a second when keeping up.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: Match states an operator alerts on are present (as 0) even before the first match.
MATCH_STATUSES = ("candidate", "confirmed", "rejected", "annulled", "erased")
#: Bytes read from the end of the signed-heads file for its last head (one line is ~300).
_HEAD_TAIL = 8192

Writer = Callable[[list["Event"]], list[int]]

_current: ProcessMetrics | None = None  # the metrics this process serves (see current())


def current() -> ProcessMetrics | None:
    """The analysing metrics of this process, if it runs cameras (``safecity serve``)."""
    return _current


class ProcessMetrics:
    """The metrics of one analysing process, in a registry of its own.

    A registry per instance (not prometheus_client's global one) so that two services
    in one process, as in tests, do not mix their counts.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.stage_seconds = Histogram(
            "safecity_stage_duration_seconds",
            "Seconds one pipeline stage took for one frame",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.frame_lag = Histogram(
            "safecity_frame_lag_seconds",
            "Seconds from a frame's time to the end of its analysis",
            ["camera"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.events_stored = Counter(
            "safecity_events_stored",
            "Events this process inserted into the database (a re-store counts nothing)",
            ["camera", "label"],
            registry=self.registry,
        )
        self._cameras: list[Callable[[], Iterable[CameraStats]]] = []
        self._outboxes: dict[str, Outbox] = {}
        self._lock = threading.Lock()
        # uuid -> (camera, label) of events whose write failed after they were not stored
        # yet: the database may have committed them, so a retry finding them counts them.
        self._unsure: dict[str, tuple[str, str]] = {}
        self._server: Any = None
        self.address: str | None = None  # "host:port" while served
        self.registry.register(_RuntimeCollector(self))

    # -- what is watched -------------------------------------------------------------
    def watch_cameras(self, stats: Callable[[], Iterable[CameraStats]]) -> None:
        """Camera figures read from ``stats()`` at each scrape."""
        with self._lock:
            self._cameras.append(stats)

    def watch_outbox(self, name: str, outbox: Outbox) -> None:
        with self._lock:
            self._outboxes[name] = outbox

    def watch_database(
        self, store: Store, config: SafecityConfig, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        """Add the database's figures (one process per deployment should: not each worker)."""
        self.registry.register(DatabaseCollector(store, config, clock=clock))

    # -- what is recorded ------------------------------------------------------------
    def observe_frame(self, stats: CameraStats, result: FrameResult) -> None:
        """One frame analysed: its stage timings and lag (right after ``stats.record``)."""
        for stage, ms in result.timings_ms.items():
            self.stage_seconds.labels(stage).observe(ms / 1000.0)
        self.frame_lag.labels(stats.camera).observe(stats.lag_s)

    def counting(self, store: Store, write: Writer) -> Writer:
        """``write`` (the store sink's ``write_many``), counting the events it inserts.

        The uuids already stored are looked up first (one indexed read per batch): what
        was there is not counted again.
        """
        from safecity.store.sink import StoreSink

        def counted(events: list[Event]) -> list[int]:
            uuids = [e.uuid for e in events if e.uuid]
            with store.transaction() as session:
                before = set(StoreSink._stored_ids(session, uuids)) if uuids else set()
            new = {
                e.uuid or str(i): (e.camera, e.label)
                for i, e in enumerate(events)
                if not e.uuid or e.uuid not in before
            }
            try:
                ids = write(events)
            except BaseException:
                with self._lock:
                    self._unsure.update((u, v) for u, v in new.items() if len(u) == 32)
                raise
            with self._lock:
                for uuid in uuids:
                    unsure = self._unsure.pop(uuid, None)
                    if unsure is not None:
                        new[uuid] = unsure
            for camera, label in new.values():
                self.events_stored.labels(camera, label).inc()
            return ids

        return counted

    # -- serving -----------------------------------------------------------------------
    def start(self, config: MetricsConfig, port: int | None = None) -> str | None:
        """Serve on ``config.host:port`` when enabled; returns "host:port" or None.

        A port in use is logged and the process goes on unserved: analysis matters
        more than its figures.
        """
        global _current
        _current = self
        if not config.enabled:
            return None
        from prometheus_client import start_http_server

        port = config.port if port is None else port
        try:
            server, _ = start_http_server(port, addr=config.host, registry=self.registry)
        except OSError as error:
            log.error(
                "metrics are not served: cannot listen on %s:%d (%s); set metrics.port "
                "(0: any free port) or metrics.enabled: false",
                config.host,
                port,
                error.strerror or error,
            )
            return None
        self._server = server
        host, bound = server.server_address[:2]
        self.address = f"{host}:{bound}"
        log.info("metrics at http://%s/metrics", self.address)
        return self.address

    def stop(self) -> None:
        global _current
        if _current is self:
            _current = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self.address = None


class _RuntimeCollector(Collector):
    """Camera and outbox figures, read from the running objects at scrape time."""

    def __init__(self, metrics: ProcessMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        with self.metrics._lock:
            providers = list(self.metrics._cameras)
            outboxes = dict(self.metrics._outboxes)
        stats = [s for provider in providers for s in provider()]
        counters = {
            "frames_in": "Frames read from the camera",
            "frames_analysed": "Frames the detector ran on (the motion gate skips the others)",
            "frames_dropped": "Frames a live-paced source dropped while the analyser was busy",
            "reconnects": "Times the camera's source was reopened",
        }
        fields = {"frames_dropped": "dropped"}
        for name, doc in counters.items():
            family = CounterMetricFamily(f"safecity_camera_{name}", doc, labels=["camera"])
            for s in stats:
                family.add_metric([s.camera], getattr(s, fields.get(name, name)))
            yield family
        lag = GaugeMetricFamily(
            "safecity_camera_lag_seconds",
            "Seconds from the newest frame's time to the end of its analysis",
            labels=["camera"],
        )
        state = GaugeMetricFamily(
            "safecity_camera_state",
            "1 for the camera's state (starting, running, reconnecting, stopped, failed)",
            labels=["camera", "state"],
        )
        for s in stats:
            lag.add_metric([s.camera], s.lag_s)
            state.add_metric([s.camera, s.state], 1)
        yield lag
        yield state
        events = GaugeMetricFamily(
            "safecity_outbox_events", "Events waiting in the outbox", labels=["outbox"]
        )
        size = GaugeMetricFamily(
            "safecity_outbox_bytes", "Bytes of the events waiting in the outbox", labels=["outbox"]
        )
        for name, outbox in outboxes.items():
            waiting, held = outbox.backlog()
            events.add_metric([name], waiting)
            size.add_metric([name], held)
        yield events
        yield size


class DatabaseCollector(Collector):
    """Figures read from the database (and the signed-heads file) at scrape time.

    Cached ``cache_s`` seconds, so frequent scrapes, or several scrapers, cost one read.
    """

    def __init__(
        self,
        store: Store,
        config: SafecityConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        cache_s: float = CACHE_S,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None
        self._alerts_failing = False

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_s:
                self._cached = (now, self._read())
            families = self._cached[1]
        yield from families

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily(
            "safecity_database_up", "1 when the last read of the database for metrics worked"
        )
        try:
            families = [*self._matches(), *self._audit(), *self._alerts()]
        except StoreError as error:
            log.warning("metrics: cannot read the database: %s", error)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]

    def _matches(self) -> list[Metric]:
        with self.store.transaction() as session:
            rows = session.execute(
                select(EventRecord.match_status, func.count())
                .where(EventRecord.match_status.is_not(None))
                .group_by(EventRecord.match_status)
            ).all()
        counts = dict.fromkeys(MATCH_STATUSES, 0) | {str(s): int(n) for s, n in rows}
        family = GaugeMetricFamily(
            "safecity_matches", "Stored events with a match, by review status", labels=["status"]
        )
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        return [family]

    def _audit(self) -> list[Metric]:
        with self.store.transaction() as session:
            newest = session.execute(
                select(AuditRecordRow.id, AuditRecordRow.at)
                .order_by(AuditRecordRow.id.desc())
                .limit(1)
            ).first()
        if newest is None:
            return []
        now = self.clock.now()
        age = GaugeMetricFamily(
            "safecity_audit_head_age_seconds", "Seconds since the newest audit record"
        )
        age.add_metric([], max(0.0, (now - newest[1]).total_seconds()))
        families: list[Metric] = [age]
        head = last_signed_head(self.config.audit.heads_path)
        if head is not None:
            signed = GaugeMetricFamily(
                "safecity_audit_signed_head_age_seconds",
                "Seconds since the audit chain head was last signed",
            )
            signed.add_metric([], max(0.0, (now - head[1]).total_seconds()))
            unsigned = GaugeMetricFamily(
                "safecity_audit_unsigned_records",
                "Audit records newer than the last signed head",
            )
            unsigned.add_metric([], max(0, int(newest[0]) - head[0]))
            families += [signed, unsigned]
        return families

    def _alerts(self) -> list[Metric]:
        try:
            from safecity.alerts.status import pending
        except ImportError:
            return []  # no alert sinks in this build yet
        try:
            sinks = pending(self.store, self.config)
        except StoreError:
            raise
        except Exception as error:  # an alert bug must not break every scrape
            if not self._alerts_failing:
                log.warning("metrics: alert status unavailable: %s", error)
            self._alerts_failing = True
            return []
        self._alerts_failing = False
        waiting = GaugeMetricFamily(
            "safecity_alerts_pending", "Alerts not yet delivered to the sink", labels=["sink"]
        )
        failed = GaugeMetricFamily(
            "safecity_alerts_failed", "Alerts the sink failed to take", labels=["sink"]
        )
        for sink, figures in sorted(sinks.items()):
            waiting.add_metric([sink], int(figures.get("pending", 0)))
            failed.add_metric([sink], int(figures.get("failed", 0)))
        return [waiting, failed]


def last_signed_head(path: Path) -> tuple[int, datetime] | None:
    """Record id and time of the newest signed head in ``path`` (None: none, or unreadable).

    Reads only the file's end: the file grows by one line per signing for years.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - _HEAD_TAIL))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            raw = json.loads(line)
            if raw.get("kind", "head") == "head":
                return int(raw["id"]), datetime.fromisoformat(raw["at"])
    return None
