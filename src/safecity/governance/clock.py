"""Where "now" comes from, so tests can set it.

Everything in :mod:`safecity.governance` that depends on the time (deadlines,
retention, audit timestamps) takes a :class:`Clock`. Production code uses
:data:`SYSTEM_CLOCK`; tests use :class:`ManualClock`.

>>> from datetime import UTC, datetime, timedelta
>>> clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
>>> clock.advance(timedelta(hours=25)).isoformat()
'2026-01-02T01:00:00+00:00'
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC now."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to (thread-safe)."""

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._now = _aware(start)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, value: datetime) -> datetime:
        with self._lock:
            self._now = _aware(value)
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a clock needs a timezone-aware time")
    return value.astimezone(UTC)


SYSTEM_CLOCK: Clock = SystemClock()
