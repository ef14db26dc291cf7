"""``safecity bench detector``: time per frame and person recall of the detector's
variants, against the float NanoDet on the whole square input, in the same run.

On frames sampled from the sample clips, every variant runs on every frame in
turn (so the machine's load weighs on all alike), ``repeats`` passes. The
reference's person detections (score at or above the configured threshold) are
the truth: a variant's *recall* is the share of them it matches one to one at
IoU >= 0.5; its *extra* are its own people the reference does not have. Both
move by a few detections whatever changes, because the people the reference
scores just over the threshold (0.35-0.39) come out just under it in another
variant and the other way round: that is what the recall loss measures.

>>> result = bench_detector(SafecityConfig(), repeats=2)  # doctest: +SKIP
>>> [v["variant"] for v in result["clips"][0]["variants"]]  # doctest: +SKIP
['float, square (reference)', 'int8, square', 'int8, trimmed']
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from safecity.config import DetectorConfig, SafecityConfig
from safecity.vision.nms import box_iou

PERSON = 0
MATCH_IOU = 0.5

# (file under the test data's video/, first frame, every n-th, how many); clips
# missing from the test data are left out
CLIPS = (
    ("pedestrians-768x576.avi", 0, 20, 40),
    ("arcade-crowd-1080p.mp4", 0, 5, 21),
    ("seated-faces-480x270.gif", 0, 4, 14),
)

# name -> settings over the configured detector; the first is the reference
VARIANTS: dict[str, dict] = {
    "float, square (reference)": {"precision": "float", "trim_padding": False},
    "int8, square": {"precision": "int8", "trim_padding": False},
    "int8, trimmed": {"precision": "int8", "trim_padding": True},
}


def sample_frames(path: Path, first: int, every: int, count: int) -> list[np.ndarray]:
    """``count`` BGR frames of a video file: ``first``, then every ``every``-th."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= first and (i - first) % every == 0:
                frames.append(frame.to_ndarray(format="bgr24"))
                if len(frames) == count:
                    break
    return frames


def matched(reference: np.ndarray, found: np.ndarray, iou: float = MATCH_IOU) -> int:
    """How many ``reference`` boxes have their own ``found`` box at ``iou`` or more
    (pairs taken greedily, best overlap first).

    >>> a = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    >>> matched(a, a[:1] + 1), matched(a, np.zeros((0, 4), np.float32))
    (1, 0)
    """
    if len(reference) == 0 or len(found) == 0:
        return 0
    overlaps = box_iou(reference, found)
    pairs = np.argwhere(overlaps >= iou)
    pairs = pairs[np.argsort(-overlaps[pairs[:, 0], pairs[:, 1]], kind="stable")]
    used_ref: set[int] = set()
    used_found: set[int] = set()
    for r, f in pairs.tolist():
        if r not in used_ref and f not in used_found:
            used_ref.add(r)
            used_found.add(f)
    return len(used_ref)


def bench_detector(config: SafecityConfig, repeats: int = 3) -> dict:
    """Per clip and variant: median and p90 ms per frame, ratio to the reference's
    median, person recall against it and extra people."""
    from safecity.bench import _optional_media
    from safecity.runtime.bench_pipeline import machine
    from safecity.vision.detector import ObjectDetector, nanodet_blob

    load_before = os.getloadavg()[0]
    base = config.detector.model_copy(update={"kind": "nanodet", "model_path": None})
    detectors = {
        name: ObjectDetector(DetectorConfig.model_validate({**base.model_dump(), **update}))
        for name, update in VARIANTS.items()
    }
    clips = []
    for name, first, every, count in CLIPS:
        path = _optional_media(name)
        if path is None:
            continue
        frames = sample_frames(path, first, every, count)
        clips.append(_bench_clip(name, frames, detectors, repeats, nanodet_blob))
    return {"clips": clips, "repeats": repeats, "machine": machine(load_before)}


def _bench_clip(name: str, frames: list, detectors: dict, repeats: int, blob_of) -> dict:
    times: dict[str, list[float]] = {v: [] for v in detectors}
    people: dict[str, list[np.ndarray]] = {v: [] for v in detectors}
    for image in frames[:2]:  # warm-up
        for detector in detectors.values():
            detector.detect(image)
    for rep in range(repeats):
        for image in frames:
            for variant, detector in detectors.items():
                t0 = time.perf_counter()
                found = detector.detect(image)
                times[variant].append((time.perf_counter() - t0) * 1000)
                if rep == 0:
                    people[variant].append(found.boxes[found.class_ids == PERSON])
    reference = next(iter(detectors))
    truth = people[reference]
    total = sum(len(b) for b in truth)
    ref_median = float(np.median(times[reference]))
    rows = []
    for variant, detector in detectors.items():
        hits = sum(matched(t, f) for t, f in zip(truth, people[variant], strict=True))
        own = sum(len(f) for f in people[variant])
        trim = getattr(detector.decoder, "trim", False)
        blob = blob_of(frames[0], detector.decoder.width, detector.decoder.height, trim)[0]
        rows.append(
            {
                "variant": variant,
                "input": f"{blob.shape[3]}x{blob.shape[2]}",
                "median_ms": float(np.median(times[variant])),
                "p90_ms": float(np.percentile(times[variant], 90)),
                "ratio": float(np.median(times[variant])) / ref_median,
                "people": total,
                "matched": hits,
                "recall": hits / total if total else 1.0,
                "extra": own - hits,
            }
        )
    h, w = frames[0].shape[:2]
    return {"clip": name, "size": f"{w}x{h}", "frames": len(frames), "variants": rows}
