"""Cameras spread over a Ray cluster: ``safecity run --cluster local|auto|ADDRESS``.

The coordinator (the ``safecity run`` process) places cameras on the cluster's
nodes by capacity (:mod:`safecity.runtime.placement`) and keeps them there:
every ``cluster.check_interval_s`` it asks each worker for its state and tells
it the cameras it must run. A :class:`CameraWorker` is one Ray actor, one
process pinned to one node, hosting up to ``cluster.cameras_per_worker`` cameras
on one copy of the models.

What happens on a loss:

- A worker killed (``kill -9``, a crash): Ray restarts the actor on its node
  (about a second) and the next check hands it its cameras again; a worker that
  does not answer for ``LOST_AFTER_S`` is given up and its cameras move.
- A node lost: its workers are given up at once (Ray reports them
  unschedulable) or after ``LOST_AFTER_S``; their cameras go to the nodes with
  room, and a node that joins later takes its share back.
- Events: a finished event is fsync'd to the worker's outbox on its own disk
  before it counts as stored (:mod:`safecity.runtime.outbox`), and goes to the
  database from there, idempotently by its uuid. The uuid is derived from the
  run, camera, track and start time, so a file camera that restarts from its
  beginning on another worker stores nothing twice; one moved away from a
  live worker (a rebalance) drops its open tracks there rather than end them
  early, since the replay ends them whole. A worker that starts
  adopts the outbox of any dead worker on its machine (a lock file tells).
  Tracks open at the moment of a loss are lost with the process that held
  them: a live camera's events of those seconds are not stored.

Watchlists reach workers through the gallery's change notifications
(:mod:`safecity.identity.gallery`), and every identification use is audited by
the worker that searched, exactly as on one machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from safecity.config import CameraConfig, SafecityConfig
from safecity.errors import ConfigError, SafecityError
from safecity.events import Event, with_uuids
from safecity.runtime.placement import pack_workers, place_cameras

log = logging.getLogger(__name__)

#: A worker that has not answered for this long is given up and its cameras move.
LOST_AFTER_S = 4.0
#: How long one state request may take before it counts as unanswered.
ASK_TIMEOUT_S = 2.0
#: Namespace of safecity's actors in a shared Ray cluster.
NAMESPACE = "safecity"
#: A worker keeps live frames of a camera only this long after its last ``live_jpeg`` call.
LIVE_LEASE_S = 3.0


class ClusterError(SafecityError):
    """The cluster cannot be reached or used; one sentence for the operator."""


def connect(cluster: str) -> str:
    """Join (``auto``, an address) or start (``local``) a Ray cluster; returns its address."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # A cluster started with 'ray start' (2.60) wants its token (~/.ray/auth_token, or
    # RAY_AUTH_TOKEN); a driver sends it only in token mode.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "--cluster needs Ray: pip install 'safecity[cluster]' (ray 2.60.0)"
        ) from None
    if cluster == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address:
            raise ConfigError(
                "--cluster auto joins the cluster named by RAY_ADDRESS, which is not set "
                "(start one with 'ray start --head', or use --cluster local)"
            )
    elif cluster == "local":
        address = ""
    else:
        address = cluster
    kwargs: dict[str, Any] = {
        "namespace": NAMESPACE,
        "logging_level": logging.WARNING,
        "log_to_driver": False,
        "configure_logging": False,
    }
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "this machine"
        raise ClusterError(f"cannot join the Ray cluster at {where}: {exc}") from None
    return ray.get_runtime_context().gcs_address


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _camera_summary(stats: Any) -> dict:
    if hasattr(stats, "summary"):
        return stats.summary()
    return {
        "camera": stats.camera,
        "state": stats.state,
        "frames_in": stats.frames_in,
        "frames_analysed": stats.frames_analysed,
        "events": stats.events,
        "reconnects": stats.reconnects,
        "lag_s": round(stats.lag_s, 3),
        "last_error": stats.last_error,
    }


