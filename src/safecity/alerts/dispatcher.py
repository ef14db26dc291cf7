"""The alert dispatcher: tells each sink, at least once and in order, what the database holds.

The database is the durable log alerts are read from (:mod:`safecity.alerts.streams`):
finished events reach it through the outbox, review decisions are written there.
Per sink and stream an ``alert_cursors`` row keeps the last id the sink
acknowledged. One thread per sink loops: *claim* the cursor (a short write
transaction: ``SELECT … FOR UPDATE`` on PostgreSQL, SQLite's write lock; it takes
a lease for ``LEASE``), read what lies past it, *send* outside any transaction,
then *advance* the cursor by what was acknowledged, in a second short
transaction that also appends an ``alert.identity`` audit record for every
confirmed match that went out. A failure is counted in the row and retried with
backoff (``retry_initial_s`` doubling to ``retry_max_s``); nothing moves the
cursor but an acknowledgement, so an outage delays alerts and loses none.

Why a lease and not a row lock held while sending: on SQLite the lock is the
whole database's write lock, and a broker that takes its time would stall every
camera's events behind it. With the lease, two dispatchers on one database
still never send the same thing (the second finds the lease taken), and one
that dies is replaced when its lease runs out. A dispatcher whose lease ran out
mid-send does not advance (another may have sent the same): a duplicate at
most, which receivers drop by ``message_id``.

A new sink starts at the streams' heads: alerts are about what happens from
then on, not a replay of the archive.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.alerts import streams
from safecity.alerts.sinks import AlertSinkError, Sink, open_sinks
from safecity.config import AlertsConfig
from safecity.errors import SafecityError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store
from safecity.store.schema import AlertCursor

log = logging.getLogger(__name__)

#: Source rows read (and sent) per round.
BATCH = 50
#: How long one claim lets this dispatcher send before another may take over.
LEASE = timedelta(seconds=60)
#: The time one round's sending may take (well inside the lease).
SEND_TIMEOUT_S = 20.0
#: Seconds between looks at the database when there is nothing to send.
POLL_S = 0.5


@dataclass(frozen=True)
class Claim:
    stream: str
    last_id: int


class AlertDispatcher:
    """One daemon thread per configured sink; :meth:`stop` says ``offline`` and ends them."""

    def __init__(
        self,
        store: Store,
        config: AlertsConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        sinks: list[Sink] | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.poll_s = poll_s
        self.owner = uuid.uuid4().hex[:16]
        self.sinks = sinks if sinks is not None else open_sinks(config, f"safecity-{self.owner}")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Per sink: when the last round that found nothing to send began (stop's drain).
        self._idle_at = {sink.name: 0.0 for sink in self.sinks}

    # -- the loop --------------------------------------------------------------------------

    def start(self) -> None:
        for sink in self.sinks:
            thread = threading.Thread(
                target=self._loop, args=(sink,), name=f"alerts-{sink.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0, drain_s: float = 0.0) -> None:
        """End the threads, release the leases (a successor starts at once), say offline.

        ``drain_s``: first give the sinks that long to take what is pending (a
        ``safecity run`` of a file ends right after its last events are stored).
        """
        asked = time.monotonic()
        deadline = asked + drain_s
        while time.monotonic() < deadline and min(self._idle_at.values(), default=asked) <= asked:
            self._stop.wait(0.1)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        for sink in self.sinks:
            try:
                self._release(sink)
            except SafecityError as error:
                log.warning("alerts %s: could not release its cursor: %s", sink.name, error)
            sink.close()

    def _loop(self, sink: Sink) -> None:
        delay = self.config.retry_initial_s
        failing_since = None
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                sent = self.deliver(sink)
            except SafecityError as error:
                if failing_since is None:
                    failing_since = self.clock.now()
                    log.warning("alerts %s: not delivered, retrying: %s", sink.name, error)
                self._stop.wait(delay)
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            except Exception:  # a bug must not end alerting silently; it is logged and retried
                log.exception("alerts %s: unexpected failure, retrying", sink.name)
                self._stop.wait(delay)
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            if failing_since is not None:
                log.warning(
                    "alerts %s: delivering again (failing since %s)", sink.name, failing_since
                )
                failing_since = None
            delay = self.config.retry_initial_s
            if not sent:
                self._idle_at[sink.name] = began
                self._stop.wait(self.poll_s)

    def deliver(self, sink: Sink) -> int:
        """One round for every stream of ``sink``: returns how many messages it acknowledged.

        Raises :class:`SafecityError` (after counting the failure) when the sink or
        the database failed.
        """
        total = 0
        for stream in streams.streams_for(sink.authorisations):
            total += self._deliver_stream(sink, stream)
        return total

    def _deliver_stream(self, sink: Sink, stream: str) -> int:
        now = self.clock.now()
        with self.store.transaction(write=True) as session:
            claim = self._claim(session, sink, stream)
            if claim is None:
                return 0
            if stream == "events":
                items, watermark = streams.event_items(
                    session, claim.last_id, BATCH, self.config.public_url, now
                )
            else:
                items, watermark = streams.match_items(
                    session, claim.last_id, BATCH, sink.authorisations, self.config.public_url
                )
        messages = [m for item in items for m in item.messages]
        if watermark == claim.last_id and not messages:
            return 0
        try:
            acked = sink.send(messages, SEND_TIMEOUT_S) if messages else 0
            failure = None
        except AlertSinkError as error:
            acked, failure = error.acked, error
        reached, done = claim.last_id, 0
        for item in items:
            if done + len(item.messages) > acked:
                break
            done += len(item.messages)
            reached = item.source_id
        else:
            if acked >= len(messages):
                reached = watermark
        sent = [m for item in items if item.source_id <= reached for m in item.messages]
        self._advance(sink, stream, reached, sent, failure)
        if failure is not None:
            raise failure
        return len(sent)

    # -- the cursor ------------------------------------------------------------------------

    def _row(self, session: Session, sink: Sink, stream: str) -> AlertCursor | None:
        return session.scalar(
            select(AlertCursor)
            .where(AlertCursor.sink == sink.name, AlertCursor.stream == stream)
            .with_for_update()
        )

    def _claim(self, session: Session, sink: Sink, stream: str) -> Claim | None:
        """Take (or renew) the lease on this cursor; None while another dispatcher holds it."""
        now = self.clock.now()
        row = self._row(session, sink, stream)
        if row is None:
            row = AlertCursor(
                sink=sink.name, stream=stream, last_id=streams.head(session, stream), updated_at=now
            )
            session.add(row)
        elif (
            row.lease_owner not in ("", self.owner)
            and row.lease_until is not None
            and row.lease_until > now
        ):
            return None
        row.lease_owner = self.owner
        row.lease_until = now + LEASE
        row.updated_at = now
        session.flush()
        return Claim(stream, row.last_id)

    def _advance(
        self,
        sink: Sink,
        stream: str,
        reached: int,
        sent: list,
        failure: AlertSinkError | None,
    ) -> None:
        """Move the cursor to ``reached`` and audit each identity sent, in one transaction."""
        now = self.clock.now()
        with self.store.transaction(write=True) as session:
            row = self._row(session, sink, stream)
            if row is None or row.lease_owner != self.owner:
                log.warning(
                    "alerts %s: lost the %s cursor to another dispatcher", sink.name, stream
                )
                return
            if reached > row.last_id:
                row.last_id = reached
            if sent:
                row.sent += len(sent)
                row.last_sent_at = now
            if failure is not None:
                row.failed += 1
                row.last_error = str(failure)[:2000]
                row.last_error_at = now
            row.updated_at = now
            for message in sent:
                if message.identity is None:
                    continue
                audit.append(
                    session,
                    at=now,
                    actor=audit.SYSTEM_ACTOR,
                    action="alert.identity",
                    object=f"event:{message.body['event_id']}",
                    details={
                        **message.identity,
                        "sink": sink.name,
                        "message_id": message.message_id,
                        "sent_at": now.isoformat(),
                    },
                )

    def _release(self, sink: Sink) -> None:
        with self.store.transaction(write=True) as session:
            for stream in streams.streams_for(sink.authorisations):
                row = self._row(session, sink, stream)
                if row is not None and row.lease_owner == self.owner:
                    row.lease_owner = ""
                    row.lease_until = None


def start_dispatcher(store: Store, config: AlertsConfig) -> AlertDispatcher | None:
    """A running dispatcher when the config has sinks; None when it has none."""
    if not config.mqtt and not config.webhooks:
        return None
    dispatcher = AlertDispatcher(store, config)
    dispatcher.start()
    return dispatcher
