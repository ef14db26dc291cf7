"""What a long-running safecity process runs besides its front end.

``safecity run`` (headless) and ``safecity serve`` (console and API) share it:
the cameras of the config (each in its thread, matching only against authorised
watchlists, every use audited), health reports to the database for the
console, retention, the signing of the audit chain head and (with sinks configured) the
alert dispatcher (:mod:`safecity.alerts`). A console that runs
no cameras (``serve --no-cameras``, analysis on other machines) still signs the
head of what its users did, and leaves retention to ``safecity run``.

Cameras hand their finished events to a durable outbox
(:mod:`safecity.runtime.outbox`, folder ``config.outbox.dir / <outbox name>``),
which stores them in the database as it can: a database outage delays events,
it does not lose them. Each event gets its uuid from the service's run id (by
default the outbox name), so a service restarted on the same files reproduces
the same uuids and the store keeps one copy. ``safecity analyze`` (one file, all
or nothing) writes directly instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from safecity.alerts.dispatcher import AlertDispatcher, start_dispatcher
from safecity.config import SafecityConfig
from safecity.events import Event, with_uuids
from safecity.governance.audit import HeadSigner
from safecity.governance.scheduler import RetentionScheduler
from safecity.metrics import ProcessMetrics
from safecity.pipeline import FrameResult
from safecity.runtime.local import CameraFleet, CameraStats, HealthReporter
from safecity.runtime.outbox import Outbox
from safecity.store.db import Store
from safecity.store.media import safe_name

log = logging.getLogger(__name__)

#: The outbox (and run id) of a service that is not told its own: one per machine.
DEFAULT_OUTBOX = "local"
#: Seconds ``stop`` gives the alert sinks to take what the last events gave them.
ALERTS_DRAIN_S = 10.0


def audited_gallery(store: Store, config: SafecityConfig, cameras: list[str] | None = None):
    """The matcher provider: authorised watchlists only, each use audited.

    Templates are held only for watchlists that may match on ``cameras`` (this
    process's; None: any).
    """
    from safecity.governance.uses import AuditedGallery
    from safecity.identity.gallery import GalleryCache

    return AuditedGallery(GalleryCache(store, config, cameras=cameras), store)


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
        outbox_name: str = DEFAULT_OUTBOX,
        run_id: str | None = None,
    ) -> None:
        """``outbox_name``: this process's outbox folder under ``config.outbox.dir`` (a
        cluster worker passes its own); ``run_id``: what event uuids are made from
        (default: the outbox name), the same for a worker restarted on the same cameras."""
        self.stop_event = stop or threading.Event()
        self.config = config
        self.run_id = run_id or outbox_name
        self.scheduler = RetentionScheduler(
            store, config, signer, stop_event=self.stop_event, retention=run_cameras
        )
        self.fleet: CameraFleet | None = None
        self.health: HealthReporter | None = None
        self.outbox: Outbox | None = None
        self._gallery = None
        self._store = store
        self.alerts: AlertDispatcher | None = None  # started by start() when there are sinks
        # Prometheus figures of the cameras, served while they run (config.metrics).
        self.metrics = ProcessMetrics()
        if run_cameras:
            from safecity.pipeline import Stages
            from safecity.store.sink import StoreSink

            enabled = [c.name for c in config.cameras if c.enabled]
            self._gallery = audited_gallery(store, config, enabled)
            self.fleet = CameraFleet(
                config,
                Stages.load(config),
                write=self._put,
                matcher_for=self._gallery.matcher_for,
                plate_matcher_for=self._gallery.plate_matcher_for,
                stop=self.stop_event,
                on_frame=on_frame,
                on_camera_end=on_camera_end,
                metrics=self.metrics,
            )
            self.health = HealthReporter(store, self.fleet.stats.values())
            try:
                self.outbox = Outbox(
                    config.outbox.dir / safe_name(outbox_name),
                    self.metrics.counting(store, StoreSink(store).write_many),
                    max_events=config.outbox.max_events,
                    max_bytes=int(config.outbox.max_mb * 1024 * 1024),
                )
            except BaseException:
                self._gallery.close()
                raise
            self.metrics.watch_cameras(lambda: self.stats)
            self.metrics.watch_outbox(outbox_name, self.outbox)
            self.metrics.watch_database(store, config)

    @property
    def cameras(self) -> list[str]:
        return list(self.fleet.stats) if self.fleet else []

    @property
    def stats(self) -> list[CameraStats]:
        return list(self.fleet.stats.values()) if self.fleet else []

    def _put(self, events: list[Event]) -> list[int]:
        """The fleet's writer: events into the outbox (their ids come when they are stored)."""
        assert self.outbox is not None
        self.outbox.put(with_uuids(events, self.run_id))
        return []

    def start(self) -> None:
        if self.outbox is not None:
            self.outbox.start()
        if self.fleet is not None and self.health is not None:
            self.fleet.start()
            self.health.start()
            self.metrics.start(self.config.metrics)
        self.scheduler.start()
        self.alerts = start_dispatcher(self._store, self.config.alerts)

    def wait(self) -> None:
        """Until every camera has ended (files without loop) or a stop was asked for."""
        while self.fleet is not None and self.fleet.running and not self.stop_event.is_set():
            self.fleet.join(timeout=1.0)

    def stop(self) -> None:
        """Open tracks end and are stored, health is reported once more, the head signed.

        The outbox gets ``config.outbox.drain_on_stop_s`` to store what waits; what is
        left stays in its folder and is stored at the next start.
        """
        self.stop_event.set()
        if self.fleet is not None:
            self.fleet.join(timeout=10.0)
        if self.outbox is not None:
            self._drain_outbox()
        if self.alerts is not None:
            self.alerts.stop(drain_s=ALERTS_DRAIN_S)
        if self.health is not None:
            self.health.stop()
        if self._gallery is not None:
            self._gallery.close()
        self.scheduler.stop()
        self.scheduler.join(timeout=30)
        self.metrics.stop()

    def _drain_outbox(self) -> None:
        assert self.outbox is not None
        if not self.outbox.flush(self.config.outbox.drain_on_stop_s):
            events, _ = self.outbox.backlog()
            log.warning(
                "outbox: %d event(s) not stored yet (%s) stay in %s; "
                "they will be stored at the next start",
                events,
                self.outbox.last_error or "the database did not take them in time",
                self.outbox.folder,
            )
        self.outbox.close()

    def failed_cameras(self) -> list[str]:
        return [s.camera for s in self.stats if s.state == "failed"]
