"""Face-verification accuracy on Labeled Faces in the Wild (``safecity eval lfw``).

Two pairs-file formats are read:

- View 2 ``pairs.txt``: first line ``10 300``, then per fold 300 same-person and
  300 different-person lines. Accuracy is the mean ± std over the ten folds, each
  fold's threshold chosen on the other nine.
- Development view ``pairsDevTrain.txt`` / ``pairsDevTest.txt``: first line N,
  then N same and N different lines. The threshold is chosen on ``train`` and
  the accuracy reported on ``pairs``.

Lines are ``Name i j`` (same) or ``Name1 i Name2 j`` (different); image i of Name
is ``images/Name/Name_000i.jpg``. Each image is read once (YuNet, the face
nearest the centre) and embedded once per channel (:data:`CHANNELS`: dlib, dlib
of the mirror image, FaceRes raw descriptors of the crop and its mirror); with a
cache folder the vectors are kept (:mod:`safecity.identity.embedcache`'s layout).
Three embedders are measured from them: dlib, FaceRes and the fused score, whose
constants (:func:`fit_fusion`) come from the training pairs only: ``train`` for
the development view, the other nine folds for each fold of View 2. The packaged
calibration is :func:`fit_fusion` on ``pairsDevTrain.txt`` (``safecity eval
fit-fusion``). An image without a face is not skipped: every pair that uses it
counts as an error for accuracy, and as a rejection for the ROC (no face, no
match). Results on LFW do not show fitness for any operational use.

>>> report = evaluate_lfw(Path("pairsDevTest.txt"), Path("images"),  # doctest: +SKIP
...                       Path("pairsDevTrain.txt"), Path("roc.png"), progress=False)
>>> print(report.format())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from safecity.errors import ConfigError
from safecity.identity import embedcache
from safecity.identity.calibration import FUSED_NAME, FUSED_PARTS, Calibration
from safecity.progress import Progress

log = logging.getLogger(__name__)

FAR_TARGET = 1e-3
# dlib's documented default (config.py: FAR <= 1e-3 on pairsDevTrain, rounded up).
DLIB_THRESHOLD = 0.925
DLIB_MARGIN = 0.02


@dataclass(frozen=True)
class Pair:
    """Two LFW images (paths relative to the images folder) and whether they share a person."""

    a: str
    b: str
    same: bool
    fold: int = 0


@dataclass(frozen=True)
class PairsFile:
    """A parsed pairs file: ``folds`` is 10 for View 2, 1 for the development view."""

    pairs: list[Pair]
    folds: int


def _image(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_pairs(path: Path) -> PairsFile:
    """Parse either pairs format (see the module docstring)."""
    try:
        lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise ConfigError(f"cannot read pairs file {path}: {exc.strerror}") from None
    if not lines or not all(t.isdigit() for t in lines[0]) or len(lines[0]) not in (1, 2):
        raise ConfigError(f"{path} is not an LFW pairs file (first line must be 'N' or '10 300')")
    folds, per_kind = (1, int(lines[0][0])) if len(lines[0]) == 1 else map(int, lines[0])
    body = lines[1:]
    if len(body) != folds * 2 * per_kind:
        raise ConfigError(
            f"{path}: expected {folds * 2 * per_kind} pair lines after the header, "
            f"found {len(body)}"
        )
    pairs = []
    for n, tokens in enumerate(body):
        fold, same = n // (2 * per_kind), (n % (2 * per_kind)) < per_kind
        if same and len(tokens) == 3:
            a, b = _image(tokens[0], tokens[1]), _image(tokens[0], tokens[2])
        elif not same and len(tokens) == 4:
            a, b = _image(tokens[0], tokens[1]), _image(tokens[2], tokens[3])
        else:
            raise ConfigError(f"{path}, line {n + 2}: malformed pair '{' '.join(tokens)}'")
        pairs.append(Pair(a, b, same, fold))
    return PairsFile(pairs, folds)


# --------------------------------------------------------------------------- embedding

#: What one pass over an image can compute. ``dlib``: dlib's unit vector;
#: ``dlib-flip``: the same of the mirrored image; ``faceres-raw`` and
#: ``faceres-raw-flip``: FaceRes's raw descriptor of the face crop and of its
#: mirror (before the mean descriptor is subtracted: the mean is fitted on
#: training images, so the raw form is what can be cached once).
CHANNELS = ("dlib", "dlib-flip", "faceres-raw", "faceres-raw-flip")

_worker: dict | None = None  # this process's detector and embedders, made on first use


def _init_pool_worker() -> None:
    # One OpenCV thread per process: the pool already fills the cores.
    cv2.setNumThreads(1)
    _init_worker()


def _init_worker() -> None:
    global _worker
    from safecity.vision.faces import FaceDetector

    _worker = {"detector": FaceDetector()}


def _embedder(kind: str):
    """This process's dlib or FaceRes embedder (FaceRes raw: no mean, no flip)."""
    assert _worker is not None
    if kind not in _worker:
        if kind == "dlib":
            from safecity.vision.embedder import DlibEmbedder

            _worker[kind] = DlibEmbedder()
        else:
            from safecity.vision.faceres import FACERES_DIM, FaceResEmbedder

            _worker[kind] = FaceResEmbedder(mean=np.zeros(FACERES_DIM, np.float32), flip=False)
    return _worker[kind]


