"""The background thread of ``safecity run`` that keeps retention and the audit chain going.

Two periodic jobs, in one daemon thread so they never run at the same time as
each other:

- :func:`~safecity.governance.retention.run_retention` once at start, then every
  ``config.retention.interval_s`` seconds;
- :meth:`~safecity.governance.audit.HeadSigner.sign` of the audit chain head once
  at start, every ``config.audit.sign_interval_s`` seconds, and once more at stop
  (so the last records a run wrote are covered by a signed head).

A failing job (the database is away, the key folder unwritable) is logged and
tried again at its next interval: a camera system must not stop recording
because its retention run failed once. Intervals are measured on the monotonic
clock; ``clock`` only stamps what the jobs write, so tests can use a
:class:`~safecity.governance.clock.ManualClock` with small intervals.

>>> scheduler = RetentionScheduler(store, config, signer, SYSTEM_CLOCK, stop)  # doctest: +SKIP
>>> scheduler.start()  # doctest: +SKIP
>>> ...; scheduler.stop(); scheduler.join()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time

from safecity.config import SafecityConfig
from safecity.errors import SafecityError
from safecity.governance import audit
from safecity.governance.audit import HeadSigner
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.governance.retention import RetentionReport, run_retention
from safecity.store.db import Store

log = logging.getLogger(__name__)


class RetentionScheduler:
    """Runs retention and signs the audit head periodically until ``stop_event`` is set."""

    def __init__(
        self,
        store: Store,
        config: SafecityConfig,
        signer: HeadSigner,
        clock: Clock = SYSTEM_CLOCK,
        stop_event: threading.Event | None = None,
        *,
        actor: str = audit.SYSTEM_ACTOR,
        retention: bool = True,
    ) -> None:
        self.store = store
        self.config = config
        self.signer = signer
        self.clock = clock
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self.actor = actor
        # Without retention (a console that runs no cameras) it only signs the head.
        self.retention_interval_s = float(config.retention.interval_s) if retention else None
        self.sign_interval_s = float(config.audit.sign_interval_s)
        # What happened so far (read by tests and by status output).
        self.runs = 0
        self.signs = 0
        self.failures = 0
        self.last_report: RetentionReport | None = None
        self.last_error: str = ""
        self._thread = threading.Thread(target=self._loop, name="safecity-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish (it signs the head once more on its way out)."""
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        next_retention = next_sign = time.monotonic()
        if self.retention_interval_s is None:
            next_retention = float("inf")
        try:
            while not self.stop_event.is_set():
                now = time.monotonic()
                if now >= next_retention:
                    self._retention()
                    next_retention = time.monotonic() + (self.retention_interval_s or 0.0)
                if not self.stop_event.is_set() and time.monotonic() >= next_sign:
                    self._sign()
                    next_sign = time.monotonic() + self.sign_interval_s
                wait = min(next_retention, next_sign) - time.monotonic()
                self.stop_event.wait(max(0.0, wait))
        finally:
            self._sign()

    def _retention(self) -> None:
        try:
            self.last_report = run_retention(
                self.store, self.config, clock=self.clock, actor=self.actor
            )
            self.runs += 1
        except Exception as error:  # noqa: BLE001 - logged; retried at the next interval
            self._failed("retention run", error)

    def _sign(self) -> None:
        try:
            self.signer.sign(self.store, self.clock)
            self.signs += 1
        except Exception as error:  # noqa: BLE001 - logged; retried at the next interval
            self._failed("signing the audit head", error)

    def _failed(self, job: str, error: Exception) -> None:
        self.failures += 1
        self.last_error = f"{job} failed: {error}"
        # A SafecityError is one readable sentence; anything else is a bug worth a traceback.
        log.error(
            "%s; retrying at the next interval",
            self.last_error,
            exc_info=not isinstance(error, SafecityError),
        )
