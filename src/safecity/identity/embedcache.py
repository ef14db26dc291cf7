"""Embed a folder of face images once per embedder, with an on-disk cache.

Benchmarks (``safecity eval identify``, ``safecity eval lfw``) embed the same
thousands of images again and again; dlib takes about 80 ms an image here. The
vectors of one embedder over one images folder are kept in one ``.npz`` file
(default folder :data:`CACHE_DIR`, one file ``<embedder-name>.npz``):

- ``paths``: each image's path relative to the images folder (``Name/Name_0001.jpg``);
- ``vectors``: (N, d) float32, the embedder's unit vector per image, or a row of
  NaN where no face was found (so it is not embedded again, and is not mistaken
  for an image not yet embedded).

The file is replaced atomically (temp file, rename): a reader sees the old cache
or the new one, never half of one. A cache entry is trusted as is: delete the
file after changing an embedder's model or the face detector.

Each image is read, the face nearest its centre is taken (YuNet, as in
:func:`safecity.identity.lfw.embed_lfw_image`), and the configured embedder of
``kind`` embeds it.

>>> vecs = embed_folder(Path("lfw-dev/images"), ["A/A_0001.jpg"], "dlib")  # doctest: +SKIP
>>> vecs["A/A_0001.jpg"].shape  # doctest: +SKIP
(128,)
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from safecity.progress import Progress

log = logging.getLogger(__name__)

#: Where caches live unless told otherwise (shared by the LFW and identify evaluations).
CACHE_DIR = Path(os.environ.get("SAFECITY_EMBED_CACHE", "/tmp/lfw-emb"))

#: Images embedded between two saves of the cache.
SAVE_EVERY = 1000

_worker: tuple | None = None  # (kind, FaceDetector, Embedder) of this process


def cache_path(kind: str, cache_dir: Path | None = None) -> Path:
    """``<cache_dir>/<kind>.npz``."""
    return Path(cache_dir if cache_dir is not None else CACHE_DIR) / f"{kind}.npz"


def load_cache(path: Path) -> dict[str, np.ndarray | None]:
    """The cached vectors (None: no face in that image); empty when there is no usable cache.

    Also reads an older layout: one array per image keyed by its path (empty: no face).
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = list(data.files)
            if set(keys) >= {"paths", "vectors"} and len(keys) <= 3:
                rows = np.asarray(data["vectors"], np.float32)
                return {
                    str(p): (None if not np.isfinite(row).all() else row)
                    for p, row in zip(data["paths"].tolist(), rows, strict=True)
                }
            out: dict[str, np.ndarray | None] = {}
            for key in keys:
                vector = np.asarray(data[key], np.float32).reshape(-1)
                out[key] = vector if vector.size and np.isfinite(vector).all() else None
            return out
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, zipfile.BadZipFile, KeyError) as error:
        log.warning("ignoring the unreadable embedding cache %s: %s", path, error)
        return {}


def save_cache(path: Path, vectors: dict[str, np.ndarray | None]) -> None:
    """Add ``vectors`` to the cache at ``path`` (what is there stays), written atomically.

    Layout: ``paths`` (strings) and ``vectors`` (N, d) float32, a row of NaN for
    an image without a face (the layout :mod:`safecity.identity.lfw` uses too).
    """
    from safecity.store.media import write_atomically

    merged = load_cache(path)
    merged.update(vectors)
    dims = {len(v) for v in merged.values() if v is not None}
    if len(dims) > 1:  # another model's vectors under this name: keep only ours
        merged = dict(vectors)
        dims = {len(v) for v in merged.values() if v is not None}
    dim = dims.pop() if dims else 0
    paths = sorted(merged)
    rows = np.full((len(paths), dim), np.nan, np.float32)
    for i, p in enumerate(paths):
        if merged[p] is not None:
            rows[i] = merged[p]
    buffer = io.BytesIO()
    np.savez(buffer, paths=np.array(paths, dtype=str), vectors=rows)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, buffer.getvalue())
    os.chmod(path, 0o644)  # other evaluations on this machine read it too


