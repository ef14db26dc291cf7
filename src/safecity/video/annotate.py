"""Annotated output video: boxes, track ids, labels and matches drawn on frames.

Every head and face not matched is pixelated before a frame is encoded, so the
annotated video obeys the same rule as snapshots (DESIGN.md invariant 3).
"""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from safecity.errors import SourceError
from safecity.pipeline import FrameResult
from safecity.store.media import pixelate
from safecity.vision.redact import FaceRedactor, privacy_boxes

_COLOURS = {
    "person": (80, 200, 80),
    "car": (200, 140, 40),
    "truck": (200, 90, 40),
    "bus": (200, 60, 120),
    "bicycle": (40, 200, 220),
    "motorcycle": (40, 160, 220),
}
_MATCH_COLOUR = (40, 40, 230)


class Annotator:
    """Draws tracks on redacted copies of frames.

    On every analysed frame the regions to hide are worked out afresh: the heads
    of every person detected (tracked or not), their faces, and every face the
    redaction detector finds in the whole frame, except a matched person's face.
    A frame the motion gate skipped reuses the last regions: nothing moved.
    """

    def __init__(self, redactor: FaceRedactor) -> None:
        self.redactor = redactor
        self._hide = np.zeros((0, 4), np.float32)

    def draw(self, result: FrameResult) -> np.ndarray:
        image = result.frame.image
        if result.analysed:
            self._hide = self._regions(result)
        out = pixelate(image, self._hide) if len(self._hide) else image.copy()
        _draw_tracks(out, result)
        return out

    def _regions(self, result: FrameResult) -> np.ndarray:
        image = result.frame.image
        faces = {v.track.track_id: v.face for v in result.tracks if v.face is not None}
        tracks = [v.track for v in result.tracks]
        matched = {v.track.track_id for v in result.tracks if v.match is not None}
        kept_faces = np.array([faces[t].box for t in matched if t in faces], np.float32)
        hide = privacy_boxes(tracks, faces, keep=matched, people=result.people)
        return self.redactor.hide(image, np.array(hide, np.float32).reshape(-1, 4), kept_faces)


def _draw_tracks(out: np.ndarray, result: FrameResult) -> None:
    for view in result.tracks:
        x1, y1, x2, y2 = (int(round(v)) for v in view.track.box)
        colour = _MATCH_COLOUR if view.match else _COLOURS.get(view.track.label, (200, 200, 200))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        text = f"#{view.track.track_id} {view.track.label}"
        if view.match:
            text += f" {view.match.person_name} ({view.match.score:.2f}) CANDIDATE"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(out, (x1, max(0, y1 - th - 6)), (x1 + tw + 4, y1), colour, -1)
        cv2.putText(
            out, text, (x1 + 2, max(th, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
        )


class VideoWriter:
    """Writes BGR frames to an MP4 (H.264 where the FFmpeg build has it, else MPEG-4).

    Written to a temporary name and renamed on :meth:`close`, so a run that fails
    leaves no half-written file behind; :meth:`abort` removes it.
    """

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_suffix(".partial.mp4")
        self._container = av.open(str(self._tmp), mode="w")
        rate = Fraction(fps).limit_denominator(1001)
        try:
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.options = {"preset": "veryfast", "crf": "26"}
        except (av.error.FFmpegError, ValueError):
            self._stream = self._container.add_stream("mpeg4", rate=rate)
        self._stream.width, self._stream.height = width - width % 2, height - height % 2
        self._stream.pix_fmt = "yuv420p"

    def write(self, image: np.ndarray) -> None:
        image = image[: self._stream.height, : self._stream.width]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> Path:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        with contextlib.suppress(av.error.FFmpegError):
            self._container.close()
        self._tmp.unlink(missing_ok=True)


def open_writer(path: Path, fps: float, width: int, height: int) -> VideoWriter:
    try:
        return VideoWriter(path, fps, width, height)
    except (OSError, av.error.FFmpegError) as exc:
        raise SourceError(f"cannot write the annotated video {path}: {exc}") from None