class CameraWorker:
    """One process on one node: several cameras on one copy of the models.

    Run as a Ray actor (``ray.remote(CameraWorker)``); also usable in-process.
    ``assign`` is idempotent: it is told the whole set each check, starts what
    is missing and stops what is no longer its own.
    """

    def __init__(self, worker_id: str, config: dict, run_id: str) -> None:
        from safecity.metrics import ProcessMetrics
        from safecity.pipeline import Stages
        from safecity.runtime.outbox import Outbox
        from safecity.runtime.service import audited_gallery
        from safecity.store.db import open_store
        from safecity.store.sink import StoreSink

        self.worker_id = worker_id
        self.run_id = run_id
        self.config = SafecityConfig.model_validate(config)
        self.started_at = time.time()
        self.store = open_store(self.config.store.url, self.config.store.media_dir, migrate=False)
        self._sink = StoreSink(self.store)
        # Prometheus figures of this worker's cameras and outbox; not the database's (the
        # API serves those once, not once per worker).
        self.metrics = ProcessMetrics()
        # The outbox's folder lock also says "this worker lives" to its neighbours.
        self.outbox = Outbox(
            Path(self.config.outbox.dir) / worker_id,
            self.metrics.counting(self.store, self._sink.write_many),
            max_events=self.config.outbox.max_events,
            max_bytes=int(self.config.outbox.max_mb * 1024 * 1024),
        )
        self.outbox.start()
        self.stages = Stages.load(self.config)
        # No camera yet: no template in memory until one is assigned that may match.
        self.gallery = audited_gallery(self.store, self.config, cameras=[])
        self._cameras: dict[str, tuple[Any, threading.Event, dict]] = {}
        self._gallery_cameras: set[str] = set()
        self._mutex = threading.Lock()
        self._cpu = (time.monotonic(), _cpu_seconds())
        self.last_error = ""
        self._adopted: set[str] = set()
        self._init_live()
        self.metrics.watch_outbox(worker_id, self.outbox)
        # list() copies the dict in one step (no GIL release): no lock a scrape waits on.
        self.metrics.watch_cameras(
            lambda: [s for f, _, _ in list(self._cameras.values()) for s in f.stats.values()]
        )
        # Several workers share a node: each takes a free port, reported in state().
        self.metrics.start(self.config.metrics, port=0)
        threading.Thread(target=self._adopt_orphans, name="outbox-adopt", daemon=True).start()

    # -- what the coordinator calls ------------------------------------------------
    def assign(self, cameras: list[dict]) -> list[str]:
        """Run exactly these cameras (CameraConfig dicts); returns the names now running."""
        from safecity.runtime.local import CameraFleet

        wanted = {c["name"]: c for c in cameras}
        with self._mutex:
            for name in [n for n in self._cameras if n not in wanted]:
                self._stop_camera(name, handed_over=True)
            for name, spec in wanted.items():
                running = self._cameras.get(name)
                if running is not None and running[2] == spec:
                    continue
                if running is not None:
                    self._stop_camera(name)
                camera = CameraConfig.model_validate(spec)
                stop = threading.Event()
                fleet = CameraFleet(
                    self.config.model_copy(update={"cameras": [camera]}),
                    self.stages,
                    write=self._put,
                    matcher_for=self.gallery.matcher_for,
                    plate_matcher_for=self.gallery.plate_matcher_for,
                    stop=stop,
                    on_frame=self._on_frame,
                    on_camera_end=self._unwatch,
                    metrics=self.metrics,
                )
                fleet.start()
                self._cameras[name] = (fleet, stop, spec)
            if set(self._cameras) != self._gallery_cameras:
                self._gallery_cameras = set(self._cameras)
                self.gallery.gallery.use_cameras(sorted(self._cameras))
            return sorted(self._cameras)

    def state(self) -> dict:
        """Figures for the coordinator: process, outbox, cameras."""
        import ray

        now, cpu = time.monotonic(), _cpu_seconds()
        then, cpu_then = self._cpu
        self._cpu = (now, cpu)
        events, size = self.outbox.backlog()
        oldest = self.outbox.oldest()
        self._expire_watches()  # a camera that sends no frame drops its last one here
        with self._mutex:
            cameras = [
                _camera_summary(s) for f, _, _ in self._cameras.values() for s in f.stats.values()
            ]
        return {
            "worker": self.worker_id,
            "node": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "rss_mb": round(_rss_mb(), 1),
            "cpu_percent": round(100 * (cpu - cpu_then) / max(now - then, 1e-6), 1),
            "outbox_events": events,
            "outbox_bytes": size,
            "outbox_oldest": oldest.isoformat() if oldest else None,
            "outbox_error": self.outbox.last_error,
            "last_error": self.last_error,
            # Watchlist id → templates this process holds in memory (none without a camera).
            "templates": {str(k): v for k, v in self.gallery.gallery.held().items()},
            "cameras": cameras,
            "metrics": self.metrics.address,  # "host:port" of its /metrics; None: not served
        }

    def pid(self) -> int:
        return os.getpid()

    # -- what a console (``safecity serve --cluster``) calls -------------------------
    def live_jpeg(self, camera: str, faces_visible: bool) -> bytes | None:
        """The newest frame of ``camera``, drawn and redacted as the console's own live view
        draws it; None: not running here, or no frame since the watch began.

        Each call renews the camera's watch for :data:`LIVE_LEASE_S`: frames are kept (one
        reference, drawn only here, on demand) only while someone polls.
        """
        if camera not in self._cameras:
            return None
        self._watched[camera] = time.monotonic() + LIVE_LEASE_S
        return self._live.latest_jpeg(camera, faces_visible=faces_visible)

    def live_watched(self) -> list[str]:
        """The cameras whose newest frame this worker keeps for a watcher (tests, status)."""
        return self._live.cameras()

    def measure_start(self, window_s: float) -> None:
        """Benchmarks: forget the figures so far; measure from now over ``window_s``."""
        from safecity.runtime.bench_pipeline import WorkerProbe

        with self._mutex:
            for fleet, _, _ in self._cameras.values():
                for stats in fleet.stats.values():
                    stats.window_s = window_s
                    stats.restart_window()
        self._probe = WorkerProbe()

    def measure(self) -> dict:
        """Benchmarks: per-camera summaries and this process's CPU and RSS since measure_start."""
        import ray

        with self._mutex:
            stats = [s for fleet, _, _ in self._cameras.values() for s in fleet.stats.values()]
        names = [s.camera for s in stats]
        figures = self._probe.figures(names)
        node = ray.get_runtime_context().get_node_id()
        return {
            "cameras": [s.summary() for s in stats],
            "worker": {**figures, "worker": self.worker_id, "node": node},
        }

    def shutdown(self, drain_s: float | None = None) -> int:
        """Stop every camera (open tracks end and are kept), then try to empty the outbox.

        Returns the events still waiting in the outbox.
        """
        with self._mutex:
            for name in list(self._cameras):
                self._stop_camera(name)
        wait = self.config.outbox.drain_on_stop_s if drain_s is None else drain_s
        self.outbox.flush(wait)
        left = self.outbox.backlog()[0]
        self.outbox.close()
        self.gallery.close()
        self.metrics.stop()
        return left

    # -- internals -----------------------------------------------------------------
    def _put(self, events: list[Event]) -> list[int]:
        self.outbox.put(with_uuids(events, self.run_id))
        return []

    def _stop_camera(self, name: str, handed_over: bool = False) -> None:
        """Stop a camera: at the end of the run, or ``handed_over`` to another worker."""
        fleet, stop, _ = self._cameras.pop(name)
        if handed_over:
            fleet.hand_over()
        else:
            stop.set()
        fleet.join(timeout=10.0)
        self._unwatch(name)

    def _init_live(self) -> None:
        from safecity.api.live import LiveHub

        # The same hub (and redaction) as a console's own cameras; its face redactor loads
        # on the first frame someone watches.
        self._live = LiveHub(self.config.api.live_fps)
        self._watched: dict[str, float] = {}  # camera -> monotonic end of its watch

    def _on_frame(self, camera: str, result: Any) -> None:
        """A camera thread's frame: kept for the live view only while someone watches."""
        until = self._watched.get(camera)
        if until is None:
            return
        if until > time.monotonic():
            self._live.publish(camera, result)
        else:
            self._unwatch(camera)

    def _expire_watches(self) -> None:
        now = time.monotonic()
        for camera, until in list(self._watched.items()):
            if until <= now:
                self._unwatch(camera)

    def _unwatch(self, camera: str) -> None:
        """Nobody watches ``camera`` (or it stopped): drop its frames and drawings now."""
        self._watched.pop(camera, None)
        self._live.forget(camera)

    def _adopt_orphans(self) -> None:
        """Store what dead workers on this machine left in their outboxes.

        An outbox folder is locked by its live process; one whose lock can be
        taken belongs to a dead worker.
        """
        from safecity.runtime.outbox import Outbox, OutboxError

        folder = Path(self.config.outbox.dir)
        while True:
            for box in sorted(p for p in folder.iterdir() if p.is_dir()):
                if box.name == self.worker_id:
                    continue
                try:
                    orphan = Outbox(box, self.metrics.counting(self.store, self._sink.write_many))
                except OutboxError:
                    continue  # its worker lives
                try:
                    if orphan.backlog()[0]:
                        log.warning("worker %s: storing what %s left", self.worker_id, box.name)
                        orphan.start()
                        orphan.flush(60.0)
                finally:
                    orphan.close()
            time.sleep(10.0)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class _WorkerHandle:
    """The coordinator's view of one worker actor."""

    def __init__(self, worker_id: str, node: str, actor: Any) -> None:
        self.id = worker_id
        self.node = node
        self.actor = actor
        self.cameras: list[dict] = []
        self.answered_at = time.monotonic()
        self.state: dict = {}
        self.error = ""
        self.pid: int | None = None


