"""What every command shares: the global options, the store, the acting user, output."""

from __future__ import annotations

import getpass
import json
import os
import signal
import threading
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table

from safecity.config import SafecityConfig, load_config
from safecity.errors import ConfigError

# No rich markup: names, legal bases and audit details are operator text, and
# "GDPR Art. 6(1)[e]" must print as written.
out = Console(markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)  # an error stays one line


class State:
    """The global options of one invocation, and what is built from them once."""

    config_path: Path | None = None
    db: str | None = None
    media: Path | None = None
    user: str | None = None
    _config: SafecityConfig | None = None
    _store = None

    def reset(self, config: Path | None, db: str | None, media: Path | None, user: str | None):
        self.config_path, self.db, self.media, self.user = config, db, media, user
        self._config = None
        self._store = None

    def config(self) -> SafecityConfig:
        if self._config is None:
            config = load_config(self.config_path) if self.config_path else SafecityConfig()
            if self.db:
                config.store.url = self.db
            if self.media:
                config.store.media_dir = self.media
            self._config = config
        return self._config

    def store(self):
        from safecity.store import open_store

        if self._store is None:
            config = self.config()
            self._store = open_store(config.store.url, config.store.media_dir)
            if self.config_path is not None:
                # Any command run with a config file acts under its policy: a changed
                # policy (retention, review, thresholds) goes on record first.
                from safecity.governance.configuration import record_config

                record_config(self._store, config, self.config_path, actor=self.actor())
        return self._store

    def actor(self) -> str:
        """Who acts: --user, else SAFECITY_USER, else the login name."""
        if self.user is not None and not self.user.strip():
            raise ConfigError("--user needs a name")
        name = (self.user or os.environ.get("SAFECITY_USER") or _login_name()).strip()
        if not name:
            raise ConfigError("cannot tell who you are; give --user NAME")
        return name

    def signer(self):
        from safecity.governance.audit import HeadSigner

        audit = self.config().audit
        return HeadSigner(audit.key_path, audit.heads_path)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


state = State()


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 option value; a time without zone is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"{option}: '{value}' is not a date/time like 2026-11-27T08:00") from None
    except OverflowError:
        raise ConfigError(f"{option}: '{value}' is out of range") from None
    if not 1970 <= parsed.year <= 9998:
        raise ConfigError(f"{option}: '{value}' is out of range (years 1970 to 9998)")
    return parsed


def jsonable(row) -> dict:
    """A query row (a dataclass) as a dict for tables and JSON."""
    return asdict(row)


def print_json_rows(rows) -> None:
    """Rows (dataclasses) as one JSON array on standard output (``--json``)."""
    print(json.dumps([jsonable(r) for r in rows], default=str))


def camera_list(text: str | None) -> list[str] | None:
    """``--cameras gate-1,gate-2`` as names; None (every camera) when not given."""
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def short_time(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def day_and_times(values) -> tuple[str | None, list[str]]:
    """Times as ``HH:MM:SS`` under one ``YYYY-MM-DD (UTC)`` when all share a date.

    >>> day_and_times([datetime(2026, 12, 3, 8, 0, 1, tzinfo=UTC), None])
    ('2026-12-03 (UTC)', ['08:00:01', ''])
    >>> day_and_times([datetime(2026, 12, 3, 8, tzinfo=UTC), datetime(2026, 12, 4, 9, tzinfo=UTC)])
    (None, ['2026-12-03 08:00:00', '2026-12-04 09:00:00'])
    """
    times = [_utc(v) for v in values]
    days = {t.date() for t in times if t is not None}
    if len(days) != 1:
        return None, [short_time(t) for t in times]
    return f"{days.pop().isoformat()} (UTC)", [t.strftime("%H:%M:%S") if t else "" for t in times]


def _utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC) if value.tzinfo else value


class FitTable:
    """A table that drops its optional columns, in order, when the console is too narrow.

    A column with no text in any row goes first. The others are shown whole (no ``…``):
    ``wrap`` columns may wrap at spaces; ``soft`` ones (a date and time) are counted
    whole when deciding what to drop, and wrap at spaces only when the table still
    does not fit. Whether it fits is decided at print time, from the console's width
    (``COLUMNS``).
    """

    def __init__(
        self,
        columns: list[str],
        rows: list[list[str]],
        drop: tuple[str, ...] = (),
        wrap: tuple[str, ...] = (),
        soft: tuple[str, ...] = (),
        title: str | None = None,
    ) -> None:
        self.columns, self.rows, self.wrap, self.soft, self.title = (
            columns,
            rows,
            wrap,
            soft,
            title,
        )
        empty = [c for i, c in enumerate(columns) if not any(row[i] for row in rows)]
        self.drop = tuple(empty) + tuple(c for c in drop if c not in empty)

    def shown(self, width: int) -> list[str]:
        """The columns that fit ``width`` cells: the optional ones dropped in order (and
        those dropped early that fit again once a wider one went, back in)."""
        shown = list(self.columns)
        dropped = []
        for name in self.drop:
            if self._needed(shown) <= width:
                break
            shown.remove(name)
            dropped.append(name)
        for name in reversed(dropped[:-1]):
            trial = [c for c in self.columns if c in shown or c == name]
            if self._needed(trial) <= width:
                shown = trial
        return shown

    def _needed(self, shown: list[str]) -> int:
        # Each column: its widest cell (longest word where it wraps), 2 of padding and
        # 1 of border; plus the outer border.
        total = 1
        for name in shown:
            i = self.columns.index(name)
            cells = [name] + [row[i] for row in self.rows]
            if name in self.wrap:
                total += max(cell_len(w) for c in cells for w in (c.split() or [""]))
            else:
                total += max(cell_len(line) for c in cells for line in (c.splitlines() or [""]))
            total += 3
        return total

    def table(self, width: int) -> Table:
        shown = self.shown(width)
        table = Table(title=self.title, title_justify="left")
        for name in shown:
            wraps = name in self.wrap or name in self.soft
            table.add_column(name, no_wrap=not wraps, overflow="fold")
        index = [self.columns.index(name) for name in shown]
        for row in self.rows:
            table.add_row(*(row[i] for i in index))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)


def stop_on_signals() -> threading.Event:
    """Ctrl-C and SIGTERM ask for a clean stop (open tracks end, events are stored)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop
