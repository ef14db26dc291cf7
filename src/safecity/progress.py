"""Progress of a long command: a bar on a terminal, a log line now and then elsewhere.

On a terminal (standard error is a tty) a tqdm bar on standard error shows what is
done of the total (or the elapsed time when the total is unknown, a live stream),
the rate, the ETA and any running counts (events so far). When standard error is
not a terminal, or the caller asks for no bar (``--json``), nothing is drawn:
instead one summary line goes to the command's logger at INFO every
:data:`LOG_INTERVAL_S` seconds, and once more at the end; ``safecity -v`` shows
them on standard error (without ``-v`` the CLI logs only warnings).

>>> import logging
>>> with Progress("frames", total=3, unit="frame", log=logging.getLogger("x"), bar=False) as p:
...     for _ in range(3):
...         p.advance(events=1)
>>> p.done, p.counts
(3, {'events': 3})
"""

from __future__ import annotations

import logging
import os
import sys
import time

#: Seconds between two progress lines in the log when no bar is drawn.
LOG_INTERVAL_S = 30.0


def on_terminal() -> bool:
    """Whether standard error is a terminal (where a progress bar belongs)."""
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


class Progress:
    """Counts work done; draws it (terminal) or logs it (every LOG_INTERVAL_S).

    ``bar``: None draws a bar only when standard error is a terminal; False never.
    """

    def __init__(
        self,
        desc: str,
        total: int | None,
        unit: str,
        log: logging.Logger,
        bar: bool | None = None,
        counts: tuple[str, ...] = (),
    ) -> None:
        self.desc, self.total, self.unit, self.log = desc, total, unit, log
        self.done = 0
        self.counts = {name: 0 for name in counts}
        self._started = time.monotonic()
        self._next_log = self._started + LOG_INTERVAL_S
        self._bar = None
        self._closed = False
        if bar is None:
            bar = on_terminal()
        if bar:
            from tqdm import tqdm

            width = _terminal_width()
            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                file=sys.stderr,
                # follows a resized terminal; one that tells no size (0 x 0, where tqdm
                # draws nothing) gets COLUMNS (or 80) x 24
                dynamic_ncols=width is None,
                ncols=width,
                nrows=None if width is None else 24,
                # the figures before the bar: a narrow terminal shortens the bar, not them
                bar_format=None if total is None else _BAR_FORMAT,
            )
            if self.counts:
                self._bar.set_postfix(self.counts, refresh=False)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(finished=exc[0] is None)

    def advance(self, n: int = 1, position: int | None = None, **counts: int) -> None:
        """``n`` more done (or ``position`` done in all); ``counts`` add to the running counts."""
        step = n if position is None else max(0, position - self.done)
        self.done += step
        changed = False
        for name, value in counts.items():
            if value:
                self.counts[name] = self.counts.get(name, 0) + value
                changed = True
        if self._bar is not None:
            if changed:
                self._bar.set_postfix(self.counts, refresh=False)
            self._bar.update(step)
            return
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + LOG_INTERVAL_S
            self.log.info("%s", self.summary(now))

    def summary(self, now: float | None = None) -> str:
        """One line: done of total, rate, counts, elapsed and ETA."""
        elapsed = (now if now is not None else time.monotonic()) - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        done = f"{self.done}/{self.total}" if self.total else str(self.done)
        parts = [f"{self.desc}: {done} {self.unit}s", f"{rate:.1f} {self.unit}s/s"]
        parts += [f"{value} {name}" for name, value in self.counts.items()]
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {_clock((self.total - self.done) / rate)}")
        return ", ".join(parts)

    def close(self, finished: bool = True) -> None:
        """Ends the bar, or logs the last line when finished; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif finished:
            self.log.info("%s (done)", self.summary())


_BAR_FORMAT = (
    "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
    " |{bar}|"
)


def _terminal_width() -> int | None:
    """None when the terminal on standard error tells its width, else COLUMNS or 80."""
    try:
        if os.get_terminal_size(sys.stderr.fileno()).columns > 0:
            return None
    except (AttributeError, OSError, ValueError):
        pass
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 80


def _clock(seconds: float) -> str:
    """``H:MM:SS`` (or ``M:SS`` under an hour).

    >>> _clock(75), _clock(3725)
    ('1:15', '1:02:05')
    """
    s = int(seconds)
    hours, rest = divmod(s, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
