"""``safecity bench components``: median milliseconds per stage on real media.

Figures, not assertions: each component runs ``repeats`` times on real frames
(the 1080p arcade clip for decode, motion and faces; the pedestrians clip for
the object detector; full-frame face detection on the pedestrians, arcade and,
where the shared test data has it, seated-faces clips) after a warm-up, and the
median and 90th percentile are reported with the machine they ran on.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from safecity.config import CameraConfig, SafecityConfig
from safecity.errors import SafecityError


def _media(name: str) -> Path:
    """Benchmark media: the shared test data if present, else the demo sample."""
    roots = [os.environ.get("SAFECITY_TEST_DATA"), Path.cwd().parent / "shared" / "data"]
    for root in roots:
        if root and (Path(root) / "video" / name).exists():
            return Path(root) / "video" / name
    if name.startswith("pedestrians"):
        from safecity.samples import fetch_sample

        return fetch_sample("vtest")
    raise SafecityError(f"benchmark video {name} not found; set SAFECITY_TEST_DATA")


def _optional_media(name: str) -> Path | None:
    """A benchmark video that is only in the shared test data; None when absent."""
    try:
        return _media(name)
    except SafecityError:
        return None


def _frames(path: Path, count: int) -> list:
    from safecity.video.source import open_source

    source = open_source(CameraConfig(name="bench", url=str(path)))
    frames = []
    try:
        for frame in source:
            frames.append(frame)
            if len(frames) >= count:
                break
    finally:
        source.close()
    return frames


def _time(fn: Callable[[int], object], repeats: int, warmup: int = 2) -> list[float]:
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def _row(name: str, unit: str, times: list[float]) -> dict:
    return {
        "name": name,
        "unit": unit,
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "runs": len(times),
    }


def bench_components(config: SafecityConfig, repeats: int = 30) -> dict:
    from safecity.video.motion import MotionGate
    from safecity.video.source import open_source
    from safecity.vision.detector import ObjectDetector
    from safecity.vision.embedder import make_embedder
    from safecity.vision.faces import FaceDetector

    arcade = _media("arcade-crowd-1080p.mp4")
    pedestrians = _media("pedestrians-768x576.avi")
    rows = []

    # Decode: whole-file passes, per decoded 1080p frame.
    decode_times: list[float] = []
    while len(decode_times) < repeats:
        source = open_source(CameraConfig(name="bench", url=str(arcade)))
        t0 = time.perf_counter()
        for _ in source:
            t1 = time.perf_counter()
            decode_times.append((t1 - t0) * 1000)
            t0 = t1
        source.close()
    rows.append(
        _row(
            "decode (1080p H.264)", "frame", decode_times[:repeats] if repeats > 3 else decode_times
        )
    )

    big = _frames(arcade, 60)
    gate = MotionGate(config.motion)
    rows.append(
        _row(
            "motion gate (1080p)", "frame", _time(lambda i: gate.update(big[i % len(big)]), repeats)
        )
    )

    small = _frames(pedestrians, 60)
    detector = ObjectDetector(config.detector)
    rows.append(
        _row(
            f"object detector ({config.detector.kind}, 768x576)",
            "frame",
            _time(lambda i: detector.detect(small[i % len(small)].image), repeats),
        )
    )

    # Faces: person boxes found by the detector in the 1080p clip.
    people = []
    for frame in big[::6]:
        dets = detector.detect(frame.image)
        people += [
            (frame.image, box) for box, c in zip(dets.boxes, dets.class_ids, strict=True) if c == 0
        ]
    if not people:
        raise SafecityError("no person found in the benchmark clip; is the detector installed?")
    faces = FaceDetector(config.faces)
    rows.append(
        _row(
            "face detector (YuNet)",
            "person crop",
            _time(lambda i: faces.detect_in_box(*people[i % len(people)]), repeats),
        )
    )
    # Full-frame face detection, as the pipeline runs it every faces.full_frame_every_s
    # (faces.full_frame): one row per clip, since its cost grows with the frame.
    clips = [("768x576", small), ("1080p", big)]
    seated = _optional_media("seated-faces-480x270.gif")
    if seated is not None:
        clips.append(("480x270", _frames(seated, 60)))
    side = min(config.faces.max_side, config.faces.full_frame_side)
    for size, frames in clips:
        rows.append(
            _row(
                f"face detector, full frame (YuNet, {size} at <= {side} px)",
                f"search (one every {config.faces.full_frame_every_s:g} s)",
                _time(lambda i, fr=frames: faces.detect(fr[i % len(fr)].image, side), repeats),
            )
        )
    found = [(img, f) for img, box in people for f in faces.detect_in_box(img, box)]
    if not found:
        raise SafecityError("no face found in the benchmark clip")
    # Between whole-frame searches a face-only track's face is looked for around its last box.
    rows.append(
        _row(
            "face detector, around a face (YuNet, face-only track between full-frame searches)",
            "face-only track",
            _time(
                lambda i: faces.around(found[i % len(found)][0], found[i % len(found)][1].box),
                repeats,
            ),
        )
    )
    embedder = make_embedder(config.embedder)
    rows.append(
        _row(
            f"embedder ({config.embedder.kind})",
            "face",
            _time(lambda i: embedder.embed(*found[i % len(found)]), repeats),
        )
    )
    rows += _dlib_network_rows(found, repeats, config.embedder.threads)
    return {
        "components": rows,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }


def _dlib_network_rows(found: list, repeats: int, threads: int, batch: int = 8) -> list[dict]:
    """dlib's ResNet on aligned chips: the dlib library, the ONNX conversion one face a
    call, and batches of ``batch`` faces, per face. The three take turns in one loop so
    that the machine's load weighs on them alike; ``speedup`` is dlib's median over each."""
    import dlib

    from safecity.models import model_path
    from safecity.vision.embedder import DlibEmbedder

    onnx_dlib = DlibEmbedder(threads=threads)
    chips = [onnx_dlib.chips(image, [face])[0] for image, face in found]
    library = dlib.face_recognition_model_v1(str(model_path("dlib_resnet")))
    runs = {
        "dlib library": lambda i: library.compute_face_descriptor(chips[i % len(chips)]),
        "ONNX, 1 face a call": lambda i: onnx_dlib.embed_chips([chips[i % len(chips)]]),
        f"ONNX, batches of {batch}": lambda i: onnx_dlib.embed_chips(
            [chips[(i * batch + j) % len(chips)] for j in range(batch)]
        ),
    }
    per_face = {"dlib library": 1, "ONNX, 1 face a call": 1, f"ONNX, batches of {batch}": batch}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(repeats + 2):  # the first two rounds warm up
        for name, run in runs.items():
            t0 = time.perf_counter()
            run(i)
            if i >= 2:
                times[name].append((time.perf_counter() - t0) * 1000 / per_face[name])
    reference = float(np.median(times["dlib library"]))
    rows = []
    for name, measured in times.items():
        row = _row(f"dlib ResNet, {name} (aligned chip)", "face", measured)
        row["speedup"] = reference / row["median_ms"]
        if name != "dlib library":
            row["name"] += f": {row['speedup']:.1f}x dlib"
        rows.append(row)
    return rows


def bench_audit(url: str | None = None, records: int = 5000) -> dict:
    """Audit trail cost: append ``records`` (one transaction each, as actions do), then verify.

    Runs on a scratch SQLite file unless ``url`` names another empty database.
    """
    import tempfile

    from safecity.governance import audit
    from safecity.store import open_store

    with tempfile.TemporaryDirectory(prefix="safecity-bench-") as folder:
        store = open_store(url or f"sqlite:///{folder}/audit.db", Path(folder) / "media")
        try:
            appends = []
            for i in range(records):
                started = time.perf_counter()
                audit.record(
                    store,
                    actor="bench",
                    action="search.events",
                    object=f"query:{i}",
                    details={"filters": {"camera": "gate-1", "label": "person"}, "found": i},
                )
                appends.append(time.perf_counter() - started)
            verify_times = []
            for _ in range(3):
                started = time.perf_counter()
                report = audit.verify(store)
                verify_times.append(time.perf_counter() - started)
            if not report.ok:
                raise SafecityError(f"the benchmark's own audit trail failed: {report.problem}")
        finally:
            store.close()
    appends_ms = np.array(appends) * 1000
    verify_s = float(np.median(verify_times))
    return {
        "records": records,
        "append_median_ms": float(np.median(appends_ms)),
        "append_p95_ms": float(np.percentile(appends_ms, 95)),
        "verify_s": verify_s,
        "verify_records_per_s": records / verify_s if verify_s else 0.0,
        "backend": "sqlite" if url is None else url.split(":", 1)[0],
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
    }


def bench_retention(url: str | None = None, events: int = 100_000) -> dict:
    """Seconds for one retention run to delete ``events`` expired event rows (no files)."""
    import tempfile
    import uuid
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from safecity.governance.clock import ManualClock
    from safecity.governance.retention import run_retention
    from safecity.store import open_store
    from safecity.store.schema import EventRecord

    now = datetime.now(UTC)
    old = now - timedelta(days=40)
    with tempfile.TemporaryDirectory(prefix="safecity-bench-") as folder:
        store = open_store(url or f"sqlite:///{folder}/retention.db", Path(folder) / "media")
        config = SafecityConfig.model_validate(
            {"audit": {"key_path": f"{folder}/key.pem", "heads_path": f"{folder}/heads.jsonl"}}
        )
        try:
            rows = [
                {
                    "uuid": uuid.uuid4().hex,
                    "camera": f"cam-{i % 50}",
                    "track_id": i,
                    "label": "person",
                    "started_at": old,
                    "ended_at": old,
                    "best_score": 0.8,
                    "frames": 10,
                    "created_at": old,
                }
                for i in range(events)
            ]
            with store.transaction(write=True) as session:
                session.execute(insert(EventRecord), rows)
            started = time.perf_counter()
            report = run_retention(store, config, clock=ManualClock(now))
            seconds = time.perf_counter() - started
        finally:
            store.close()
    return {
        "events": events,
        "deleted": report.events,
        "seconds": seconds,
        "events_per_s": report.events / seconds if seconds else 0.0,
        "backend": "sqlite" if url is None else url.split(":", 1)[0],
    }


# --------------------------------------------------------------------------- match


def _lfw_vectors(embedder: str, cache_dir: Path | None = None) -> tuple[np.ndarray, list[str]]:
    """Cached real LFW embeddings of ``embedder`` (``dlib`` or ``fused``) and whose they are.

    Reads :mod:`safecity.identity.embedcache` files (default ``/tmp/lfw-emb``), as
    ``safecity eval lfw`` leaves them; images without a face are left out.
    """
    from safecity.config import EmbedderConfig
    from safecity.identity import embedcache
    from safecity.identity.openset import _fused_parts

    if embedder == "dlib":
        names = ["dlib"]
    elif embedder == "fused":
        names = [name for _, name in _fused_parts(EmbedderConfig(kind="fused"))]
    else:
        raise SafecityError(f"--embedder must be dlib or fused, not {embedder!r}")
    caches = []
    for name in names:
        path = embedcache.cache_path(name, cache_dir)
        cache = embedcache.load_cache(path)
        if not cache:
            raise SafecityError(
                f"no cached LFW embeddings at {path}: run 'safecity eval lfw --embedder "
                f"{embedder}' once to make them (or set SAFECITY_EMBED_CACHE)"
            )
        caches.append(cache)
    paths = sorted(p for p in caches[0] if all(c.get(p) is not None for c in caches))
    vectors = np.array([np.concatenate([c[p] for c in caches]) for p in paths], np.float32)
    return vectors, [p.split("/", 1)[0] for p in paths]


def _match_data(
    vectors: np.ndarray, people: list[str], parts: tuple[int, ...], gallery: int, probes: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Gallery rows (real LFW + random unit fill up to ``gallery``) and probe rows.

    Every fifth person is kept out of the gallery (their images are probes of
    people not enrolled); of the others, the first image is a probe and the
    rest are enrolled. Returns ``(gallery_rows, probe_rows, real_rows, mated)``.
    """
    from safecity.identity.matcher import _unit_rows

    rng = np.random.default_rng(13)
    order = sorted(set(people))
    absent = set(order[::5])
    seen: set[str] = set()
    enrolled, mated, unmated = [], [], []
    for i, person in enumerate(people):
        if person in absent:
            unmated.append(i)
        elif person not in seen and people.count(person) > 1:
            mated.append(i)
        else:
            enrolled.append(i)
        seen.add(person)
    real = _unit_rows(vectors[enrolled], parts)[:gallery]
    fill = rng.standard_normal((max(0, gallery - len(real)), sum(parts)), dtype=np.float32)
    rows = np.concatenate([real, _unit_rows(fill, parts)]) if len(fill) else real
    del fill
    half = probes // 2
    pick_mated = rng.permutation(mated)[:half]
    pick_unmated = rng.permutation(unmated)[: probes - len(pick_mated)]
    chosen = np.concatenate([pick_mated, pick_unmated]).astype(int)
    return rows, vectors[chosen], len(real), len(pick_mated)


