"""``safecity bench pipeline``: how many live cameras one worker keeps up with.

N cameras play one file at its own rate (:class:`~safecity.video.pacing.LivePacer`,
looped, sampled at F frames a second), as live cameras would: a frame the
analyser cannot take in time is dropped, never queued. One
:class:`~safecity.runtime.local.CameraFleet` analyses them on one set of loaded
models and stores events in a scratch SQLite store, for a warm-up and then S
measured seconds. Per camera come the figures of
:meth:`~safecity.runtime.local.CameraStats.summary` over the measured seconds;
per worker (here: this process) CPU and memory.

A worker *holds* N cameras at F when every camera's p95 analysis lag stays
under :data:`MAX_LAG_S` and every camera takes at least :data:`MIN_FPS_SHARE` of
F. :func:`find_max` grows N (1, 2, 4, …) until it does not hold, then bisects.
:func:`judge` works from the per-camera summaries alone, so a cluster run, whose
cameras are spread over processes, judges the same way.

Figures, not assertions: a shared machine's other load shows in them; the
result carries the load average before and after.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from safecity.config import CameraConfig, SafecityConfig
from safecity.errors import SafecityError, SourceError
from safecity.pipeline import Stages

log = logging.getLogger(__name__)

#: The p95 analysis lag (seconds) every camera must stay under for N to hold.
MAX_LAG_S = 1.0
#: The share of the target rate every camera must sustain for N to hold.
MIN_FPS_SHARE = 0.9
#: Seconds the cameras run before measuring starts (decoders and models warm up).
WARMUP_S = 3.0
#: find_max never tries more cameras than this unless told.
MAX_CAMERAS = 64
#: The clip used when no source is given.
DEFAULT_SOURCE = "pedestrians-768x576.avi"


def default_source() -> Path:
    """The pedestrians clip: the shared test data if present, else the demo sample."""
    from safecity.bench import _media

    return _media(DEFAULT_SOURCE)


def check_source(source: Path, fps: float) -> float:
    """Decode ``source`` once, sampled at ``fps``; return the rate cameras will run at.

    A missing, unreadable, truncated or corrupt file raises :class:`SourceError`
    here, before any camera starts, rather than failing N cameras part-way. The
    rate is ``fps``, or the clip's own rate when that is lower.
    """
    from safecity.video.source import open_source

    try:
        with open_source(CameraConfig(name="bench", url=str(source), fps=fps)) as frames:
            rate = frames.fps or fps
            if sum(1 for _ in frames) == 0:
                raise SourceError("it holds no frame to analyse")
    except SourceError as exc:
        raise SourceError(f"cannot use {source} as a bench source: {exc}") from None
    return min(rate, fps)


def bench_config(base: SafecityConfig, source: Path, cameras: int, fps: float) -> SafecityConfig:
    """``base`` with its cameras replaced by ``cameras`` live-paced loops of ``source``."""
    width = len(str(cameras))
    return base.model_copy(
        update={
            "cameras": [
                CameraConfig(
                    name=f"cam-{i:0{width}d}",
                    url=str(source),
                    fps=fps,
                    loop=True,
                    live_pace=True,
                )
                for i in range(1, cameras + 1)
            ]
        }
    )


class WorkerProbe:
    """CPU and memory of this process from its creation to :meth:`figures`.

    A cluster worker makes its own and sends back the same dict, one per process.
    """

    def __init__(self) -> None:
        self._cpu0 = _cpu_seconds()
        self._wall0 = time.monotonic()

    def figures(self, cameras: list[str]) -> dict:
        """CPU in cores (1.0: one core busy all the time) and RSS, now and at its peak."""
        cpu = _cpu_seconds() - self._cpu0
        wall = time.monotonic() - self._wall0
        memory = _memory_mb()
        return {
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "pid": os.getpid(),
            "cameras": cameras,
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "cpu_cores": round(cpu / wall, 3) if wall > 0 else 0.0,
            "rss_mb": memory.get("VmRSS"),
            "peak_rss_mb": memory.get("VmHWM"),
        }


def judge(cameras: list[dict], fps: float) -> dict:
    """Whether per-camera summaries hold ``fps``: lag, rate and state of the worst camera."""
    lags = [c["lag_p95_s"] for c in cameras]
    rates = [c["analysed_fps"] for c in cameras]
    failed = [c["camera"] for c in cameras if c["state"] == "failed"]
    worst_lag = None if None in lags or not lags else max(lags)
    slowest = min(rates) if rates else 0.0
    held = (
        not failed
        and worst_lag is not None
        and worst_lag < MAX_LAG_S
        and slowest >= MIN_FPS_SHARE * fps
    )
    return {"held": held, "worst_lag_p95_s": worst_lag, "min_analysed_fps": slowest}


def bench_pipeline(
    config: SafecityConfig,
    source: Path | None,
    cameras: int,
    fps: float,
    seconds: float,
    *,
    warmup_s: float = WARMUP_S,
    stages: Stages | None = None,
    checked_fps: float | None = None,
    cluster: bool = False,
    watched: bool = False,
) -> dict:
    """Run ``cameras`` live-paced cameras for ``warmup_s`` + ``seconds``; return the figures.

    ``stages`` are loaded from ``config`` unless given (find_max loads them once);
    ``checked_fps`` skips :func:`check_source` when the caller did it already.
    ``cluster``: the cameras run on the Ray cluster this process has joined
    (:func:`safecity.runtime.cluster.connect`), spread over its workers, and each
    worker process reports its own CPU and RSS. ``watched``: a watchlist applies to every
    camera (:func:`watching_nobody`), so faces are searched and embedded as on a watched
    camera; without, as on a camera no authorisation covers.
    Raises :class:`SourceError` when the source is unusable or a camera failed.
    """
    if cameras < 1 or fps <= 0 or seconds <= 0 or warmup_s < 0:
        raise SafecityError("cameras, fps and seconds must be positive, warm-up not negative")
    if cluster and watched:
        raise SafecityError("--watched measures one worker: not with --cluster")
    source = source or default_source()
    rate = checked_fps if checked_fps is not None else check_source(source, fps)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="safecity-bench-") as folder:
        plan = bench_config(config, source, cameras, fps)
        if cluster:
            summaries, workers = _run_cluster(plan, Path(folder), seconds, warmup_s)
        else:
            stages = stages or Stages.load(config)
            summaries, workers = _run_fleet(plan, stages, Path(folder), seconds, warmup_s, watched)
    failed = [c for c in summaries if c["state"] == "failed"]
    if failed:
        raise SourceError(f"camera {failed[0]['camera']} failed: {failed[0]['last_error']}")
    return {
        "source": str(source),
        "cameras": cameras,
        "fps": fps,
        "fps_target": rate,  # the clip's own rate when lower than fps
        "seconds": seconds,
        "warmup_s": warmup_s,
        "watched": watched,
        **judge(summaries, rate),
        "camera_stats": summaries,
        "workers": workers,
        "machine": machine(load_before),
    }


def find_max(
    config: SafecityConfig,
    source: Path | None,
    fps: float,
    seconds: float,
    *,
    warmup_s: float = WARMUP_S,
    max_cameras: int = MAX_CAMERAS,
    on_step: Callable[[dict], None] | None = None,
    cluster: bool = False,
    watched: bool = False,
) -> dict:
    """The largest N that holds ``fps`` (0 if not even one camera does), with every N tried.

    N doubles from 1 until it fails to hold (or reaches ``max_cameras``), then the
    gap between the last N that held and the first that did not is bisected.
    ``on_step`` sees each run's figures as it ends (progress for a long search).
    """
    if max_cameras < 1:
        raise SafecityError("max cameras must be at least 1")
    source = source or default_source()
    rate = check_source(source, fps)
    stages = None if cluster else Stages.load(config)
    steps: list[dict] = []

    def holds(n: int) -> bool:
        step = bench_pipeline(
            config,
            source,
            n,
            fps,
            seconds,
            warmup_s=warmup_s,
            stages=stages,
            checked_fps=rate,
            cluster=cluster,
            watched=watched,
        )
        steps.append(step)
        if on_step is not None:
            on_step(step)
        return step["held"]

    good, bad, n = 0, None, 1
    while bad is None:
        if not holds(n):
            bad = n
        else:
            good = n
            if n >= max_cameras:
                break
            n = min(2 * n, max_cameras)
    while bad is not None and bad - good > 1:
        mid = (good + bad) // 2
        if holds(mid):
            good = mid
        else:
            bad = mid
    return {
        "source": str(source),
        "fps": fps,
        "fps_target": rate,
        "seconds": seconds,
        "warmup_s": warmup_s,
        "watched": watched,
        "max_lag_s": MAX_LAG_S,
        "min_fps_share": MIN_FPS_SHARE,
        "largest": good,
        "ceiling_reached": bad is None,  # every N up to max_cameras held
        "steps": steps,
        "machine": steps[-1]["machine"],
    }


def machine(load_before: float | None = None) -> str:
    """This machine in one line, with its load average: other work shows in the figures."""
    load = os.getloadavg()[0]
    loads = f"{load:.2f}" if load_before is None else f"{load_before:.2f} -> {load:.2f}"
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {loads}"
    )


class _ListsNobody:
    def match(self, vector: object, embedder: str | None = None) -> None:
        return None


def watching_nobody(camera: str, when: object) -> _ListsNobody:
    """A ``matcher_for`` under which every camera is watched by a list of nobody: faces
    are searched and embedded as on a watched camera, and nothing matches.

    >>> watching_nobody("gate-1", None).match([0.0] * 128) is None
    True
    """
    return _ListsNobody()


# -- internals ----------------------------------------------------------------------
def _run_fleet(
    config: SafecityConfig,
    stages: Stages,
    folder: Path,
    seconds: float,
    warmup_s: float,
    watched: bool = False,
) -> tuple[list[dict], list[dict]]:
    from safecity.runtime.local import CameraFleet
    from safecity.store import open_store
    from safecity.store.sink import StoreSink

    store = open_store(f"sqlite:///{folder / 'bench.db'}", folder / "media")
    fleet = CameraFleet(
        config,
        stages,
        write=StoreSink(store).write_many,
        matcher_for=watching_nobody if watched else None,
    )
    try:
        fleet.start()
        _wait(fleet, warmup_s)
        for stats in fleet.stats.values():
            stats.window_s = seconds + 1.0  # the whole measured period, nothing before
            stats.restart_window()
        probe = WorkerProbe()
        _wait(fleet, seconds)
        summaries = [stats.summary() for stats in fleet.stats.values()]
        workers = [probe.figures(list(fleet.stats))]
    finally:
        fleet.stop.set()
        fleet.join(timeout=30.0)
        if fleet.running:
            log.warning("bench cameras still running 30 s after the stop")
        store.close()
    return summaries, workers


def _run_cluster(
    config: SafecityConfig, folder: Path, seconds: float, warmup_s: float
) -> tuple[list[dict], list[dict]]:
    """The cameras on the joined Ray cluster, placed by a coordinator as ``run --cluster`` does.

    Workers load their models first; the warm-up starts once every camera analyses.
    Events go to a scratch SQLite store in ``folder`` (workers on other machines
    would need a database they can reach: use ``run --cluster`` for that).
    """
    import threading

    from safecity.runtime.cluster import Coordinator
    from safecity.store import open_store

    config = config.model_copy(deep=True)
    config.store.url = f"sqlite:///{folder / 'bench.db'}"
    config.store.media_dir = folder / "media"
    config.outbox.dir = folder / "outbox"
    config.outbox.drain_on_stop_s = 5.0
    store = open_store(config.store.url, config.store.media_dir)
    coordinator = Coordinator(config, store)
    stop = threading.Event()
    loop = threading.Thread(target=coordinator.run, args=(stop,), name="bench-cluster")
    loop.start()
    try:
        deadline = time.monotonic() + 180.0
        while not _all_analysing(coordinator.status()["cameras"], len(config.cameras)):
            if time.monotonic() > deadline:
                raise SafecityError("the cluster's workers did not start their cameras in 180 s")
            time.sleep(0.5)
        time.sleep(warmup_s)
        coordinator.call_workers("measure_start", seconds + 1.0)
        time.sleep(seconds)
        answers = coordinator.call_workers("measure")
    finally:
        stop.set()
        loop.join(timeout=30.0)
        coordinator.stop()
        store.close()
    summaries = [c for answer in answers for c in answer["cameras"]]
    workers = [answer["worker"] for answer in answers if answer["cameras"]]
    return sorted(summaries, key=lambda c: c["camera"]), workers


def _all_analysing(cameras: list[dict], wanted: int) -> bool:
    running = [c for c in cameras if c.get("state") == "running" and c.get("frames_in", 0) > 0]
    return len(running) == wanted


def _wait(fleet, seconds: float) -> None:
    """Sleep ``seconds``, or less once every camera has failed (nothing left to measure)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if all(s.state == "failed" for s in fleet.stats.values()):
            return
        time.sleep(min(left, 0.25))


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _memory_mb() -> dict[str, float]:
    """VmRSS and VmHWM of this process in MB (empty where /proc is not there)."""
    figures: dict[str, float] = {}
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return figures
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = round(int(value.split()[0]) / 1024, 1)  # kB
    return figures


__all__ = [
    "MAX_LAG_S",
    "MIN_FPS_SHARE",
    "WorkerProbe",
    "bench_config",
    "bench_pipeline",
    "check_source",
    "default_source",
    "find_max",
    "judge",
    "machine",
]