def _init_pool_worker(kind: str) -> None:
    import cv2

    cv2.setNumThreads(1)  # the pool already fills the cores
    _init_worker(kind)


def _init_worker(kind: str) -> None:
    global _worker
    from safecity.config import EmbedderConfig
    from safecity.vision.embedder import make_embedder
    from safecity.vision.faces import FaceDetector

    if kind.startswith("fused."):
        # One part of the fused embedder, exactly as it embeds inside the fusion
        # (its dlib part may be mirror-averaged, unlike plain dlib).
        from safecity.vision.embedder import FusedEmbedder

        embedder = getattr(FusedEmbedder(), kind.split(".", 1)[1])
    else:
        embedder = make_embedder(EmbedderConfig(kind=kind))
    _worker = (kind, FaceDetector(), embedder)


def embed_image(path: str, kind: str = "dlib") -> np.ndarray | None:
    """Unit vector of the face nearest the centre of one image; None if no face or unreadable."""
    import cv2

    if _worker is None or _worker[0] != kind:
        _init_worker(kind)
    _, detector, embedder = _worker  # type: ignore[misc]
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        return None
    faces = detector.detect(image)
    if not faces:
        return None
    h, w = image.shape[:2]
    centre = np.array([w / 2, h / 2], np.float32)
    face = min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))
    return np.asarray(embedder.embed(image, face), np.float32).reshape(-1)


def _embed_one(args: tuple[str, str]) -> np.ndarray | None:
    return embed_image(*args)


def embed_folder(
    images: Path,
    relative: Sequence[str],
    kind: str,
    *,
    workers: int | None = None,
    progress: bool = True,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    cache_name: str | None = None,
) -> dict[str, np.ndarray | None]:
    """Vectors of ``images/<relative>`` with the embedder ``kind``; cached ones are not redone.

    New vectors are added to the cache ``<cache_name or kind>.npz`` (``use_cache=False``:
    neither read nor written). ``workers`` processes embed (default: up to 2; 1: here).
    """
    path = cache_path(cache_name or kind, cache_dir)
    cached = load_cache(path) if use_cache else {}
    todo = [r for r in relative if r not in cached]
    workers = workers or min(2, os.cpu_count() or 1)
    # In batches, saving after each: an interrupted run keeps what it has done.
    for start in range(0, len(todo), SAVE_EVERY):
        batch = todo[start : start + SAVE_EVERY]
        cached.update(_embed_many(images, batch, kind, workers, progress))
        if use_cache:
            try:
                save_cache(path, cached)
            except OSError as error:  # a cache is a convenience: say so, carry on
                log.warning("could not write the embedding cache %s: %s", path, error)
    return {r: cached[r] for r in relative}


def _embed_many(
    images: Path, relative: Sequence[str], kind: str, workers: int, progress: bool
) -> dict[str, np.ndarray | None]:
    jobs = [(str(Path(images) / r), kind) for r in relative]
    results: Iterable[np.ndarray | None]
    pool = None
    if workers <= 1 or len(jobs) < 16:
        results = map(_embed_one, jobs)
    else:
        # spawn: each worker loads its models itself rather than inheriting a forked copy
        pool = ProcessPoolExecutor(
            workers,
            multiprocessing.get_context("spawn"),
            initializer=_init_pool_worker,
            initargs=(kind,),
        )
        results = pool.map(_embed_one, jobs, chunksize=16)
    bar = Progress(
        f"embedding images ({kind})",
        len(jobs),
        "img",
        log,
        bar=None if progress else False,
        counts=("no-face",),
    )
    out: dict[str, np.ndarray | None] = {}
    try:
        for rel, vector in zip(relative, results, strict=True):
            out[rel] = vector
            bar.advance(**{"no-face": vector is None})
        bar.close()
        return out
    finally:
        bar.close(finished=False)
        if pool is not None:
            pool.shutdown()


__all__ = ["CACHE_DIR", "cache_path", "embed_folder", "embed_image", "load_cache", "save_cache"]
