"""Identification uses: when each watchlist is searched on each camera, audited.

:class:`AuditedGallery` stands between the pipeline and the
:class:`~safecity.identity.gallery.GalleryCache`. On every analysed frame it
asks which watchlists the camera may search at the frame's time; when that set
changes it records the start or end of a use (``identification_uses`` row and
audit record, frame time in both). A use that cannot be recorded does not
start: no audit, no matching. While a use runs, ``last_seen_at`` is advanced
every ``heartbeat_s`` seconds of frame time, so a process that dies leaves a
lower bound on how long it searched.

>>> gallery = AuditedGallery(GalleryCache(store, config), store)  # doctest: +SKIP
>>> pipeline = CameraPipeline(..., matcher_for=gallery.matcher_for)  # doctest: +SKIP
>>> gallery.close()  # when the cameras stop  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from safecity.errors import SafecityError
from safecity.governance import audit
from safecity.governance.clock import SYSTEM_CLOCK, Clock
from safecity.store.db import Store
from safecity.store.schema import IdentificationUse

log = logging.getLogger(__name__)


class AuditedGallery:
    """A matcher provider that records the start and end of every identification use."""

    def __init__(
        self,
        gallery,
        store: Store,
        clock: Clock = SYSTEM_CLOCK,
        heartbeat_s: float = 60.0,
        retry_s: float = 5.0,
    ) -> None:
        self.gallery = gallery
        self.store = store
        self.clock = clock
        self.heartbeat_s = heartbeat_s
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._open: dict[tuple[str, int], _OpenUse] = {}
        self._last_seen: dict[str, datetime] = {}
        self._retry_at: dict[str, float] = {}
        # The gallery then holds templates only while "now" allows matching (it cannot
        # tell otherwise, and this class searches nothing that "now" does not allow).
        use_clock = getattr(gallery, "use_clock", None)
        if use_clock is not None:
            use_clock(clock)

    def matcher_for(self, camera: str, at: datetime):
        """The matcher over the face watchlists whose use on ``camera`` is recorded, or None."""
        return self.gallery.matcher_over(self._searchable(camera, at, "face"))

    def plate_matcher_for(self, camera: str, at: datetime):
        """The plate matcher over the plate watchlists whose use on ``camera`` is recorded
        (asked when a vehicle's event ends with a plate read), or None."""
        return self.gallery.plate_matcher_over(self._searchable(camera, at, "plate"))

    def _searchable(self, camera: str, at: datetime, kind: str) -> list[int]:
        """The watchlists of ``kind`` ``camera`` may search at ``at``, each use recorded."""
        # Allowed at the frame's time *and* now: a file's operator-given start time
        # cannot reach into an ended window or one not yet started.
        now_allowed = self.gallery.allowed(camera, self.clock.now())
        allowed = {
            wid: w
            for wid, w in self.gallery.allowed(camera, at).items()
            if wid in now_allowed and w.kind == kind
        }
        with self._lock:
            # Plates are asked at a snapshot's time, which can precede the last frame's.
            self._last_seen[camera] = max(at, self._last_seen.get(camera, at))
            running = {
                wid for (cam, wid), use in self._open.items() if cam == camera and use.kind == kind
            }
            for wid in running - allowed.keys():
                self._end(camera, wid, at, "the authorisation no longer allows it")
            for wid in allowed.keys() - running:
                if time.monotonic() >= self._retry_at.get(camera, 0.0):
                    self._start(camera, allowed[wid], at)
            for (cam, _wid), use in self._open.items():
                if (
                    cam == camera
                    and use.kind == kind
                    and (at - use.beat_at).total_seconds() >= self.heartbeat_s
                ):
                    self._heartbeat(use, at)
            return [
                wid for (cam, wid), use in self._open.items() if cam == camera and use.kind == kind
            ]

    def close(self, camera: str | None = None, reason: str = "the camera stopped") -> None:
        """End every open use (of one camera, or all) at the last frame time seen.

        Closing all (``camera=None``) also closes the gallery: its change watcher
        stops and its templates leave memory.
        """
        with self._lock:
            for cam, wid in list(self._open):
                if camera is None or cam == camera:
                    self._end(cam, wid, self._last_seen[cam], reason)
        close_gallery = getattr(self.gallery, "close", None)
        if camera is None and close_gallery is not None:
            close_gallery()

    # -- records (called with the lock held) --------------------------------------
    def _start(self, camera: str, watchlist, at: datetime) -> None:
        try:
            with self.store.transaction(write=True) as session:
                row = IdentificationUse(
                    camera=camera,
                    watchlist_id=watchlist.id,
                    watchlist_name=watchlist.name,
                    authorisation_id=watchlist.authorisation_id,
                    started_at=at,
                    last_seen_at=at,
                )
                session.add(row)
                session.flush()
                audit.append(
                    session,
                    at=self.clock.now(),
                    actor=audit.SYSTEM_ACTOR,
                    action="identification.start",
                    object=f"camera:{camera}",
                    details={
                        "camera": camera,
                        "watchlist": watchlist.name,
                        "authorisation": watchlist.authorisation_id,
                        "reference": watchlist.reference,
                        "purpose": watchlist.purpose,
                        "kind": watchlist.kind,
                        "frame_time": at.isoformat(),
                        "use": row.id,
                    },
                )
                use_id = row.id
        except SafecityError as exc:
            # No record, no matching: try again shortly, keep analysing meanwhile.
            self._retry_at[camera] = time.monotonic() + self.retry_s
            log.error(
                "camera %s: not searching watchlist %s, its use cannot be audited: %s",
                camera,
                watchlist.name,
                exc,
            )
            return
        self._open[(camera, watchlist.id)] = _OpenUse(
            use_id, watchlist.name, at, at, watchlist.kind
        )

    def _end(self, camera: str, watchlist_id: int, at: datetime, reason: str) -> None:
        use = self._open.pop((camera, watchlist_id))
        try:
            with self.store.transaction(write=True) as session:
                row = session.get(IdentificationUse, use.id)
                if row is not None:
                    row.last_seen_at = at
                    row.ended_at = at
                audit.append(
                    session,
                    at=self.clock.now(),
                    actor=audit.SYSTEM_ACTOR,
                    action="identification.end",
                    object=f"camera:{camera}",
                    details={
                        "camera": camera,
                        "watchlist": use.watchlist_name,
                        "frame_time": at.isoformat(),
                        "seconds": round((at - use.started_at).total_seconds(), 3),
                        "reason": reason,
                        "use": use.id,
                    },
                )
        except SafecityError as exc:
            # Matching has stopped either way; the row keeps its last heartbeat.
            log.error("camera %s: the end of use %d was not recorded: %s", camera, use.id, exc)

    def _heartbeat(self, use: _OpenUse, at: datetime) -> None:
        try:
            with self.store.transaction(write=True) as session:
                row = session.get(IdentificationUse, use.id)
                if row is not None:
                    row.last_seen_at = at
            use.beat_at = at
        except SafecityError as exc:
            log.warning("use %d: heartbeat not recorded: %s", use.id, exc)


class _OpenUse:
    __slots__ = ("beat_at", "id", "kind", "started_at", "watchlist_name")

    def __init__(
        self,
        use_id: int,
        watchlist_name: str,
        started_at: datetime,
        beat_at: datetime,
        kind: str = "face",
    ):
        self.id = use_id
        self.kind = kind  # the watchlist's: face uses and plate uses are kept apart
        self.watchlist_name = watchlist_name
        self.started_at = started_at
        self.beat_at = beat_at
