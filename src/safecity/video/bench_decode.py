"""``safecity bench decode``: what skipping frames in the decoder saves, old vs new.

Each clip is read to its end as a camera at ``fps`` would read it, once with
``decode.skip: none`` (every frame decoded, the due ones converted: the old way)
and once with the skip ``auto`` chooses, the two interleaved round by round so
that both see the same machine load. Per mode: milliseconds of wall time per
delivered frame and CPU seconds (every thread of the process: FFmpeg decodes in
several) per second of video, as medians over the rounds.

>>> # bench_decode([Path("arcade.mp4")], fps=5, rounds=5)["clips"][0]["cpu_ratio"]
"""

from __future__ import annotations

import time
from pathlib import Path
from statistics import median

from safecity.config import CameraConfig, DecodeConfig
from safecity.video.source import choose_skip, open_source, probe


def _read(path: Path, fps: float | None, skip: str) -> dict:
    camera = CameraConfig(name="bench", url=str(path), fps=fps, decode=DecodeConfig(skip=skip))
    wall, cpu = time.perf_counter(), time.process_time()
    with open_source(camera) as source:
        delivered = sum(1 for _ in source)
        decoded = source.frames_decoded
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "delivered": delivered,
        "decoded": decoded,
    }


def bench_decode(clips: list[Path], fps: float | None, rounds: int = 5) -> dict:
    """Old (no skipping) against new (``auto``) decoding of each clip, interleaved."""
    results = []
    for path in clips:
        info = probe(str(path))
        new = choose_skip("auto", info.codec, info.fps, fps)
        modes = {"none": [], new: []} if new != "none" else {"none": []}
        _read(path, fps, "none")  # warm-up: file cache, codec initialisation
        for _ in range(rounds):
            for mode, runs in modes.items():
                runs.append(_read(path, fps, mode))
        duration = info.duration_s or 1.0
        rows = []
        for mode, runs in modes.items():
            rows.append(
                {
                    "skip": mode,
                    "decoded": runs[0]["decoded"],
                    "delivered": runs[0]["delivered"],
                    "ms_per_delivered": median(
                        1000 * r["wall_s"] / max(r["delivered"], 1) for r in runs
                    ),
                    "cpu_s_per_video_s": median(r["cpu_s"] / duration for r in runs),
                }
            )
        old = rows[0]
        results.append(
            {
                "clip": path.name,
                "codec": info.codec,
                "size": f"{info.width}x{info.height}",
                "stream_fps": info.fps,
                "duration_s": duration,
                "auto": new,
                "modes": rows,
                "time_ratio": old["ms_per_delivered"] / rows[-1]["ms_per_delivered"],
                "cpu_ratio": old["cpu_s_per_video_s"] / rows[-1]["cpu_s_per_video_s"],
            }
        )
    return {"fps": fps, "rounds": rounds, "clips": results}


__all__ = ["bench_decode"]
