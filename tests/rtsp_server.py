"""A real RTSP camera for tests: Debian's GStreamer RTSP server serving a clip, looped.

Run it with the system Python (``/usr/bin/python3``), not the project's virtualenv:
GStreamer's Python bindings (python3-gi) come from Debian, not PyPI::

    /usr/bin/python3 tests/rtsp_server.py CLIP PORT [--mount /cam] [--fps 10]

It serves ``rtsp://127.0.0.1:PORT/cam`` as H.264 (re-encoded with x264enc, so the
clip may be in any format GStreamer decodes) until SIGTERM, SIGINT or SIGKILL.

Why two pipelines: a *player* decodes the clip at its own pace and seeks back to the
start at its end, and hands each frame to the *served* pipeline's appsrc, which
stamps it with the live clock. The served stream thus runs on without a timestamp
jump at the loop, as a camera's would, and the player keeps playing while no client
watches (frames are dropped then), so a client that joins late sees live footage.
A keyframe every second (and the parameter sets with each) lets a client that
(re)joins decode within about a second.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # noqa: E402


class LoopedClip:
    """Decodes ``clip`` in real time, forever, handing I420 frames to ``deliver``."""

    def __init__(self, clip: Path, fps: int, deliver) -> None:
        self.deliver = deliver
        self.pipeline = Gst.parse_launch(
            "filesrc name=file ! decodebin ! videoconvert "
            f"! videorate ! video/x-raw,format=I420,framerate={fps}/1 "
            "! appsink name=sink sync=true max-buffers=2 drop=true emit-signals=true"
        )
        self.pipeline.get_by_name("file").set_property("location", str(clip))
        sink = self.pipeline.get_by_name("sink")
        sink.connect("new-sample", self._on_sample)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_message)
        self.caps: Gst.Caps | None = None
        self.prerolled = threading.Event()

    def start(self) -> None:
        self.pipeline.set_state(Gst.State.PLAYING)

    def stop(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)

    def _on_sample(self, sink: GstApp.AppSink) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        if sample is not None:
            self.caps = sample.get_caps()
            self.prerolled.set()
            self.deliver(sample)
        return Gst.FlowReturn.OK

    def _on_message(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.EOS:
            # Back to the start; the served stream's timestamps come from its own clock.
            self.pipeline.seek_simple(
                Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0
            )
        elif message.type == Gst.MessageType.ERROR:
            error, _debug = message.parse_error()
            print(f"rtsp_server: cannot play the clip: {error.message}", file=sys.stderr)
            sys.exit(1)


class Factory(GstRtspServer.RTSPMediaFactory):
    """One shared media for every client: appsrc -> x264enc -> rtph264pay."""

    def __init__(self, fps: int) -> None:
        super().__init__()
        self.fps = fps
        self.set_shared(True)
        self.caps: Gst.Caps | None = None
        self._appsrcs: list[GstApp.AppSrc] = []
        self._lock = threading.Lock()

    def do_create_element(self, _url) -> Gst.Element:
        return Gst.parse_launch(
            "( appsrc name=src is-live=true format=time do-timestamp=true "
            "! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast "
            f"key-int-max={self.fps} bitrate=2000 ! video/x-h264,profile=baseline "
            "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )

    def do_configure(self, media: GstRtspServer.RTSPMedia) -> None:
        appsrc = media.get_element().get_by_name("src")
        appsrc.set_property("caps", self.caps)
        with self._lock:
            self._appsrcs.append(appsrc)
        media.connect("unprepared", self._forget, appsrc)

    def _forget(self, _media, appsrc: GstApp.AppSrc) -> None:
        with self._lock:
            if appsrc in self._appsrcs:
                self._appsrcs.remove(appsrc)

    def deliver(self, sample: Gst.Sample) -> None:
        with self._lock:
            targets = list(self._appsrcs)
        for appsrc in targets:
            buffer = sample.get_buffer().copy()
            buffer.pts = buffer.dts = Gst.CLOCK_TIME_NONE  # do-timestamp: the live clock
            appsrc.emit("push-buffer", buffer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", type=Path, help="video file to serve, looped")
    parser.add_argument("port", type=int, help="TCP port to listen on (127.0.0.1)")
    parser.add_argument("--mount", default="/cam", help="path of the stream (default /cam)")
    parser.add_argument("--fps", type=int, default=10, help="frames a second served")
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        print(f"rtsp_server: no such clip: {args.clip}", file=sys.stderr)
        return 2
    Gst.init(None)
    loop = GLib.MainLoop()
    factory = Factory(args.fps)
    player = LoopedClip(args.clip, args.fps, factory.deliver)
    player.start()
    # The served caps are the decoded clip's: wait for the first frame before serving.
    if not _iterate_until(loop, player.prerolled, 15.0):
        print(f"rtsp_server: no frame decoded from {args.clip} in 15 s", file=sys.stderr)
        return 1
    factory.caps = player.caps
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on port {args.port}", file=sys.stderr)
        return 1
    # SIGTERM keeps its default action (the process ends at once, the kernel closes the
    # sockets, as when a camera loses power): nothing here needs saving.
    print(f"serving rtsp://127.0.0.1:{args.port}{args.mount}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        loop.run()
    return 0


def _iterate_until(loop: GLib.MainLoop, event: threading.Event, timeout_s: float) -> bool:
    """Run the main context (bus messages) until ``event`` is set or time runs out."""
    context = loop.get_context()
    deadline = GLib.get_monotonic_time() + int(timeout_s * 1e6)
    while not event.is_set() and GLib.get_monotonic_time() < deadline:
        context.iteration(False)
        event.wait(0.01)
    return event.is_set()


if __name__ == "__main__":
    sys.exit(main())