def lfw_face(image: np.ndarray):
    """The face nearest the centre of an LFW image, None when none is found."""
    if _worker is None:
        _init_worker()
    faces = _worker["detector"].detect(image)  # type: ignore[index]
    if not faces:
        return None
    h, w = image.shape[:2]
    centre = np.array([w / 2, h / 2], np.float32)
    return min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))


def embed_lfw_channels(
    path: str, channels: Sequence[str] = ("dlib",)
) -> dict[str, np.ndarray | None]:
    """The ``channels`` (see :data:`CHANNELS`) of one LFW image; None where no face is found."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    face = None if image is None else lfw_face(image)
    if face is None:
        return dict.fromkeys(channels)
    out: dict[str, np.ndarray | None] = {}
    if "dlib" in channels:
        out["dlib"] = _embedder("dlib").embed(image, face)
    if "dlib-flip" in channels:
        from safecity.vision.embedder import mirror

        out["dlib-flip"] = _embedder("dlib").embed(*mirror(image, face))
    if "faceres-raw" in channels or "faceres-raw-flip" in channels:
        from safecity.vision.faceres import faceres_crop

        crop = faceres_crop(image, face)
        raw = _embedder("faceres").raw([crop, np.ascontiguousarray(crop[:, ::-1])])
        for i, name in enumerate(("faceres-raw", "faceres-raw-flip")):
            if name in channels:
                out[name] = raw[i]
    return out


def embed_lfw_image(path: str) -> np.ndarray | None:
    """dlib's unit vector of the face nearest the centre of one LFW image, None if none."""
    return embed_lfw_channels(path, ("dlib",))["dlib"]


def _embed_job(job: tuple[str, tuple[str, ...]]) -> dict[str, np.ndarray | None]:
    return embed_lfw_channels(*job)


def embed_images(
    paths: Sequence[str],
    workers: int,
    progress: bool,
    channels: Sequence[str] | Sequence[tuple[str, ...]] = ("dlib",),
) -> dict[str, dict[str, np.ndarray | None]]:
    """Embed each path once (every channel of it), over ``workers`` processes (1: here).

    ``channels``: one tuple for all paths, or one tuple per path. Returns
    ``{path: {channel: vector or None}}``. ``progress``: a bar on a terminal;
    otherwise (and always when False) a progress line in the log every
    ``safecity.progress.LOG_INTERVAL_S`` seconds.
    """
    if channels and isinstance(channels[0], str):
        jobs = [(p, tuple(channels)) for p in paths]  # type: ignore[arg-type]
    else:
        jobs = [(p, tuple(c)) for p, c in zip(paths, channels, strict=True)]
    results: Iterable[dict[str, np.ndarray | None]]
    if workers <= 1 or len(paths) < 2:
        results = map(_embed_job, jobs)
        pool = None
    else:
        # spawn: the workers load dlib themselves rather than inherit a forked copy.
        pool = ProcessPoolExecutor(
            workers, multiprocessing.get_context("spawn"), initializer=_init_pool_worker
        )
        results = pool.map(_embed_job, jobs, chunksize=16)
    bar = Progress(
        "embedding LFW images", len(paths), "img", log, bar=None if progress else False,
        counts=("no-face",),
    )  # fmt: skip
    vectors: dict[str, dict[str, np.ndarray | None]] = {}
    try:
        for path, found in zip(paths, results, strict=True):
            vectors[path] = found
            bar.advance(**{"no-face": all(v is None for v in found.values())})
        bar.close()
        return vectors
    finally:
        bar.close(finished=False)
        if pool is not None:
            pool.shutdown()


# --------------------------------------------------------------------------- cache


def load_cache(cache: Path | None, name: str) -> dict[str, np.ndarray | None]:
    """Vectors cached in ``cache/<name>.npz`` (:mod:`safecity.identity.embedcache`'s layout:
    ``paths`` relative to the images folder, ``vectors`` with NaN rows for no face)."""
    if cache is None:
        return {}
    return embedcache.load_cache(embedcache.cache_path(name, Path(cache)))


