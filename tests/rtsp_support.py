"""A real RTSP server (tests/rtsp_server.py, GStreamer) as a process the tests start,
kill and restart on the same port, to see cameras ride out a server outage.

>>> # with RtspServer(clip) as server: server.url; server.kill(); server.start()

Run as a script it measures how soon a camera is back after restarts of the server::

    .venv/bin/python tests/rtsp_support.py [--outage 3] [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import av.error

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"  # GStreamer's bindings (python3-gi) are Debian's, not PyPI's
SERVER_SCRIPT = HERE / "rtsp_server.py"
_GST_CHECK = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    "from gi.repository import Gst; Gst.init(None);"
    "missing = [e for e in ('x264enc', 'rtph264pay', 'decodebin', 'avdec_msmpeg4')"
    " if Gst.ElementFactory.find(e) is None];"
    "print(' '.join(missing))"
)


@functools.cache
def gstreamer_missing() -> str | None:
    """Why the RTSP server cannot run here (None when it can): for a test's skip reason."""
    hint = "install the Debian packages of scripts/system-deps.sh --tests"
    if not Path(SYSTEM_PYTHON).exists():
        return f"no {SYSTEM_PYTHON}: {hint}"
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", _GST_CHECK], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        return f"GStreamer's RTSP server is not importable from {SYSTEM_PYTHON}: {hint}"
    if done.stdout.strip():
        return f"GStreamer elements missing ({done.stdout.strip()}): {hint}"
    return None


def free_port() -> int:
    """A local TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serves(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``url`` answers RTSP and a frame decodes from it.

    Reads as little as FFmpeg allows (a small probe size), so the answer comes within
    a frame or two of the server being ready rather than after FFmpeg's usual stream
    analysis (seconds): readiness times measured with it are not flattered.
    """
    try:
        container = av.open(
            url,
            options={"rtsp_transport": "tcp", "probesize": "32768"},
            timeout=(timeout_s, timeout_s),
        )
    except (av.error.FFmpegError, OSError):
        return False
    try:
        next(container.decode(video=0))
        return True
    except (av.error.FFmpegError, OSError, StopIteration):
        return False
    finally:
        container.close()


class RtspServer:
    """tests/rtsp_server.py serving ``clip`` looped at ``rtsp://127.0.0.1:PORT/cam``.

    ``start`` spawns it (on the same port each time) and returns once it serves;
    ``kill`` ends it with SIGKILL (a crash or power loss: no goodbye to clients);
    ``stop`` asks with SIGTERM first. ``started_at`` and ``ready_at`` are the
    ``time.monotonic()`` of the latest spawn and of its first successful probe.
    """

    def __init__(self, clip: Path, port: int | None = None, fps: int = 10) -> None:
        self.clip = clip
        self.port = port or free_port()
        self.fps = fps
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self._process: subprocess.Popen[str] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 30.0) -> float:
        """Spawn the server and wait until it serves; returns the ``ready_at`` time."""
        assert not self.running, "the RTSP server is already running"
        command = [SYSTEM_PYTHON, str(SERVER_SCRIPT), str(self.clip), str(self.port)]
        command += ["--fps", str(self.fps)]
        # The system Python must not pick up the virtualenv's packages.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        self.started_at = time.monotonic()
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        deadline = self.started_at + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                _out, err = self._process.communicate()
                raise RuntimeError(f"the RTSP server exited at start: {err.strip()}")
            if serves(self.url):
                self.ready_at = time.monotonic()
                return self.ready_at
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the RTSP server did not serve {self.url} within {timeout_s:g} s")

    def kill(self) -> None:
        """End the server at once (SIGKILL): clients see the connection drop."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """End the server with SIGTERM, then SIGKILL if it lingers."""
        self._end(signal.SIGTERM)

    def _end(self, signum: int) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        process.communicate()

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def measure_recovery(clip: Path, outage_s: float, rounds: int) -> list[float]:
    """Seconds from the restarted server answering a probe to the camera's next frame,
    for ``rounds`` kills (SIGKILL) and restarts ``outage_s`` later, with the default
    reconnect settings. Prints one line a round."""
    from safecity.config import CameraConfig, ReconnectConfig
    from safecity.video.source import ReconnectingSource

    server = RtspServer(clip)
    server.start()
    stop = threading.Event()
    source = ReconnectingSource(CameraConfig(name="cam", url=server.url), ReconnectConfig(), stop)
    arrivals: list[float] = []
    reader = threading.Thread(
        target=lambda: arrivals.extend(time.monotonic() for _ in source), daemon=True
    )
    reader.start()
    recoveries = []
    try:
        for number in range(1, rounds + 1):
            time.sleep(2)  # streaming
            server.kill()
            killed = time.monotonic()
            time.sleep(outage_s)
            ready = server.start()
            while not arrivals or arrivals[-1] <= ready:
                if time.monotonic() > ready + 60:
                    raise RuntimeError("the camera was not back within 60 s")
                time.sleep(0.01)
            back = next(t for t in arrivals if t > ready)
            recoveries.append(back - ready)
            assert server.started_at is not None
            print(
                f"round {number}: down {server.started_at - killed:.1f} s, server ready "
                f"{ready - server.started_at:.2f} s after its start, camera back "
                f"{back - ready:.2f} s after that, reconnect attempts so far {source.reconnects}",
                flush=True,
            )
    finally:
        stop.set()
        server.stop()
        reader.join(15)
    return recoveries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="camera recovery after RTSP server restarts")
    parser.add_argument("--outage", type=float, default=3.0, help="seconds the server is down")
    parser.add_argument("--rounds", type=int, default=5, help="restarts to measure")
    data = Path(os.environ.get("SAFECITY_TEST_DATA", HERE.parent.parent / "shared/data"))
    default_clip = data / "video/pedestrians-768x576.avi"
    parser.add_argument("--clip", type=Path, default=default_clip)
    args = parser.parse_args(argv)
    missing = gstreamer_missing()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    recoveries = measure_recovery(args.clip, args.outage, args.rounds)
    print(
        f"camera back after the server: median {statistics.median(recoveries):.2f} s, "
        f"max {max(recoveries):.2f} s over {len(recoveries)} restarts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
