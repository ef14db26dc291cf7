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

from rich.console import Console

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


def stop_on_signals() -> threading.Event:
    """Ctrl-C and SIGTERM ask for a clean stop (open tracks end, events are stored)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop
