"""The durable outbox: finished events kept on local disk until the database has them.

A camera must not lose what it has finished because the database is away (a
restart, a network cut, a failover). :meth:`Outbox.put` writes each event to its
own file in an owner-only folder (0700, files 0600: temp file, fsync, rename,
fsync of the folder) and returns only then: an event is acknowledged once it
would survive a crash of this process or of the machine. A thread drains the
folder in order to the database through ``write`` (the store sink's
``write_many``, idempotent by event uuid) in small batches and deletes each file
once its batch is stored. A database error keeps the files and retries with
backoff; the log says so once per outage and once when it recovers, with how
many events were stored late. A new :class:`Outbox` on the same folder first
drains what a previous process left (a worker killed with ``kill -9``).

What the files hold (DESIGN.md invariants 2 and 3): an event carries no face
vector, so none is written; each snapshot is pixelated (its ``redact_boxes``,
with :func:`safecity.store.media.pixelate`) *before* it is encoded — losslessly,
as PNG, so the stored JPEG is the one a direct write would give — and is read
back with no boxes left to redact. A match's input snapshot keeps its matched
face unpixelated, as the sink itself keeps it: it lies in this owner-only folder
until stored, and if the sink refuses the match (authorisation no longer valid),
it is deleted with the outbox entry without ever reaching the media folder.

Files are JSON with base64 images, never pickle: reading a file must not run
code. A file that cannot be read or decoded (or that the database refuses as a
value) is moved aside as ``*.bad`` and logged by name; it never stops the
drainer nor blocks the events after it. ``*.bad`` files are kept for an operator
to inspect: no retention sweep reaches them.

Limits: past ``max_events`` or ``max_bytes``, or on a full disk, :meth:`put`
raises :class:`OutboxFull` (a :class:`SafecityError`: the fleet logs it as the
camera's health error and keeps analysing) and keeps what it had.

>>> outbox = Outbox(folder, StoreSink(store).write_many)  # doctest: +SKIP
>>> outbox.start(); outbox.put(with_uuids(events, "run-1"))  # doctest: +SKIP
>>> outbox.flush(30.0); outbox.close()  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from safecity.errors import SafecityError
from safecity.events import Event, PlateRead, Snapshot
from safecity.store.db import StoreValueError
from safecity.store.media import pixelate
from safecity.vision.types import Match

log = logging.getLogger(__name__)

#: Events handed to ``write`` at once: small, so a retry redoes little.
BATCH = 16
#: Seconds between retries while the database is away: doubling from the first to the last.
BACKOFF_S = (0.5, 5.0)
#: Version of the file format, checked on read.
FORMAT = 1

# <sequence>-<put time in ns>-<event uuid>.json: the sequence orders the drain.
_NAME = re.compile(r"^(\d{12})-(\d{1,20})-([0-9a-f]{32})\.json$")
_LOCK = ".lock"


class OutboxError(SafecityError):
    """The outbox cannot keep an event (its folder cannot be written or is in use)."""


class OutboxFull(OutboxError):
    """The outbox holds as much as it may; the events offered were not kept."""


Writer = Callable[[list[Event]], list[int]]


class Outbox:
    """Events on disk until ``write`` has stored them; see the module docstring."""

    def __init__(
        self,
        folder: Path,
        write: Writer,
        *,
        max_events: int = 100_000,
        max_bytes: int = 2048 * 1024 * 1024,
        batch: int = BATCH,
        backoff_s: tuple[float, float] = BACKOFF_S,
    ) -> None:
        if max_events < 1 or max_bytes < 1 or batch < 1:
            raise ValueError("max_events, max_bytes and batch must be positive")
        self.folder = Path(folder)
        self.write = write
        self.max_events = int(max_events)
        self.max_bytes = int(max_bytes)
        self.batch = int(batch)
        self.backoff_s = backoff_s
        self.last_error = ""  # the database's last error while it is away; "" when fine
        self.stored_late = 0  # events stored after having waited for the database
        self._lock = threading.Condition()  # guards the fields below; notified on changes
        self._put_lock = threading.Lock()  # one put at a time: sequence numbers stay ordered
        self._files: dict[str, int] = {}  # name → size, in drain order
        self._bytes = 0
        self._seq = 0
        self._closing = False
        self._retry_now = threading.Event()
        self._failing_since: datetime | None = None  # first failure of the current outage
        self._late_mode = False  # an outage (or a predecessor's leftovers) is being caught up
        self._late = 0  # events stored late since then
        self._lock_fd = self._open_folder()
        self._scan()
        self._thread = threading.Thread(target=self._drain_loop, name="outbox", daemon=True)

    # -- setup ---------------------------------------------------------------------
    def _open_folder(self) -> int:
        """Create the folder owner-only and hold its lock: one process per outbox."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.folder, 0o700)
            fd = os.open(self.folder / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise OutboxError(
                f"cannot open the outbox folder {self.folder}: {error.strerror or error}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutboxError(
                f"the outbox folder {self.folder} is in use by another safecity process; "
                "give each process its own outbox"
            ) from None
        return fd

    def _scan(self) -> None:
        """Take up what a previous process left: its files in order; its temp files go."""
        for temp in self.folder.glob(".*.tmp"):  # a put that never returned: not acknowledged
            temp.unlink(missing_ok=True)
        names = []
        for path in self.folder.glob("*.json"):
            if _NAME.match(path.name):
                names.append(path.name)
            else:
                self._set_aside(path.name, "its name is not one the outbox gives")
        for name in sorted(names):
            size = (self.folder / name).stat().st_size
            self._files[name] = size
            self._bytes += size
        if names:
            self._seq = int(_NAME.match(max(names)).group(1)) + 1  # type: ignore[union-attr]
            self._late_mode = True
            log.warning(
                "outbox: %d event(s) left in %s by a previous run; storing them now",
                len(names),
                self.folder,
            )

    def start(self) -> None:
        """Start draining (what a previous process left first)."""
        self._thread.start()

    # -- put -----------------------------------------------------------------------
    def put(self, events: list[Event]) -> None:
        """Keep ``events`` on disk, all or none, before returning; raises :class:`OutboxError`.

        Each event must carry its uuid already (:func:`safecity.events.with_uuids`).
        """
        if not events:
            return
        if any(not e.uuid for e in events):
            raise ValueError("events must carry a uuid before the outbox (events.with_uuids)")
        try:
            encoded = [encode_event(e) for e in events]
        except ValueError as error:
            raise OutboxError(
                f"cannot keep {len(events)} event(s) in the outbox {self.folder}: {error}"
            ) from None
        size = sum(len(data) for data in encoded)
        with self._put_lock:
            with self._lock:
                count, held = len(self._files), self._bytes
                if count + len(events) > self.max_events or held + size > self.max_bytes:
                    raise OutboxFull(self._full_message(len(events), ", its limit"))
                first = self._seq
                self._seq += len(events)
            stamp = time.time_ns()
            names = [
                f"{first + i:012d}-{stamp}-{event.uuid}.json" for i, event in enumerate(events)
            ]
            self._write_files(names, encoded, len(events))
            with self._lock:
                for name, data in zip(names, encoded, strict=True):
                    self._files[name] = len(data)
                    self._bytes += len(data)
                self._lock.notify_all()

    def _write_files(self, names: list[str], encoded: list[bytes], count: int) -> None:
        """Temp files, fsync, then renames and a folder fsync; on failure nothing is left."""
        temps: list[Path] = []
        done: list[Path] = []
        try:
            for name, data in zip(names, encoded, strict=True):
                temp = self.folder / f".{name}.tmp"
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                temps.append(temp)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            for temp, name in zip(temps, names, strict=True):
                os.replace(temp, self.folder / name)
                done.append(self.folder / name)
            self._fsync_folder()
        except OSError as error:
            for path in temps + done:
                path.unlink(missing_ok=True)
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutboxFull(self._full_message(count, " and its disk is full")) from None
            raise OutboxError(
                f"cannot keep {count} event(s) in the outbox {self.folder}: "
                f"{error.strerror or error}"
            ) from None

    def _full_message(self, count: int, why: str) -> str:
        events, held = self.backlog()
        since = self._failing_since
        waiting = (
            f"the database has been unreachable since {since.isoformat(timespec='seconds')}"
            if since is not None
            else "the database is not keeping up"
        )
        return (
            f"outbox full: {count} event(s) not kept; {waiting} and {self.folder} holds "
            f"{events} event(s) ({held / 1024 / 1024:.1f} MB){why}"
        )

    # -- state ---------------------------------------------------------------------
    def backlog(self) -> tuple[int, int]:
        """Events waiting, and their bytes on disk."""
        with self._lock:
            return len(self._files), self._bytes

    def oldest(self) -> datetime | None:
        """When the oldest waiting event was put, or None when nothing waits."""
        with self._lock:
            name = next(iter(self._files), None)
        if name is None:
            return None
        stamp = int(_NAME.match(name).group(2))  # type: ignore[union-attr]
        return datetime.fromtimestamp(stamp / 1e9, UTC)

    def flush(self, timeout_s: float) -> bool:
        """Retry now and wait until nothing waits (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        self._retry_now.set()
        with self._lock:
            while self._files:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._lock.wait(min(left, 0.5))
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop draining (what waits stays on disk for the next start) and free the folder."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._retry_now.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    # -- drain ---------------------------------------------------------------------
    def _drain_loop(self) -> None:
        delay = self.backoff_s[0]
        while True:
            with self._lock:
                while not self._files and not self._closing:
                    self._lock.wait()
                if self._closing:
                    return
                names = list(self._files)[: self.batch]
            try:
                stored = self._drain(names)
            except Exception:  # a bug must not stop the drain: the files stay, retried later
                log.exception("outbox: unexpected error while storing events; retrying")
                stored = False
            if stored:
                delay = self.backoff_s[0]
                continue
            self._retry_now.wait(delay)
            self._retry_now.clear()
            delay = min(delay * 2, self.backoff_s[1])

    def _drain(self, names: list[str]) -> bool:
        """Store one batch; False when the database is away (the files stay)."""
        entries: list[tuple[str, Event]] = []
        for name in names:
            try:
                entries.append((name, decode_event((self.folder / name).read_bytes())))
            except (OSError, ValueError, KeyError, TypeError) as error:
                self._set_aside(name, _why(error))
        if not entries:
            return True
        try:
            self.write([event for _, event in entries])
        except StoreValueError:
            # One event the database refuses must not hold back the others: one by one.
            return all(self._drain_one(name, event) for name, event in entries)
        except SafecityError as error:
            self._failed(error)
            return False
        self._stored([name for name, _ in entries])
        return True

    def _drain_one(self, name: str, event: Event) -> bool:
        try:
            self.write([event])
        except StoreValueError as error:
            self._set_aside(name, str(error))
            return True
        except SafecityError as error:
            self._failed(error)
            return False
        self._stored([name])
        return True

    def _stored(self, names: list[str]) -> None:
        """Forget stored events: their files go (the database has them now)."""
        for name in names:
            (self.folder / name).unlink(missing_ok=True)
        self._fsync_folder()
        with self._lock:
            for name in names:
                self._bytes -= self._files.pop(name, 0)
            if self._late_mode:
                self._late += len(names)
                self.stored_late += len(names)
            self._failing_since = None
            caught_up = self._late_mode and not self._files
            late = self._late
            if caught_up:
                self._late_mode, self._late = False, 0
            self._lock.notify_all()
        self.last_error = ""
        if caught_up:
            log.warning("outbox: the database is back; %d event(s) were stored late", late)

    def _failed(self, error: SafecityError) -> None:
        self.last_error = str(error)
        with self._lock:
            first = self._failing_since is None
            if first:
                self._failing_since = datetime.now(UTC)
                self._late_mode = True
            waiting = len(self._files)
        if first:
            log.warning(
                "outbox: events not stored yet: %s; %d event(s) wait in %s and are stored "
                "when the database is back",
                error,
                waiting,
                self.folder,
            )

    def _set_aside(self, name: str, why: str) -> None:
        """Move an unreadable or refused file to ``<name>.bad``: kept, logged, out of the way."""
        path = self.folder / name
        try:
            os.replace(path, path.with_name(name + ".bad"))
        except OSError as error:
            log.error("outbox: cannot set aside %s (%s): %s", path, why, error.strerror or error)
            path.unlink(missing_ok=True)
        else:
            log.error("outbox: %s cannot be stored (%s); moved aside as %s.bad", path, why, name)
        with self._lock:
            self._bytes -= self._files.pop(name, 0)
            self._lock.notify_all()

    def _fsync_folder(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _why(error: BaseException) -> str:
    if isinstance(error, OSError):
        return str(error.strerror or error)
    return f"not an outbox event: {type(error).__name__}: {error}"


# -- the file format ---------------------------------------------------------------
def encode_event(event: Event) -> bytes:
    """The event as JSON: its snapshots pixelated, then PNG in base64; no face vector."""
    match = event.match
    return json.dumps(
        {
            "format": FORMAT,
            "uuid": event.uuid,
            "camera": event.camera,
            "track_id": int(event.track_id),
            "label": event.label,
            "started_at": event.started_at.isoformat(),
            "ended_at": event.ended_at.isoformat(),
            "best_score": float(event.best_score),
            "frames": int(event.frames),
            "face_only": bool(event.face_only),
            "plate": None if event.plate is None else _encode_plate(event.plate),
            "snapshot": _encode_snapshot(event.snapshot),
            "match": None
            if match is None
            else {
                "person_id": int(match.person_id),
                "person_name": match.person_name,
                "watchlist_id": int(match.watchlist_id),
                "watchlist_name": match.watchlist_name,
                "score": float(match.score),
                "margin": float(match.margin),
            },
            "match_snapshot": None
            if event.match_snapshot is None
            else _encode_snapshot(event.match_snapshot),
        },
        separators=(",", ":"),
    ).encode()


def decode_event(data: bytes) -> Event:
    """An event read back; raises ``ValueError``/``KeyError``/``TypeError`` when it is not one."""
    raw = json.loads(data)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError("unknown format")
    match = raw["match"]
    return Event(
        camera=str(raw["camera"]),
        track_id=int(raw["track_id"]),
        label=str(raw["label"]),
        started_at=_time(raw["started_at"]),
        ended_at=_time(raw["ended_at"]),
        best_score=float(raw["best_score"]),
        frames=int(raw["frames"]),
        face_only=bool(raw.get("face_only", False)),  # absent in outboxes written before it
        plate=None if raw.get("plate") is None else _decode_plate(raw["plate"]),  # likewise
        snapshot=_decode_snapshot(raw["snapshot"]),
        match=None if match is None else Match(**match),
        match_snapshot=None
        if raw["match_snapshot"] is None
        else _decode_snapshot(raw["match_snapshot"]),
        uuid=str(raw["uuid"]),
    )


def _png(image: np.ndarray) -> str:
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} image as PNG")
    return base64.b64encode(png.tobytes()).decode("ascii")


def _unpng(text: str, what: str) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(text, validate=True), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None or not image.size:
        raise ValueError(f"its {what} is not a readable image")
    return image


def _encode_plate(plate: PlateRead) -> dict[str, Any]:
    return {
        "text": plate.text,
        "confidence": float(plate.confidence),
        "reads": int(plate.reads),
        "png": _png(plate.crop),
    }


def _decode_plate(raw: dict[str, Any]) -> PlateRead:
    return PlateRead(
        text=str(raw["text"]),
        confidence=float(raw["confidence"]),
        crop=_unpng(raw["png"], "plate image"),
        reads=int(raw["reads"]),
    )


def _encode_snapshot(snapshot: Snapshot) -> dict[str, Any]:
    redacted = pixelate(snapshot.image, snapshot.redact_boxes)  # before the first write
    return {
        "png": _png(redacted),
        "box": np.asarray(snapshot.box, np.float64).tolist(),
        "frame_box": np.asarray(snapshot.frame_box, np.float64).tolist(),
        "frame_index": int(snapshot.frame_index),
        "time": snapshot.time.isoformat(),
    }


def _decode_snapshot(raw: dict[str, Any]) -> Snapshot:
    return Snapshot(
        image=_unpng(raw["png"], "snapshot"),
        box=np.asarray(raw["box"], np.float32).reshape(4),
        frame_box=np.asarray(raw["frame_box"], np.float32).reshape(4),
        redact_boxes=np.zeros((0, 4), np.float32),  # pixelated before it was written
        frame_index=int(raw["frame_index"]),
        time=_time(raw["time"]),
    )


def _time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return parsed
