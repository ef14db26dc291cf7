"""What a long-running safecity process runs besides its front end.

``safecity run`` (headless) and ``safecity serve`` (console and API) share it:
the cameras of the config (each in its thread, matching only against authorised
watchlists, every use audited), health reports to the database for the
console, retention and the signing of the audit chain head. A console that runs
no cameras (``serve --no-cameras``, analysis on other machines) still signs the
head of what its users did, and leaves retention to ``safecity run``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from safecity.config import SafecityConfig
from safecity.governance.audit import HeadSigner
from safecity.governance.scheduler import RetentionScheduler
from safecity.pipeline import FrameResult
from safecity.runtime.local import CameraFleet, CameraStats, HealthReporter
from safecity.store.db import Store


def audited_gallery(store: Store, config: SafecityConfig):
    """The matcher provider: authorised watchlists only, each use audited."""
    from safecity.governance.uses import AuditedGallery
    from safecity.identity.gallery import GalleryCache

    return AuditedGallery(GalleryCache(store, config), store)


class CameraService:
    """Cameras (optional), health reports, retention and head signing, as one."""

    def __init__(
        self,
        store: Store,
        config: SafecityConfig,
        signer: HeadSigner,
        *,
        run_cameras: bool = True,
        on_frame: Callable[[str, FrameResult], None] | None = None,
        on_camera_end: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.stop_event = stop or threading.Event()
        self.scheduler = RetentionScheduler(
            store, config, signer, stop_event=self.stop_event, retention=run_cameras
        )
        self.fleet: CameraFleet | None = None
        self.health: HealthReporter | None = None
        self._gallery = None
        if run_cameras:
            from safecity.pipeline import Stages
            from safecity.store.sink import StoreSink

            self._gallery = audited_gallery(store, config)
            self.fleet = CameraFleet(
                config,
                Stages.load(config),
                write=StoreSink(store).write_many,
                matcher_for=self._gallery.matcher_for,
                stop=self.stop_event,
                on_frame=on_frame,
                on_camera_end=on_camera_end,
            )
            self.health = HealthReporter(store, self.fleet.stats.values())

    @property
    def cameras(self) -> list[str]:
        return list(self.fleet.stats) if self.fleet else []

    @property
    def stats(self) -> list[CameraStats]:
        return list(self.fleet.stats.values()) if self.fleet else []

    def start(self) -> None:
        if self.fleet is not None and self.health is not None:
            self.fleet.start()
            self.health.start()
        self.scheduler.start()

    def wait(self) -> None:
        """Until every camera has ended (files without loop) or a stop was asked for."""
        while self.fleet is not None and self.fleet.running and not self.stop_event.is_set():
            self.fleet.join(timeout=1.0)

    def stop(self) -> None:
        """Open tracks end and are stored, health is reported once more, the head signed."""
        self.stop_event.set()
        if self.fleet is not None:
            self.fleet.join(timeout=10.0)
        if self.health is not None:
            self.health.stop()
        if self._gallery is not None:
            self._gallery.close()
        self.scheduler.stop()
        self.scheduler.join(timeout=30)

    def failed_cameras(self) -> list[str]:
        return [s.camera for s in self.stats if s.state == "failed"]