class Coordinator:
    """Places the config's cameras on the cluster's nodes and keeps them running.

    >>> coordinator = Coordinator(config, store, address)  # doctest: +SKIP
    >>> coordinator.start(); coordinator.run(stop_event); coordinator.stop()  # doctest: +SKIP
    """

    def __init__(self, config: SafecityConfig, store: Any, address: str = "") -> None:
        self.config = config
        self.store = store
        self.address = address
        self.run_id = uuid.uuid4().hex
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.cameras = {c.name: c for c in config.cameras if c.enabled}
        self.workers: dict[str, _WorkerHandle] = {}
        self.placement: dict[str, str] = {}  # camera -> worker id
        self.nodes: list[dict] = []
        self.moves: list[dict] = []  # recent camera moves, for status
        self.finished: dict[str, dict] = {}  # cameras that ended (a file's end, gave up)
        self._seq = 0
        self._config_doc = config.model_dump(mode="json")

    # -- the loop ------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Check and place every ``check_interval_s`` until ``stop`` is set or all ended."""
        while not stop.is_set() and not self.done:
            started = time.monotonic()
            try:
                self.check()
            except Exception:  # the loop must outlive any one bad check
                log.exception("cluster check failed")
            stop.wait(max(0.0, self.config.cluster.check_interval_s - (time.monotonic() - started)))

    def check(self) -> None:
        """Ask every worker, give up lost ones, place cameras, tell each worker its set."""
        import ray

        self.nodes = self.alive_nodes()
        alive = {n["id"] for n in self.nodes}
        self._ask_workers(alive)
        self._collect_finished()
        capacities = {n["id"]: n["capacity"] for n in self.nodes}
        node_of_camera = {
            c: self.workers[w].node for c, w in self.placement.items() if w in self.workers
        }
        by_node = place_cameras(sorted(self.cameras), capacities, node_of_camera)
        placement: dict[str, str] = {}
        for node in capacities:
            on_node = [c for c, n in by_node.items() if n == node]
            node_workers = sorted(w for w, h in self.workers.items() if h.node == node)
            placement.update(
                pack_workers(
                    on_node,
                    node_workers,
                    self.placement,
                    self.config.cluster.cameras_per_worker,
                    lambda node=node: self._new_worker(node),
                )
            )
        for camera, worker in placement.items():
            before = self.placement.get(camera)
            if before is not None and before != worker:
                self._moved(camera, before, worker)
        self.placement = placement
        futures = []
        for worker_id, handle in self.workers.items():
            handle.cameras = [
                self.cameras[c].model_dump(mode="json")
                for c, w in sorted(placement.items())
                if w == worker_id
            ]
            futures.append(handle.actor.assign.remote(handle.cameras))
        # Errors surface at the next state request; don't wait on model loading here.
        del futures, ray
        self._report()

    def call_workers(self, method: str, *args: Any, timeout: float = 60.0) -> list:
        """Call ``method`` on every worker and wait for all the answers."""
        import ray

        calls = [getattr(h.actor, method).remote(*args) for h in self.workers.values()]
        return ray.get(calls, timeout=timeout)

    @property
    def done(self) -> bool:
        """Every camera has ended (files without loop) and none is left to run."""
        return not self.cameras and bool(self.finished)

    def _collect_finished(self) -> None:
        """A camera that stopped or failed on its own is done: it is not placed again."""
        for worker_id, handle in self.workers.items():
            for figures in handle.state.get("cameras", []):
                name = figures.get("camera")
                if name in self.cameras and figures.get("state") in ("stopped", "failed"):
                    self.finished[name] = {**figures, "worker": worker_id, "node": handle.node}
                    del self.cameras[name]
                    self.placement.pop(name, None)

    def stop(self) -> int:
        """Every worker stops its cameras and drains its outbox; returns events left waiting."""
        import ray

        left = 0
        calls = {w: h.actor.shutdown.remote() for w, h in self.workers.items()}
        wait = self.config.outbox.drain_on_stop_s + 15.0
        for worker_id, call in calls.items():
            try:
                left += int(ray.get(call, timeout=wait))
            except Exception as exc:
                log.error("worker %s did not stop cleanly: %s", worker_id, _reason(exc))
        self._report(final=True)
        for handle in self.workers.values():
            with contextlib.suppress(Exception):
                ray.kill(handle.actor, no_restart=True)
        return left

    # -- internals -----------------------------------------------------------------
    def alive_nodes(self) -> list[dict]:
        import ray

        nodes = []
        per_camera = self.config.cluster.cpus_per_camera
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            cpus = float(node.get("Resources", {}).get("CPU", 0.0))
            nodes.append(
                {
                    "id": node["NodeID"],
                    "address": node.get("NodeManagerAddress", ""),
                    "cpus": cpus,
                    "capacity": max(1, int(cpus / per_camera)),
                }
            )
        return sorted(nodes, key=lambda n: n["id"])

    def _new_worker(self, node: str) -> str:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._seq += 1
        worker_id = f"w{self._seq}-{node[:8]}"
        actor = (
            ray.remote(CameraWorker)
            .options(
                name=f"{self.run_id[:8]}-{worker_id}",
                max_restarts=-1,
                max_task_retries=0,
                # state, assign and live_jpeg calls must not wait behind one another.
                max_concurrency=4,
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            )
            .remote(worker_id, self._config_doc, self.run_id)
        )
        self.workers[worker_id] = _WorkerHandle(worker_id, node, actor)
        log.info("worker %s started on node %s", worker_id, node[:8])
        return worker_id

    def _ask_workers(self, alive_nodes: set[str]) -> None:
        import ray
        from ray.exceptions import ActorUnschedulableError, GetTimeoutError

        asks = {w: h.actor.state.remote() for w, h in self.workers.items()}
        deadline = time.monotonic() + ASK_TIMEOUT_S
        for worker_id, ask in asks.items():
            handle = self.workers[worker_id]
            lost = handle.node not in alive_nodes
            try:
                state = ray.get(ask, timeout=max(0.05, deadline - time.monotonic()))
                if handle.pid is not None and state["pid"] != handle.pid:
                    log.warning(
                        "worker %s came back as process %d (was %d); its cameras restart",
                        worker_id,
                        state["pid"],
                        handle.pid,
                    )
                handle.pid = state["pid"]
                handle.state = state
                handle.answered_at = time.monotonic()
                handle.error = ""
            except ActorUnschedulableError:
                lost = True
            except GetTimeoutError:
                handle.error = "not answering"
            except Exception as exc:  # restarting, or an error in __init__
                handle.error = _reason(exc)
            silent = time.monotonic() - handle.answered_at
            if lost or silent > LOST_AFTER_S + self._grace(handle):
                why = "its node is gone" if lost else f"no answer for {silent:.0f} s"
                log.error("worker %s given up (%s); its cameras move", worker_id, why)
                with contextlib.suppress(Exception):
                    ray.kill(handle.actor, no_restart=True)
                del self.workers[worker_id]

    def _grace(self, handle: _WorkerHandle) -> float:
        """A worker still loading its models (never answered yet) gets longer."""
        return 0.0 if handle.state else 60.0

    def _moved(self, camera: str, before: str, after: str) -> None:
        self.moves.append({"camera": camera, "from": before, "to": after, "at": _now().isoformat()})
        del self.moves[:-50]
        log.warning("camera %s moved from worker %s to %s", camera, before, after)

    def status(self) -> dict:
        """The whole cluster as one JSON-ready document (``safecity cluster status``)."""
        workers = []
        cameras = []
        for worker_id, handle in sorted(self.workers.items()):
            state = handle.state
            workers.append(
                {
                    "worker": worker_id,
                    "node": handle.node,
                    "pid": state.get("pid"),
                    "host": state.get("host", ""),
                    "rss_mb": state.get("rss_mb"),
                    "cpu_percent": state.get("cpu_percent"),
                    "cameras": [c["name"] for c in handle.cameras],
                    "outbox_events": state.get("outbox_events", 0),
                    "outbox_bytes": state.get("outbox_bytes", 0),
                    "outbox_oldest": state.get("outbox_oldest"),
                    "outbox_error": state.get("outbox_error", ""),
                    "templates": state.get("templates", {}),
                    "state": "running" if not handle.error else handle.error,
                    "last_error": state.get("last_error", ""),
                    "metrics": state.get("metrics"),  # its Prometheus port, "host:port"
                }
            )
            reported = {c["camera"]: c for c in state.get("cameras", [])}
            for spec in handle.cameras:
                figures = reported.get(spec["name"], {"camera": spec["name"], "state": "starting"})
                cameras.append({**figures, "worker": worker_id, "node": handle.node})
        cameras += [c for c in self.finished.values() if c["camera"] not in self.cameras]
        nodes = [
            {
                **n,
                "workers": sum(1 for h in self.workers.values() if h.node == n["id"]),
                "cameras": sum(1 for c in cameras if c["node"] == n["id"]),
            }
            for n in self.nodes
        ]
        return {
            "coordinator": self.name,
            "run_id": self.run_id,
            "address": self.address,
            "at": _now().isoformat(),
            "nodes": nodes,
            "workers": workers,
            "cameras": sorted(cameras, key=lambda c: c["camera"]),
            "moves": self.moves,
        }

    def _report(self, final: bool = False) -> None:
        """Write the status document and every camera's health row; a down database waits."""
        from safecity.store.cluster import write_status
        from safecity.store.health import report_health

        document = self.status()
        document["ended"] = final
        if final:
            for camera in document["cameras"]:
                camera["state"] = "stopped" if camera.get("state") == "running" else camera["state"]
        try:
            write_status(self.store, document)
            rows = [SimpleNamespace(**_health_row(c)) for c in document["cameras"]]
            report_health(self.store, rows, self.name, _now())
        except SafecityError as exc:
            log.debug("cluster status not written: %s", exc)


def _health_row(camera: dict) -> dict:
    return {
        "camera": camera["camera"],
        "state": camera.get("state", "starting"),
        "frames_in": camera.get("frames_in", 0),
        "frames_analysed": camera.get("frames_analysed", 0),
        "events": camera.get("events", 0),
        "reconnects": camera.get("reconnects", 0),
        "detector_ms": camera.get("detector_ms", 0.0),
        "lag_s": camera.get("lag_p95_s", camera.get("lag_s", 0.0)),
        "last_error": camera.get("last_error", ""),
    }


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _now() -> datetime:
    return datetime.now(UTC)


def dumps(document: dict) -> str:
    return json.dumps(document, sort_keys=True, default=str)
