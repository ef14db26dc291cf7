"""Face-verification accuracy on Labeled Faces in the Wild (``safecity eval lfw``).

Two pairs-file formats are read:

- View 2 ``pairs.txt``: first line ``10 300``, then per fold 300 same-person and
  300 different-person lines. Accuracy is the mean ± std over the ten folds, each
  fold's threshold chosen on the other nine.
- Development view ``pairsDevTrain.txt`` / ``pairsDevTest.txt``: first line N,
  then N same and N different lines. The threshold is chosen on ``train`` and
  the accuracy reported on ``pairs``.

Lines are ``Name i j`` (same) or ``Name1 i Name2 j`` (different); image i of Name
is ``images/Name/Name_000i.jpg``. Each image is embedded once (YuNet, the face
nearest the centre; dlib alignment and ResNet). An image without a face is not
skipped: every pair that uses it counts as an error for accuracy, and as a
rejection for the ROC (no face, no match). Results on LFW do not show fitness
for any operational use.

>>> report = evaluate_lfw(Path("pairsDevTest.txt"), Path("images"),  # doctest: +SKIP
...                       Path("pairsDevTrain.txt"), Path("roc.png"), progress=False)
>>> print(report.format())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from safecity.errors import ConfigError
from safecity.progress import Progress

log = logging.getLogger(__name__)

FAR_TARGET = 1e-3


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

_worker: tuple | None = None  # (FaceDetector, DlibEmbedder) of this process


def _init_pool_worker() -> None:
    # One OpenCV thread per process: the pool already fills the cores.
    cv2.setNumThreads(1)
    _init_worker()


def _init_worker() -> None:
    global _worker
    from safecity.vision.embedder import DlibEmbedder
    from safecity.vision.faces import FaceDetector

    _worker = (FaceDetector(), DlibEmbedder())


def embed_lfw_image(path: str) -> np.ndarray | None:
    """Unit vector of the face nearest the centre of one LFW image, None if none is found."""
    if _worker is None:
        _init_worker()
    detector, embedder = _worker  # type: ignore[misc]
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        return None
    faces = detector.detect(image)
    if not faces:
        return None
    h, w = image.shape[:2]
    centre = np.array([w / 2, h / 2], np.float32)
    face = min(faces, key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)))
    return embedder.embed(image, face)


def embed_images(
    paths: Sequence[str], workers: int, progress: bool
) -> dict[str, np.ndarray | None]:
    """Embed each path once, over a pool of ``workers`` processes (1: in this process).

    ``progress``: a bar on a terminal; otherwise (and always when False) a progress
    line in the log every ``safecity.progress.LOG_INTERVAL_S`` seconds.
    """
    results: Iterable[np.ndarray | None]
    if workers <= 1:
        results = map(embed_lfw_image, paths)
        pool = None
    else:
        # spawn: the workers load dlib themselves rather than inherit a forked copy.
        pool = ProcessPoolExecutor(
            workers, multiprocessing.get_context("spawn"), initializer=_init_pool_worker
        )
        results = pool.map(embed_lfw_image, paths, chunksize=32)
    bar = Progress(
        "embedding LFW images", len(paths), "img", log, bar=None if progress else False,
        counts=("no-face",),
    )  # fmt: skip
    vectors: dict[str, np.ndarray | None] = {}
    try:
        for path, vector in zip(paths, results, strict=True):
            vectors[path] = vector
            bar.advance(**{"no-face": vector is None})
        bar.close()
        return vectors
    finally:
        bar.close(finished=False)
        if pool is not None:
            pool.shutdown()


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
    path: Path, far: np.ndarray, tar: np.ndarray, title: str, point: tuple[float, float]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    floor = 1e-4  # a log axis cannot show FAR = 0
    ax.plot(np.maximum(far, floor), tar, lw=1.5, label="ROC")
    ax.axvline(FAR_TARGET, color="grey", ls="--", lw=1, label="FAR = 1e-3")
    ax.plot([max(point[0], floor)], [point[1]], "o", color="C3", label="chosen threshold")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.8, 1.0)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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
        lines = [
            f"LFW {'View 2' if self.protocol == 'view2' else 'development view'}, "
            f"embedder {self.embedder}",
            f"  pairs               {self.pairs} ({self.errors} decided wrongly)",
            f"  accuracy            {acc}",
            f"  threshold (cosine)  {thr}",
            f"  {'TAR @ FAR=' + format(self.far_target, 'g'):<20}{100 * self.tar_at_far:.2f} % "
            f"(threshold {self.far_threshold:.4f})",
            f"  images without face {self.no_face_images} of {self.images} "
            f"({self.no_face_pairs} pairs counted as errors)",
            *(
                f"  at threshold {p['threshold']:.3f}  TAR {100 * p['tar']:.2f} %, "
                f"FAR {100 * p['far']:.3f} %, accuracy {100 * p['accuracy']:.2f} %"
                for p in self.at_threshold
            ),
            f"  ROC                 {self.roc_png}",
            f"  time                {self.seconds:.0f} s",
        ]
        return "\n".join(lines)


def _resolve_images(images: Path, sample: str) -> Path:
    """Accept both ``DIR`` and its parent when ``DIR`` is called ``images``."""
    if not (images / sample).exists() and (images / "images" / sample).exists():
        return images / "images"
    return images


def evaluate_lfw(
    pairs: Path,
    images: Path,
    train: Path | None,
    roc_png: Path,
    progress: bool = True,
    workers: int | None = None,
    operating_thresholds: tuple[float, ...] = (),
) -> LfwReport:
    """Run the LFW protocol the pairs file asks for and write the ROC plot to ``roc_png``.

    ``operating_thresholds`` (the configured matcher threshold) are measured too,
    for the DPIA's accuracy section.
    """
    from safecity.governance.accuracy import operating_point

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
    names = sorted({p.a for p in all_pairs} | {p.b for p in all_pairs})
    missing = [n for n in names if not (images / n).is_file()]
    if missing:
        raise ConfigError(
            f"{len(missing)} images named in the pairs files are missing under {images}, "
            f"for example {missing[0]}"
        )
    workers = workers or min(2, os.cpu_count() or 1)
    vectors_by_path = embed_images([str(images / n) for n in names], workers, progress)
    vectors = {n: vectors_by_path[str(images / n)] for n in names}
    no_face = sorted(n for n, v in vectors.items() if v is None)

    scores = pair_scores(test.pairs, vectors)
    same = np.array([p.same for p in test.pairs])
    no_face_pairs = int(np.isnan(scores).sum())
    train_pairs = train_accuracy = None
    if test.folds > 1:
        folds = np.array([p.fold for p in test.pairs])
        accs, thrs, correct = [], [], 0
        for k in range(test.folds):
            held = folds == k
            t = best_threshold(scores[~held], same[~held])
            accs.append(accuracy(scores[held], same[held], t))
            thrs.append(t)
            correct += round(accs[-1] * held.sum())
        acc, acc_std = float(np.mean(accs)), float(np.std(accs))
        threshold, threshold_std = float(np.mean(thrs)), float(np.std(thrs))
        errors = len(scores) - correct
    else:
        assert train_file is not None
        train_scores = pair_scores(train_file.pairs, vectors)
        train_same = np.array([p.same for p in train_file.pairs])
        threshold = best_threshold(train_scores, train_same)
        train_pairs = len(train_file.pairs)
        train_accuracy = accuracy(train_scores, train_same, threshold)
        acc, acc_std, threshold_std = accuracy(scores, same, threshold), None, None
        errors = len(scores) - round(acc * len(scores))
    tar, far_thr = tar_at_far(scores, same)
    far, tar_curve = roc_curve(scores, same)
    filled = np.where(np.isnan(scores), -np.inf, scores)
    point = (float(np.mean(filled[~same] >= threshold)), float(np.mean(filled[same] >= threshold)))
    protocol = "view2" if test.folds > 1 else "dev"
    view = "View 2" if protocol == "view2" else "dev test"
    title = f"LFW {view}: dlib ResNet, accuracy {100 * acc:.2f} %"
    _plot_roc(Path(roc_png), far, tar_curve, title, point)
    return LfwReport(
        protocol=protocol,
        embedder="dlib",
        pairs=len(test.pairs),
        accuracy=acc,
        accuracy_std=acc_std,
        threshold=threshold,
        threshold_std=threshold_std,
        tar_at_far=tar,
        far_threshold=far_thr,
        errors=int(errors),
        no_face_images=len(no_face),
        no_face_pairs=no_face_pairs,
        images=len(names),
        roc_png=Path(roc_png),
        seconds=time.perf_counter() - started,
        train_pairs=train_pairs,
        train_accuracy=train_accuracy,
        no_face_list=no_face,
        at_threshold=[operating_point(scores, same, t) for t in operating_thresholds],
    )
