"""Live frames of cameras that Ray workers run (``safecity serve --cluster …``).

A console that does not run a camera itself finds the worker that does in the
coordinators' status documents (:func:`safecity.store.cluster.read_status`),
and polls that worker's ``live_jpeg`` at most ``api.live_fps`` a second while a
client watches. The worker keeps frames only while such polls come (a lease,
:data:`safecity.runtime.cluster.LIVE_LEASE_S`), draws them with the same
:class:`~safecity.api.live.LiveHub` and redaction as a console's own cameras,
and sends the JPEG: no raw frame leaves the worker.

Cameras move (a worker killed, a node lost): a failed or silent worker makes the
stream look the camera up again, and it ends when no worker has run the camera
for :data:`GONE_AFTER_S`. Every Ray call runs in a worker thread with a timeout,
never on the event loop.

>>> now = datetime.now(UTC).isoformat()
>>> worker_actor([{"run_id": "0123456789ab", "ended": False, "updated_at": now,
...   "cameras": [{"camera": "gate-1", "worker": "w1-abcd", "state": "running"}]}], "gate-1")
'01234567-w1-abcd'
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool

from safecity.store.cluster import read_status, with_freshness
from safecity.store.db import Store

log = logging.getLogger(__name__)

#: How long one ``live_jpeg`` call may take before the worker counts as lost.
CALL_TIMEOUT_S = 2.0
#: The database is asked where a camera runs at most this often while it is being sought.
LOOKUP_EVERY_S = 1.0
#: A worker that sends no frame for this long is asked about again (the camera may have moved).
RELOOK_AFTER_S = 3.0
#: A stream whose camera no worker has run for this long ends.
GONE_AFTER_S = 15.0
_DONE = {"stopped", "failed"}


def _running(documents: list[dict]) -> dict[str, str]:
    """Camera → actor name, from the documents of coordinators that still run (newest wins)."""
    found: dict[str, str] = {}
    for document in with_freshness(documents, datetime.now(UTC)):  # newest first
        if document.get("ended") or not document["reporting"]:
            continue
        for camera in document.get("cameras", []):
            name, worker = camera.get("camera"), camera.get("worker")
            if name and worker and camera.get("state") not in _DONE:
                found.setdefault(name, f"{str(document['run_id'])[:8]}-{worker}")
    return found


def worker_actor(documents: list[dict], camera: str) -> str | None:
    """The Ray actor name of the worker running ``camera``, or None: no running coordinator
    has it (actors are named ``{run_id[:8]}-{worker}`` by the coordinator)."""
    return _running(documents).get(camera)


class _Watch:
    """One client's view of one remote camera: where it runs, and its last answer."""

    def __init__(self, remote: RemoteLive, camera: str, faces_visible: bool) -> None:
        self.remote = remote
        self.camera = camera
        self.faces_visible = faces_visible
        self.actor: Any = None
        now = time.monotonic()
        self.looked = float("-inf")
        self.found = now  # when a worker last had the camera
        self.framed = now  # when the worker last sent a frame

    def poll(self) -> bytes | None:  # blocking: runs in a worker thread
        """The camera's newest JPEG, or None (none yet, or its worker is being sought).

        Raises :class:`LookupError` when no worker has run it for :data:`GONE_AFTER_S`.
        """
        import ray

        now = time.monotonic()
        if self.actor is None:
            if now - self.looked >= LOOKUP_EVERY_S:
                self.looked = now
                self.actor = self.remote.actor(self.camera)
            if self.actor is None:
                if now - self.found > GONE_AFTER_S:
                    raise LookupError(self.camera)
                return None
            self.found = self.framed = now
        try:
            call = self.actor.live_jpeg.remote(self.camera, self.faces_visible)
            jpeg = ray.get(call, timeout=CALL_TIMEOUT_S)
        except Exception as exc:  # died, restarting, moved, not answering: look again
            log.info("live view of %s: its worker did not answer (%s)", self.camera, exc)
            self.actor = None
            return None
        now = time.monotonic()
        self.found = now
        if jpeg is None:
            if now - self.framed > RELOOK_AFTER_S:
                self.actor = None
            return None
        self.framed = now
        return jpeg


class RemoteLive:
    """The live view of cameras on a Ray cluster this process has joined (``connect``)."""

    def __init__(self, store: Store, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.store = store
        self.fps = float(fps)

    def cameras(self) -> list[str]:  # blocking
        """The cameras some worker runs now, by name."""
        return sorted(_running(read_status(self.store)))

    def actor(self, camera: str) -> Any:  # blocking
        """The worker actor that runs ``camera``, or None."""
        import ray

        name = worker_actor(read_status(self.store), camera)
        if name is None:
            return None
        from safecity.runtime.cluster import NAMESPACE

        try:
            return ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:  # gone with its coordinator, or not started yet
            return None

    def latest_jpeg(self, camera: str, faces_visible: bool, wait_s: float = 2.0) -> bytes | None:
        """One frame (``frame.jpg``): the worker starts keeping frames at the first call, so
        wait up to ``wait_s`` for one. Blocking."""
        watch = _Watch(self, camera, faces_visible)
        deadline = time.monotonic() + wait_s
        while True:
            jpeg = watch.poll()
            if jpeg is not None or time.monotonic() >= deadline:
                return jpeg
            time.sleep(1.0 / self.fps)

    async def frames(
        self,
        camera: str,
        faces_visible: bool,
        is_disconnected: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[bytes]:
        """JPEGs of each new frame, the worker asked at most ``fps`` times a second.

        Ends when the client leaves or no worker has run the camera for
        :data:`GONE_AFTER_S`.
        """
        interval = 1.0 / self.fps
        watch = _Watch(self, camera, faces_visible)
        sent: bytes | None = None
        while True:
            began = time.monotonic()
            if is_disconnected is not None and await is_disconnected():
                return
            try:
                jpeg = await run_in_threadpool(watch.poll)
            except LookupError:
                return
            if jpeg is not None and jpeg != sent:
                sent = jpeg
                yield jpeg
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - began)))