def save_cache(cache: Path, name: str, vectors: dict[str, np.ndarray | None]) -> Path:
    """Add ``vectors`` to ``cache/<name>.npz`` (what is there stays), written atomically."""
    path = embedcache.cache_path(name, Path(cache))
    embedcache.save_cache(path, vectors)
    return path


def lfw_channels(
    names: Sequence[str],
    images: Path,
    channels: Sequence[str],
    cache: Path | None,
    workers: int,
    progress: bool,
) -> dict[str, dict[str, np.ndarray | None]]:
    """``{channel: {name: vector or None}}`` for image ``names`` (relative to ``images``).

    What ``cache`` holds is reused; only the images missing from some channel are
    embedded (each image once, every channel of it), and the cache is updated.
    """
    found = {c: load_cache(cache, c) for c in channels}
    todo = [n for n in names if any(n not in found[c] for c in channels)]
    if todo:
        # Embed only the channels an image lacks (another run may have cached some).
        need = [tuple(c for c in channels if n not in found[c]) for n in todo]
        done = embed_images([str(images / n) for n in todo], workers, progress, need)
        for c in channels:
            fresh = {n: done[str(images / n)][c] for n in todo if n not in found[c]}
            found[c].update(fresh)
            if cache is not None and fresh:
                save_cache(cache, c, fresh)
    return {c: {n: found[c][n] for n in names} for c in channels}


# --------------------------------------------------------------------------- scoring


def pair_scores(pairs: Sequence[Pair], vectors: dict[str, np.ndarray | None]) -> np.ndarray:
    """Cosine score per pair; NaN where either image has no face."""
    out = np.full(len(pairs), np.nan, np.float64)
    for i, p in enumerate(pairs):
        va, vb = vectors[p.a], vectors[p.b]
        if va is not None and vb is not None:
            out[i] = float(va @ vb)
    return out


def accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Share of pairs decided right at ``threshold``; NaN scores are always wrong."""
    valid = ~np.isnan(scores)
    accept = np.where(valid, scores, -np.inf) >= threshold
    return float(np.mean(valid & (accept == same))) if len(scores) else 0.0


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold with the highest accuracy on these pairs (the median of the ties).

    Candidates are midpoints between consecutive distinct scores; pairs without a
    face are wrong at every threshold, so they do not move the choice.
    """
    valid = ~np.isnan(scores)
    s, y = scores[valid], same[valid]
    if len(s) == 0:
        return 0.0
    u = np.unique(s)
    cands = np.concatenate([[u[0] - 1e-6], (u[:-1] + u[1:]) / 2, [u[-1] + 1e-6]])
    # correct(t) = same with s >= t + different with s < t, for all candidates at once.
    ss, sd = np.sort(s[y]), np.sort(s[~y])
    tp = len(ss) - np.searchsorted(ss, cands, side="left")
    tn = np.searchsorted(sd, cands, side="left")
    correct = tp + tn
    best = np.flatnonzero(correct == correct.max())
    return float(cands[best[len(best) // 2]])


def tar_at_far(
    scores: np.ndarray, same: np.ndarray, far: float = FAR_TARGET
) -> tuple[float, float]:
    """(TAR, threshold) at the lowest threshold whose FAR is at most ``far``.

    Pairs without a face are rejections: a missed genuine pair, never a false accept.
    With n impostor pairs the FAR resolution is 1/n (500 → 0.002: then FAR ≤ 1e-3
    means no impostor accepted at all).
    """
    genuine, impostor = scores[same], scores[~same]
    imp = np.sort(impostor[~np.isnan(impostor)])[::-1]
    allowed = int(np.floor(far * len(impostor) + 1e-9))
    threshold = float(np.nextafter(imp[allowed], np.inf)) if allowed < len(imp) else -1.0
    # Ties at the threshold would be accepted too; step above them.
    while allowed < len(imp) and np.sum(imp >= threshold) > allowed:
        threshold = float(np.nextafter(threshold, np.inf))
    accepted = np.sum(np.where(np.isnan(genuine), -np.inf, genuine) >= threshold)
    return (float(accepted / len(genuine)) if len(genuine) else 0.0), threshold


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FAR, TAR) at every distinct score; no-face pairs are rejections."""
    filled = np.where(np.isnan(scores), -np.inf, scores)
    thresholds = np.unique(filled[np.isfinite(filled)])[::-1]
    n_gen, n_imp = max(int(same.sum()), 1), max(int((~same).sum()), 1)
    gen, imp = np.sort(filled[same]), np.sort(filled[~same])
    tar = (len(gen) - np.searchsorted(gen, thresholds, side="left")) / n_gen
    far = (len(imp) - np.searchsorted(imp, thresholds, side="left")) / n_imp
    return far, tar


def _plot_roc(
    path: Path,
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    point: tuple[float, float],
) -> None:
    """One ROC per embedder (label → (FAR, TAR)) and the chosen threshold of the first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    floor = 1e-4  # a log axis cannot show FAR = 0
    for label, (far, tar) in curves.items():
        ax.plot(np.maximum(far, floor), tar, lw=1.5, label=label)
    ax.axvline(FAR_TARGET, color="grey", ls="--", lw=1, label="FAR = 1e-3")
    ax.plot([max(point[0], floor)], [point[1]], "o", color="C3", label="chosen threshold")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.8, 1.0)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- fusion

#: The embedders ``safecity eval lfw`` reports, by their ``embedder.kind`` (the fused
#: one is stored as :data:`~safecity.identity.calibration.FUSED_NAME`).
EMBEDDERS = ("dlib", "faceres", "fused")
FIT_CHANNELS = ("dlib", "dlib-flip", "faceres-raw", "faceres-raw-flip")
_WEIGHT_STEP = 0.01


def _names(pairs: Sequence[Pair]) -> list[str]:
    return sorted({p.a for p in pairs} | {p.b for p in pairs})


def faceres_vectors(
    channels: dict[str, dict[str, np.ndarray | None]], mean: np.ndarray, flip: bool
) -> dict[str, np.ndarray | None]:
    """FaceRes unit vectors from cached raw descriptors, as :class:`FaceResEmbedder` makes them."""
    out: dict[str, np.ndarray | None] = {}
    flipped = channels.get("faceres-raw-flip", {})
    for name, raw in channels["faceres-raw"].items():
        if raw is None:
            out[name] = None
            continue
        if flip:
            raw = (raw + flipped[name]) / 2
        v = np.asarray(raw, np.float32) - mean
        n = float(np.linalg.norm(v))
        out[name] = v / n if n > 0 else v
    return out


def _raw_mean(channels: dict, names: Sequence[str], flip: bool) -> np.ndarray:
    rows = []
    for n in names:
        raw = channels["faceres-raw"].get(n)
        if raw is not None:
            rows.append((raw + channels["faceres-raw-flip"][n]) / 2 if flip else raw)
    if not rows:
        raise ConfigError("no face was found in any training image; cannot fit FaceRes's mean")
    return np.mean(np.stack(rows), axis=0).astype(np.float32)


def _ceil_to(value: float, step: float) -> float:
    """``value`` rounded up to a multiple of ``step`` (a threshold only ever moves up)."""
    return round(float(np.ceil(value / step - 1e-9) * step), 6)


def _impostor_stats(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    imp = scores[~same]
    imp = imp[~np.isnan(imp)]
    if len(imp) < 2:
        raise ConfigError("need at least two scored impostor pairs to fit the fusion")
    return float(np.mean(imp)), float(np.std(imp))


def fused_scores(cosines: dict[str, np.ndarray], calibration: Calibration) -> np.ndarray:
    """w·z_dlib + (1 − w)·z_faceres per pair (NaN where either is NaN)."""
    total = np.zeros_like(cosines[FUSED_PARTS[0]])
    for w, part in zip(calibration.weights, FUSED_PARTS, strict=True):
        total = total + w * (cosines[part] - calibration.mu[part]) / calibration.sigma[part]
    return total


def fit_fusion(
    train: Sequence[Pair], channels: dict[str, dict[str, np.ndarray | None]], source: str = ""
) -> Calibration:
    """Fit every constant of :class:`Calibration` on ``train`` pairs (see that module).

    ``channels``: ``dlib``, ``faceres-raw`` and ``faceres-raw-flip`` vectors of at
    least every image of ``train``. Deterministic: the same pairs and vectors give
    the same calibration.
    """
    same = np.array([p.same for p in train])
    names = _names(train)
    dlib = {n: channels["dlib"][n] for n in names}
    figures: dict[str, Any] = {}
    # FaceRes with and without mirror averaging: keep the mirror only if it pays here.
    tried = {}
    for flip in (False, True):
        mean = _raw_mean(channels, names, flip)
        scores = pair_scores(train, faceres_vectors(_subset(channels, names), mean, flip))
        t = best_threshold(scores, same)
        tried[flip] = (mean, scores, accuracy(scores, same, t), tar_at_far(scores, same)[0])
        figures[f"faceres_train_{'flip' if flip else 'plain'}"] = {
            "accuracy": tried[flip][2], "tar_at_far": tried[flip][3]
        }  # fmt: skip
    flip = (tried[True][2], tried[True][3]) > (tried[False][2], tried[False][3])
    mean, faceres_scores = tried[flip][0], tried[flip][1]
    dlib_alone = pair_scores(train, dlib)
    # The fused vector's dlib part with and without mirror averaging: keep it if it pays.
    fits = {}
    for dlib_flip in (False, True):
        part = dlib_alone if not dlib_flip else pair_scores(train, _dlib_flipped(channels, names))
        cos = {"dlib": part, "faceres": faceres_scores}
        mu, sigma = {}, {}
        for p in FUSED_PARTS:
            mu[p], sigma[p] = _impostor_stats(cos[p], same)
        # The weight: the best training accuracy over a grid; ties → the middle one.
        grid = np.round(np.arange(0.0, 1.0 + 1e-9, _WEIGHT_STEP), 4)
        accs = []
        for w in grid:
            cal = Calibration(FUSED_NAME, mean, flip, mu, sigma, (float(w), float(1 - w)), {}, {})
            fs = fused_scores(cos, cal)
            accs.append(accuracy(fs, same, best_threshold(fs, same)))
        best = np.flatnonzero(np.array(accs) == max(accs))
        w = float(grid[best[len(best) // 2]])
        weights = (w, round(1.0 - w, 4))
        draft = Calibration(FUSED_NAME, mean, flip, mu, sigma, weights, {}, {})
        fused = fused_scores(cos, draft)
        fits[dlib_flip] = (max(accs), tar_at_far(fused, same)[0], cos, mu, sigma, weights, fused)
        figures[f"fused_train_dlib_{'flip' if dlib_flip else 'plain'}"] = {
            "accuracy": fits[dlib_flip][0], "tar_at_far": fits[dlib_flip][1]
        }  # fmt: skip
    dlib_flip = fits[True][:2] > fits[False][:2]
    _, _, cos, mu, sigma, weights, fused = fits[dlib_flip]
    # Default thresholds: FAR <= 1e-3 on these pairs, rounded UP (FAR stays <= 1e-3).
    # dlib keeps its documented 0.925 (config.py explains it: the same rule).
    thresholds = {
        "dlib": DLIB_THRESHOLD,
        "faceres": _ceil_to(tar_at_far(cos["faceres"], same)[1], 0.005),
        FUSED_NAME: _ceil_to(tar_at_far(fused, same)[1], 0.05),
    }
    # Margins: dlib's 0.02 cosine is 0.02/sigma_dlib impostor deviations; the same lead
    # in each other score's units (a fused z-score is in impostor deviations already).
    margins = {
        "dlib": DLIB_MARGIN,
        "faceres": round(DLIB_MARGIN * sigma["faceres"] / sigma["dlib"], 4),
        FUSED_NAME: round(DLIB_MARGIN / sigma["dlib"], 3),
    }
    for name, sc in (("dlib", dlib_alone), ("faceres", cos["faceres"]), (FUSED_NAME, fused)):
        t = best_threshold(sc, same)
        figures[name] = {
            "train_accuracy": accuracy(sc, same, t),
            "train_tar_at_far": tar_at_far(sc, same)[0],
            "train_far_at_default": float(np.mean(np.nan_to_num(sc[~same], nan=-np.inf)
                                                  >= thresholds[name])),
        }  # fmt: skip
    figures = json.loads(json.dumps(figures), parse_float=lambda x: round(float(x), 6))
    fitted_on = {
        "pairs_file": source,
        "pairs": len(train),
        "images": len(names),
        "images_without_face": sum(channels["dlib"][n] is None for n in names),
    }
    return Calibration(
        FUSED_NAME,
        mean,
        flip,
        {k: round(v, 6) for k, v in mu.items()},
        {k: round(v, 6) for k, v in sigma.items()},
        weights,
        thresholds,
        margins,
        fitted_on,
        figures,
        dlib_flip,
    )


def _dlib_flipped(channels: dict, names: Sequence[str]) -> dict[str, np.ndarray | None]:
    """dlib vectors averaged with their mirror image's (unit), as DlibEmbedder(flip=True)."""
    out: dict[str, np.ndarray | None] = {}
    for n in names:
        a, b = channels["dlib"][n], channels["dlib-flip"][n]
        if a is None or b is None:
            out[n] = None
        else:
            v = np.asarray(a, np.float32) + np.asarray(b, np.float32)
            out[n] = v / float(np.linalg.norm(v))
    return out


def _subset(channels: dict, names: Sequence[str]) -> dict:
    return {c: {n: v[n] for n in names} for c, v in channels.items()}


def embedder_scores(
    pairs: Sequence[Pair], channels: dict, calibration: Calibration
) -> dict[str, np.ndarray]:
    """Score per pair of each embedder of :data:`EMBEDDERS` (cosine; fused: z-score sum)."""
    names = _names(pairs)
    sub = _subset(channels, names)
    dlib = pair_scores(pairs, sub["dlib"])
    faceres = pair_scores(
        pairs, faceres_vectors(sub, calibration.faceres_mean, calibration.faceres_flip)
    )
    part = pair_scores(pairs, _dlib_flipped(sub, names)) if calibration.dlib_flip else dlib
    fused = fused_scores({"dlib": part, "faceres": faceres}, calibration)
    return {"dlib": dlib, "faceres": faceres, "fused": fused}


# --------------------------------------------------------------------------- report


@dataclass
class LfwReport:
    """What ``safecity eval lfw`` prints (``format``) or emits as JSON (``to_dict``)."""

    protocol: str  # "view2" (10 folds) or "dev"
    embedder: str
    pairs: int
    accuracy: float
    accuracy_std: float | None  # over folds (View 2 only)
    threshold: float  # cosine; View 2: mean of the fold thresholds
    threshold_std: float | None
    tar_at_far: float
    far_threshold: float
    errors: int  # wrongly decided pairs, no-face pairs included
    no_face_images: int
    no_face_pairs: int
    images: int
    roc_png: Path
    seconds: float
    far_target: float = FAR_TARGET
    train_pairs: int | None = None
    train_accuracy: float | None = None
    no_face_list: list[str] = field(default_factory=list)
    # TAR, FAR and accuracy on the test pairs at the thresholds the system uses.
    at_threshold: list[dict[str, float]] = field(default_factory=list)
    # Every embedder's figures (the fields above repeat those of ``embedder``):
    # name → accuracy, accuracy_std, threshold, threshold_std, tar_at_far,
    # far_threshold, errors, no_face_pairs, train_accuracy.
    per_embedder: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The fusion fitted on the training pairs (development view only).
    fusion: dict[str, Any] | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["roc_png"] = str(self.roc_png)
        return d

    def format(self) -> str:
        acc = f"{100 * self.accuracy:.2f} %"
        if self.accuracy_std is not None:
            acc += f" ± {100 * self.accuracy_std:.2f} (10 folds)"
        thr = f"{self.threshold:.4f}"
        if self.threshold_std is not None:
            thr += f" ± {self.threshold_std:.4f} (chosen on the other nine folds)"
        elif self.train_pairs:
            thr += f" (chosen on {self.train_pairs} training pairs, accuracy there "
            thr += f"{100 * (self.train_accuracy or 0):.2f} %)"
        unit = "fused" if self.embedder == "fused" else "cosine"
        lines = [
            f"LFW {'View 2' if self.protocol == 'view2' else 'development view'}, "
            f"embedder {self.embedder}",
            f"  pairs               {self.pairs} ({self.errors} decided wrongly)",
            f"  accuracy            {acc}",
            f"  {'threshold (' + unit + ')':<20}{thr}",
            f"  {'TAR @ FAR=' + format(self.far_target, 'g'):<20}{100 * self.tar_at_far:.2f} % "
            f"(threshold {self.far_threshold:.4f})",
            f"  images without face {self.no_face_images} of {self.images} "
            f"({self.no_face_pairs} pairs counted as errors)",
            *(
                f"  at threshold {p['threshold']:.3f}  TAR {100 * p['tar']:.2f} %, "
                f"FAR {100 * p['far']:.3f} %, accuracy {100 * p['accuracy']:.2f} %"
                for p in self.at_threshold
            ),
            *self._table(),
            f"  ROC                 {self.roc_png}",
            f"  time                {self.seconds:.0f} s",
        ]
        return "\n".join(lines)

    def _table(self) -> list[str]:
        if not self.per_embedder:
            return []
        far = "TAR@FAR=" + format(self.far_target, "g")
        lines = [f"  per embedder        {'accuracy':<18} {far:<10} threshold"]
        for name, r in self.per_embedder.items():
            acc = f"{100 * r['accuracy']:.2f} %"
            if r.get("accuracy_std") is not None:
                acc += f" ± {100 * r['accuracy_std']:.2f}"
            lines.append(
                f"    {name:<17} {acc:<18} {100 * r['tar_at_far']:6.2f} %  "
                f"{r['threshold']:.4f}  ({r['errors']} wrong)"
            )
        if self.fusion:
            w = self.fusion["weights"]
            lines.append(
                f"  fusion              w_dlib {w[0]:.2f}, w_faceres {w[1]:.2f} (z-scores over "
                f"impostor pairs), mirror averaging: dlib part "
                f"{'on' if self.fusion.get('dlib_flip') else 'off'}, FaceRes "
                f"{'on' if self.fusion['faceres_flip'] else 'off'}; fitted on the training pairs"
            )
        return lines


def _resolve_images(images: Path, sample: str) -> Path:
    """Accept both ``DIR`` and its parent when ``DIR`` is called ``images``."""
    if not (images / sample).exists() and (images / "images" / sample).exists():
        return images / "images"
    return images


@dataclass
class _Result:
    """One embedder's figures on the test pairs."""

    accuracy: float
    accuracy_std: float | None
    threshold: float
    threshold_std: float | None
    tar_at_far: float
    far_threshold: float
    errors: int
    no_face_pairs: int
    train_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _judge(
    scores: np.ndarray,
    same: np.ndarray,
    folds: np.ndarray | None,
    train_scores: np.ndarray | None,
    train_same: np.ndarray | None,
) -> _Result:
    """Accuracy (threshold from the train pairs, or per fold from the other folds), TAR."""
    train_accuracy = None
    if folds is not None:
        accs, thrs, correct = [], [], 0
        fold_scores = train_scores if train_scores is not None else None
        for k in range(int(folds.max()) + 1):
            held = folds == k
            # per-fold scores of the training folds (fusion fitted without fold k)
            sc = scores if fold_scores is None else fold_scores[k]
            t = best_threshold(sc[~held], same[~held])
            accs.append(accuracy(scores[held], same[held], t))
            thrs.append(t)
            correct += round(accs[-1] * held.sum())
        acc, acc_std = float(np.mean(accs)), float(np.std(accs))
        threshold, threshold_std = float(np.mean(thrs)), float(np.std(thrs))
        errors = len(scores) - correct
    else:
        assert train_scores is not None and train_same is not None
        threshold = best_threshold(train_scores, train_same)
        train_accuracy = accuracy(train_scores, train_same, threshold)
        acc, acc_std, threshold_std = accuracy(scores, same, threshold), None, None
        errors = len(scores) - round(acc * len(scores))
    tar, far_thr = tar_at_far(scores, same)
    return _Result(
        acc, acc_std, threshold, threshold_std, tar, far_thr, int(errors),
        int(np.isnan(scores).sum()), train_accuracy,
    )  # fmt: skip


def evaluate_lfw(
    pairs: Path,
    images: Path,
    train: Path | None,
    roc_png: Path,
    progress: bool = True,
    workers: int | None = None,
    operating_thresholds: tuple[float, ...] = (),
    embedder: str = "dlib",
    cache: Path | None = None,
) -> LfwReport:
    """Run the LFW protocol the pairs file asks for and write the ROC plot to ``roc_png``.

    Every embedder of :data:`EMBEDDERS` is measured (``per_embedder``); the
    report's own fields are those of ``embedder`` (the configured one, in its
    own score units). The fusion (FaceRes mean, mirror, z-statistics, weight) is
    fitted on the training pairs: ``train`` for the development view, the other
    nine folds for each fold of View 2. ``operating_thresholds`` (the configured
    matcher threshold, in ``embedder``'s units) are measured too, for the DPIA.
    ``cache``: a folder of embedding caches (see :func:`load_cache`).
    """
    from safecity.governance.accuracy import operating_point

    if embedder not in EMBEDDERS:
        raise ConfigError(
            f"LFW evaluation knows the embedders {', '.join(EMBEDDERS)}; not '{embedder}'"
        )
    started = time.perf_counter()
    test = read_pairs(pairs)
    if test.folds == 1 and train is None:
        raise ConfigError(
            f"{pairs} is a development-view pairs file; give --train pairsDevTrain.txt "
            "to choose the threshold"
        )
    if test.folds > 1 and train is not None:
        raise ConfigError(
            f"{pairs} is a View 2 file whose thresholds come from its own folds; omit --train"
        )
    train_file = read_pairs(train) if train is not None else None
    all_pairs = test.pairs + (train_file.pairs if train_file else [])
    images = _resolve_images(Path(images), all_pairs[0].a)
    names = _names(all_pairs)
    missing = [n for n in names if not (images / n).is_file()]
    if missing:
        raise ConfigError(
            f"{len(missing)} images named in the pairs files are missing under {images}, "
            f"for example {missing[0]}"
        )
    workers = workers or min(2, os.cpu_count() or 1)
    channels = lfw_channels(names, images, FIT_CHANNELS, cache, workers, progress)
    no_face = sorted(n for n in names if channels["dlib"][n] is None)

    same = np.array([p.same for p in test.pairs])
    results: dict[str, _Result] = {}
    if test.folds > 1:
        folds = np.array([p.fold for p in test.pairs])
        # Fusion fitted per fold on the other nine; each fold scored with its own fit.
        fold_scores: dict[str, list[np.ndarray]] = {e: [] for e in EMBEDDERS}
        scores = {e: np.full(len(test.pairs), np.nan) for e in EMBEDDERS}
        for k in range(test.folds):
            held = folds == k
            rest = [p for p, h in zip(test.pairs, held, strict=True) if not h]
            cal = fit_fusion(rest, channels, f"{Path(pairs).name}, folds other than {k + 1}")
            all_scores = embedder_scores(test.pairs, channels, cal)
            for e in EMBEDDERS:
                fold_scores[e].append(all_scores[e])
                scores[e][held] = all_scores[e][held]
        for e in EMBEDDERS:
            results[e] = _judge(scores[e], same, folds, fold_scores[e], None)  # type: ignore[arg-type]
        calibration = None
    else:
        assert train_file is not None and train is not None
        calibration = fit_fusion(train_file.pairs, channels, Path(train).name)
        scores = embedder_scores(test.pairs, channels, calibration)
        train_scores = embedder_scores(train_file.pairs, channels, calibration)
        train_same = np.array([p.same for p in train_file.pairs])
        for e in EMBEDDERS:
            results[e] = _judge(scores[e], same, None, train_scores[e], train_same)
    main = results[embedder]
    protocol = "view2" if test.folds > 1 else "dev"
    view = "View 2" if protocol == "view2" else "dev test"
    curves = {}
    for e in EMBEDDERS:
        far, tar_curve = roc_curve(scores[e], same)
        curves[f"{e}: {100 * results[e].accuracy:.2f} %"] = (far, tar_curve)
    filled = np.where(np.isnan(scores[embedder]), -np.inf, scores[embedder])
    point = (
        float(np.mean(filled[~same] >= main.threshold)),
        float(np.mean(filled[same] >= main.threshold)),
    )
    _plot_roc(Path(roc_png), curves, f"LFW {view}: accuracy per embedder", point)
    return LfwReport(
        protocol=protocol,
        embedder=embedder,
        pairs=len(test.pairs),
        accuracy=main.accuracy,
        accuracy_std=main.accuracy_std,
        threshold=main.threshold,
        threshold_std=main.threshold_std,
        tar_at_far=main.tar_at_far,
        far_threshold=main.far_threshold,
        errors=main.errors,
        no_face_images=len(no_face),
        no_face_pairs=main.no_face_pairs,
        images=len(names),
        roc_png=Path(roc_png),
        seconds=time.perf_counter() - started,
        train_pairs=len(train_file.pairs) if train_file else None,
        train_accuracy=main.train_accuracy,
        no_face_list=no_face,
        at_threshold=[operating_point(scores[embedder], same, t) for t in operating_thresholds],
        per_embedder={e: r.to_dict() for e, r in results.items()},
        fusion=None if calibration is None else {
            "name": calibration.name,
            "weights": list(calibration.weights),
            "mu": calibration.mu,
            "sigma": calibration.sigma,
            "faceres_flip": calibration.faceres_flip,
            "dlib_flip": calibration.dlib_flip,
            "fitted_on": calibration.fitted_on,
            "figures": calibration.figures,
        },
    )  # fmt: skip


def fit_lfw_calibration(
    train: Path,
    images: Path,
    cache: Path | None = None,
    progress: bool = False,
    workers: int | None = None,
) -> Calibration:
    """:func:`fit_fusion` on a development-view training pairs file (embeds what it needs)."""
    parsed = read_pairs(train)
    if parsed.folds != 1:
        raise ConfigError(
            f"{train} is a View 2 pairs file; fit the fusion on pairsDevTrain.txt (View 2's "
            "folds are for testing)"
        )
    if "test" in Path(train).name.lower():
        raise ConfigError(f"{train} looks like test pairs; fit on pairsDevTrain.txt, never on test")
    images = _resolve_images(Path(images), parsed.pairs[0].a)
    names = _names(parsed.pairs)
    missing = [n for n in names if not (images / n).is_file()]
    if missing:
        raise ConfigError(
            f"{len(missing)} images named in {train} are missing under {images}, "
            f"for example {missing[0]}"
        )
    workers = workers or min(2, os.cpu_count() or 1)
    channels = lfw_channels(names, images, FIT_CHANNELS, cache, workers, progress)
    return fit_fusion(parsed.pairs, channels, Path(train).name)