def _rss_bytes() -> int:
    """Resident memory of this process now (Linux; 0 where unknown)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _measure_index(name: str, build: Callable[[], object]) -> tuple[dict, object]:
    """Build an index (timed, RSS growth) and return its row of figures without search times."""
    from safecity.identity.index import index_bytes

    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    index = build()
    seconds = time.perf_counter() - t0
    return {
        "index": name,
        "build_s": seconds,
        "index_bytes": index_bytes(index),
        "rss_growth_bytes": max(0, _rss_bytes() - rss0),
    }, index


#: ``bench match`` builds an exact index for comparison only up to this size (a
#: second copy of the rows; 1M fused templates are 4.6 GB each).
EXACT_COMPARE_MAX_BYTES = 2 << 30


def bench_match(
    gallery: int = 100_000,
    embedder: str = "dlib",
    probes: int = 500,
    exact: bool | None = None,
    flat_max: int | None = None,
    cache_dir: Path | None = None,
    real: tuple[np.ndarray, list[str]] | None = None,
) -> dict:
    """Gallery search cost and accuracy at ``gallery`` templates, one probe at a time.

    The gallery is real LFW embeddings of ``embedder`` plus random unit vectors
    (per part for the fused embedder) up to ``gallery`` rows; the probes are other
    LFW images of enrolled people and images of people not enrolled. For the index
    :func:`~safecity.identity.index.choose_index` picks (and, when ``exact`` — by
    default when that index is not already exact — for an exact flat index too):
    build seconds, index bytes, process RSS growth, median and p95 milliseconds a
    probe, and recall@1 against exact search (the share of probes whose best row
    scores as high as the exact best). ``real``: embeddings and whose they are, to
    use instead of the LFW cache.
    """
    from safecity.identity import index as idx
    from safecity.identity.matcher import scoring_for

    if gallery < 1 or probes < 1:
        raise SafecityError("--gallery and --probes must be at least 1")
    vectors, people = real if real is not None else _lfw_vectors(embedder, cache_dir)
    scoring = scoring_for(*_scoring_name(embedder, vectors.shape[1]))
    rows, probe_vectors, real, mated = _match_data(vectors, people, scoring.parts, gallery, probes)
    probe_rows = [scoring.probe_row(v) for v in probe_vectors]
    choice = idx.choose_index(len(rows), **({} if flat_max is None else {"flat_max": flat_max}))
    flat_bytes = len(rows) * rows.shape[1] * 4
    if exact is None:  # compare with exact search unless a second copy would be large
        exact = not choice.exact and flat_bytes <= EXACT_COMPARE_MAX_BYTES

    # The exact answer for recall: a brute-force product, batched (not timed).
    truth = np.empty(len(probe_rows), np.float32)
    batch = np.concatenate(probe_rows)
    for start in range(0, len(batch), 64):
        truth[start : start + 64] = (rows @ batch[start : start + 64].T).max(axis=0)

    results = []
    plans = [choice] + ([idx.IndexChoice("flat")] if exact and not choice.exact else [])
    for plan in plans:
        row, index = _measure_index(plan.describe(), lambda p=plan: idx.build_index(rows, p))
        best = np.empty(len(probe_rows), np.float32)
        times = []
        for _ in range(2):  # warm-up: the first searches page the index in
            idx.search(index, probe_rows[0], 32)
        for i, probe in enumerate(probe_rows):
            t0 = time.perf_counter()
            sims, _ = idx.search(index, probe, 32)  # k as FaissMatcher.match asks
            times.append((time.perf_counter() - t0) * 1000)
            best[i] = sims[0]
        row |= {
            "median_ms": float(np.median(times)),
            "p95_ms": float(np.percentile(times, 95)),
            # float32 sums differ by order: a relative tolerance (fused scores reach ~20).
            "recall_at_1": float(np.mean(best >= truth - 1e-5 * np.maximum(1, np.abs(truth)))),
        }
        results.append(row)
        del index
    return {
        "gallery": len(rows),
        "real_templates": real,
        "embedder": scoring.embedder,
        "dim": scoring.dim,
        "probes": len(probe_rows),
        "mated_probes": mated,
        "chosen": choice.describe(),
        "gallery_bytes": flat_bytes,
        "flat_max": idx.FLAT_MAX if flat_max is None else flat_max,
        "indexes": results,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, faiss {_faiss_version()}",
    }


def _scoring_name(embedder: str, dim: int) -> tuple[str, int]:
    from safecity.identity.calibration import FUSED_NAME

    return (FUSED_NAME if embedder == "fused" else embedder), dim


def _faiss_version() -> str:
    import faiss

    return str(getattr(faiss, "__version__", "?"))
