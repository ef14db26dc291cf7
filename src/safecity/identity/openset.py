"""Open-set 1:N identification figures (``safecity eval identify``).

A watchlist search is 1:N and open-set: most faces a camera sees belong to
nobody on the list. Two error rates matter (NIST FRVT 1:N definitions):

- **FNIR** (false-negative identification rate) at threshold *t*: the share of
  *mated* searches (the person is enrolled) in which the enrolled mate is not
  the top candidate with a score ≥ *t*: a wanted person walks past unseen.
- **FPIR** (false-positive identification rate) at *t*: the share of *non-mated*
  searches (the person is not enrolled) whose top score is ≥ *t*: an alarm on a
  passer-by.

The threshold for a target FPIR (10 %, 1 %, 0.1 %) is the lowest score at which
the non-mated searches raise at most that share of alarms; FNIR is then read
at that threshold. **Rank-1** is the share of mated searches whose mate is the
top candidate, whatever its score. A tie between the mate and another person at
the top counts as a miss (the system could not tell them apart).

The split of a folder ``DIR/<Name>/<image>`` (:func:`split_folder`): for each
person with at least two images, the first image by sorted file name is the
gallery (enrolled) image and the others are mated probes; every image of a
person with a single image is a non-mated probe. So the gallery holds N persons,
one template each.

An image without a face (none found, or unreadable) is kept in the counts: as a
mated probe it is a miss, as a non-mated probe it raises no alarm, as a gallery
image its person cannot be enrolled and all their mated probes are misses.

FPIR grows with the size N of the list searched: a passer-by has N chances to
look like someone on it. :meth:`Searches.fpir_for_size` estimates FPIR at
another N from the impostor (different-person) score distribution:
FPIR(N) ≈ 1 − (1 − FMR(t))^N, FMR(t) being the share of single impostor
comparisons scoring ≥ t (an estimate: it assumes comparisons independent).

>>> gallery_ids = np.array([0, 1])
>>> mated = np.array([[0.9, 0.2], [0.3, 0.4]])   # probe of 0 (hit), probe of 0 (missed)
>>> nonmated = np.array([[0.5, 0.1], [0.2, 0.3]])
>>> s = Searches.from_scores(mated, np.array([0, 0]), nonmated, gallery_ids)
>>> s.rank1, s.fpir(0.45), s.fnir(0.45)
(0.5, 0.5, 0.5)
>>> s.threshold_for_fpir(0.0) > 0.5, s.fnir(s.threshold_for_fpir(0.0))
(True, 0.5)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from safecity.errors import ConfigError

log = logging.getLogger(__name__)

#: FPIR targets the evaluation reports.
FPIR_TARGETS = (0.1, 0.01, 0.001)
#: Highest impostor scores kept in a saved evaluation: FMR(t) there estimates FPIR at another N.
# 20 000 of LFW-dev's 2.2 M comparisons: FMR down to about 1 %, past any useful threshold.
IMPOSTOR_TAIL = 20_000
#: Image file endings read from a folder.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


# --------------------------------------------------------------------------- the split


@dataclass(frozen=True)
class Split:
    """Images (paths relative to the folder) by role; each entry is ``(person, path)``."""

    gallery: tuple[tuple[str, str], ...]
    mated: tuple[tuple[str, str], ...]
    nonmated: tuple[tuple[str, str], ...]

    @property
    def paths(self) -> list[str]:
        """Every image of the split once."""
        return [p for _, p in (*self.gallery, *self.mated, *self.nonmated)]


def split_people(people: Mapping[str, Sequence[str]]) -> Split:
    """Gallery = first image (sorted) of each person with ≥ 2; the rest mated; singles non-mated.

    >>> sp = split_people({"A": ["A/2.jpg", "A/1.jpg"], "B": ["B/1.jpg"]})
    >>> sp.gallery, sp.mated, sp.nonmated
    ((('A', 'A/1.jpg'),), (('A', 'A/2.jpg'),), (('B', 'B/1.jpg'),))
    """
    gallery, mated, nonmated = [], [], []
    for person in sorted(people):
        images = sorted(people[person], key=lambda p: Path(p).name)
        if len(images) >= 2:
            gallery.append((person, images[0]))
            mated.extend((person, p) for p in images[1:])
        elif images:
            nonmated.append((person, images[0]))
    return Split(tuple(gallery), tuple(mated), tuple(nonmated))


def split_folder(images: Path) -> Split:
    """Read ``images/<Name>/<image>`` and split it (see :func:`split_people`).

    Raises :class:`ConfigError` with a plain reason when the folder is missing,
    holds no person folders with images, or no person has two images.
    """
    images = Path(images)
    if not images.exists():
        raise ConfigError(f"no such folder: {images}")
    if not images.is_dir():
        raise ConfigError(f"{images} is a file; give a folder of <Name>/<image> files")
    people: dict[str, list[str]] = {}
    try:
        for folder in sorted(images.iterdir()):
            if not folder.is_dir():
                continue
            files = [
                f"{folder.name}/{f.name}"
                for f in sorted(folder.iterdir())
                if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
            ]
            if files:
                people[folder.name] = files
    except OSError as error:
        raise ConfigError(f"cannot read the folder {images}: {error.strerror or error}") from None
    if not people:
        raise ConfigError(
            f"{images} holds no person folders with images: expected {images}/<Name>/<image> "
            f"({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    split = split_people(people)
    if not split.gallery:
        raise ConfigError(
            f"no person in {images} has two images or more: an identification test needs "
            "one image to enrol and another to search with"
        )
    return split


# --------------------------------------------------------------------------- searches


def cosine_scores(probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(P, G) inner products of unit vectors: the cosine similarity of every probe to every row.

    >>> cosine_scores(np.eye(2), np.array([[1.0, 0.0]])).tolist()
    [[1.0], [0.0]]
    """
    return np.asarray(probes, np.float64) @ np.asarray(gallery, np.float64).T


def _finite(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, np.float64)
    return array[np.isfinite(array)]


@dataclass(frozen=True)
class Searches:
    """The outcome of every search, reduced to what every figure needs.

    ``mated_hits``: for each mated search whose mate came first, the mate's score
    (misses at rank 1 are absent). ``nonmated_top``: each non-mated search's top
    score (searches without a face are absent). ``impostor_tail``: the highest
    single impostor scores (non-mated probe against one gallery row), of
    ``impostors`` in all. Counts include the searches without a face.
    """

    mated: int
    nonmated: int
    gallery_size: int
    mated_hits: np.ndarray  # sorted ascending
    nonmated_top: np.ndarray  # sorted descending
    impostor_tail: np.ndarray  # sorted descending
    impostors: int

    @classmethod
    def from_scores(
        cls,
        mated_scores: np.ndarray,
        mate_ids: np.ndarray,
        nonmated_scores: np.ndarray,
        gallery_ids: np.ndarray,
        *,
        tail: int = IMPOSTOR_TAIL,
    ) -> Searches:
        """From score matrices: rows are searches, columns gallery rows (NaN: no face).

        ``gallery_ids`` names the person of each column (a person may have
        several); ``mate_ids`` the person of each mated search. A row of NaN is a
        search without a face; a column of NaN a gallery image without one.
        """
        gallery_ids = np.asarray(gallery_ids)
        mated_scores = np.asarray(mated_scores, np.float64).reshape(-1, len(gallery_ids))
        nonmated_scores = np.asarray(nonmated_scores, np.float64).reshape(-1, len(gallery_ids))
        mate_ids = np.asarray(mate_ids)
        m = np.where(np.isnan(mated_scores), -np.inf, mated_scores)
        hits = []
        for row, mate in zip(m, mate_ids, strict=True):
            is_mate = gallery_ids == mate
            mate_best = row[is_mate].max() if is_mate.any() else -np.inf
            other_best = row[~is_mate].max() if (~is_mate).any() else -np.inf
            if np.isfinite(mate_best) and mate_best > other_best:
                hits.append(mate_best)
        n = np.where(np.isnan(nonmated_scores), -np.inf, nonmated_scores)
        top = n.max(axis=1) if n.shape[1] else np.full(len(n), -np.inf)
        flat = n[np.isfinite(n)]
        if len(flat) > tail:
            flat = np.partition(flat, len(flat) - tail)[len(flat) - tail :]
        return cls(
            mated=len(m),
            nonmated=len(n),
            gallery_size=len(np.unique(gallery_ids)),
            mated_hits=np.sort(np.asarray(hits, np.float64)),
            nonmated_top=np.sort(_finite(top))[::-1],
            impostor_tail=np.sort(flat)[::-1],
            impostors=int(n.size),
        )

    # -- figures --------------------------------------------------------------------
    @property
    def rank1(self) -> float:
        """Share of mated searches whose mate is the top candidate (any score)."""
        return len(self.mated_hits) / self.mated if self.mated else 0.0

    def fnir(self, threshold: float) -> float:
        """Share of mated searches missed at ``threshold`` (mate not first, or below it)."""
        if not self.mated:
            return 0.0
        found = len(self.mated_hits) - np.searchsorted(self.mated_hits, threshold, side="left")
        return 1.0 - float(found) / self.mated

    def fpir(self, threshold: float) -> float:
        """Share of non-mated searches whose top score reaches ``threshold`` (an alarm)."""
        if not self.nonmated:
            return 0.0
        return float(np.count_nonzero(self.nonmated_top >= threshold)) / self.nonmated

    def fmr(self, threshold: float) -> float | None:
        """Share of single impostor comparisons scoring ≥ ``threshold``.

        None when ``threshold`` lies below the kept tail (the share is then at
        least ``len(impostor_tail) / impostors``, too coarse to be stated).
        """
        if not self.impostors:
            return None
        above = int(np.count_nonzero(self.impostor_tail >= threshold))
        if above == len(self.impostor_tail) and above < self.impostors:
            return None
        return above / self.impostors

    def threshold_for_fpir(self, target: float) -> float:
        """The lowest threshold at which FPIR ≤ ``target``.

        With Q non-mated searches FPIR moves in steps of 1/Q: a target below
        that means no alarm at all (the threshold just above the highest top
        score). ``-inf`` when every search may alarm and none has a score.
        """
        allowed = math.floor(target * self.nonmated + 1e-9)
        if allowed >= len(self.nonmated_top):
            return float(self.nonmated_top[-1]) if len(self.nonmated_top) else -math.inf
        # Just above the (allowed+1)-th highest top score: ties with it stay below.
        return float(np.nextafter(self.nonmated_top[allowed], np.inf))

    def fpir_for_size(self, threshold: float, size: int) -> float | None:
        """Estimated FPIR when searching a list of ``size`` persons: 1 − (1 − FMR)^size."""
        fmr = self.fmr(threshold)
        if fmr is None:
            return None
        return float(-np.expm1(size * np.log1p(-fmr))) if fmr < 1 else 1.0

    def det(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, FPIR, FNIR) at every distinct score, thresholds descending."""
        values = np.concatenate([self.mated_hits, self.nonmated_top])
        thresholds = np.unique(values)[::-1]
        if not len(thresholds):
            return thresholds, thresholds.copy(), thresholds.copy()
        found = len(self.mated_hits) - np.searchsorted(self.mated_hits, thresholds, side="left")
        fnir = 1.0 - found / max(self.mated, 1)
        ascending = self.nonmated_top[::-1]
        alarms = len(ascending) - np.searchsorted(ascending, thresholds, side="left")
        fpir = alarms / max(self.nonmated, 1)
        return thresholds, fpir, fnir

    def operating_point(self, threshold: float) -> dict[str, float | None]:
        """FNIR, FPIR (and FMR where known) at one threshold."""
        return {
            "threshold": float(threshold),
            "fnir": self.fnir(threshold),
            "fpir": self.fpir(threshold),
            "fmr": self.fmr(threshold),
        }

    # -- saving ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The raw outcome (JSON-safe), from which :meth:`from_dict` recomputes every figure."""
        return {
            "mated": self.mated,
            "nonmated": self.nonmated,
            "gallery_size": self.gallery_size,
            "mated_hits": self.mated_hits.tolist(),
            "nonmated_top": self.nonmated_top.tolist(),
            # six decimals are plenty for a rate, and keep the saved file small
            "impostor_tail": np.round(self.impostor_tail, 6).tolist(),
            "impostors": self.impostors,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Searches:
        """Read back :meth:`to_dict`; ``ValueError`` when it is not one."""
        try:
            return cls(
                mated=int(data["mated"]),
                nonmated=int(data["nonmated"]),
                gallery_size=int(data["gallery_size"]),
                mated_hits=np.sort(_finite(data["mated_hits"])),
                nonmated_top=np.sort(_finite(data["nonmated_top"]))[::-1],
                impostor_tail=np.sort(_finite(data["impostor_tail"]))[::-1],
                impostors=int(data["impostors"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a saved open-set outcome ({error})") from None


# --------------------------------------------------------------------------- results


@dataclass
class EmbedderResult:
    """The figures of one embedder (or of the fused score) on one split."""

    embedder: str
    searches: Searches
    no_face_gallery: int
    no_face_mated: int
    no_face_nonmated: int
    at_threshold: list[dict[str, float | None]] = field(default_factory=list)

    def points(self) -> list[dict[str, float]]:
        """Per FPIR target: the threshold, the FPIR actually reached there, and FNIR."""
        out = []
        for target in FPIR_TARGETS:
            t = self.searches.threshold_for_fpir(target)
            out.append(
                {
                    "fpir_target": target,
                    "threshold": t if math.isfinite(t) else None,
                    "fpir": self.searches.fpir(t),
                    "fnir": self.searches.fnir(t),
                }
            )
        return out

    def to_dict(self, scores: bool = True) -> dict[str, Any]:
        s = self.searches
        d: dict[str, Any] = {
            "embedder": self.embedder,
            "gallery_size": s.gallery_size,
            "mated": s.mated,
            "nonmated": s.nonmated,
            "rank1": s.rank1,
            "fnir_at_fpir": self.points(),
            "at_threshold": self.at_threshold,
            "no_face": {
                "gallery": self.no_face_gallery,
                "mated": self.no_face_mated,
                "nonmated": self.no_face_nonmated,
            },
        }
        if scores:
            d["searches"] = s.to_dict()
        return d


@dataclass
class IdentifyReport:
    """What ``safecity eval identify`` prints (``format``), emits (``to_dict``) and saves."""

    images: str
    gallery_size: int
    mated: int
    nonmated: int
    results: list[EmbedderResult]
    seconds: float
    det_png: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # embedder → why not evaluated
    protocol: str = "openset-1n"

    def to_dict(self, scores: bool = False) -> dict[str, Any]:
        """``scores=True`` adds the raw search outcomes (what the saved evaluation holds)."""
        return {
            "protocol": self.protocol,
            "images": self.images,
            "gallery_size": self.gallery_size,
            "mated": self.mated,
            "nonmated": self.nonmated,
            "embedders": {r.embedder: r.to_dict(scores) for r in self.results},
            "skipped": dict(self.skipped),
            "det_png": self.det_png,
            "seconds": self.seconds,
            "fpir_targets": list(FPIR_TARGETS),
        }

    def format(self) -> str:
        lines = [
            f"Open-set 1:N identification on {self.images}",
            f"  gallery N           {self.gallery_size} persons (first image of each person "
            "with two or more)",
            f"  mated searches      {self.mated} (their other images)",
            f"  non-mated searches  {self.nonmated} (persons with one image)",
        ]
        for r in self.results:
            lines.append(f"  {r.embedder}")
            lines.append(f"    {'rank-1':<22}{100 * r.searches.rank1:.2f} %")
            for p in r.points():
                thr = "—" if p["threshold"] is None else f"{p['threshold']:.4f}"
                label = f"FNIR @ FPIR {100 * p['fpir_target']:g} %"
                lines.append(
                    f"    {label:<22}{100 * p['fnir']:.2f} %  (threshold {thr}, "
                    f"FPIR there {100 * p['fpir']:.2f} %)"
                )
            for p in r.at_threshold:
                label = f"at threshold {p['threshold']:.4f}"
                lines.append(
                    f"    {label:<22}FNIR {100 * (p['fnir'] or 0):.2f} %, "
                    f"FPIR {100 * (p['fpir'] or 0):.2f} %"
                )
            lines.append(
                f"    {'no face found':<22}gallery {r.no_face_gallery}, mated "
                f"{r.no_face_mated} (misses), non-mated {r.no_face_nonmated} (no alarm)"
            )
        for name, why in self.skipped.items():
            lines.append(f"  {name}: not evaluated ({why})")
        if self.det_png:
            lines.append(f"  DET curve           {self.det_png}")
        lines.append(f"  time                {self.seconds:.0f} s")
        return "\n".join(lines)


# --------------------------------------------------------------------------- evaluation

#: (relative paths) → vectors (None: no face) for one embedder.
VectorSource = Callable[[Sequence[str]], Mapping[str, np.ndarray | None]]
#: (probe rows, gallery rows) → (P, G) scores.
ScoreFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EmbedderSpec:
    """How to evaluate one embedder: where its vectors come from and how two are scored."""

    name: str
    vectors: VectorSource
    score: ScoreFunction = cosine_scores


def _matrix(vectors: Mapping[str, np.ndarray | None], paths: Sequence[str]) -> np.ndarray:
    dim = next((len(v) for v in vectors.values() if v is not None), 1)
    out = np.full((len(paths), dim), np.nan, np.float64)
    for i, p in enumerate(paths):
        v = vectors.get(p)
        if v is not None:
            out[i] = v
    return out


def _scores(spec: EmbedderSpec, probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Scores with NaN wherever the probe or the gallery image has no face."""
    if not len(probes) or not len(gallery):
        return np.zeros((len(probes), len(gallery)))
    good_p, good_g = ~np.isnan(probes).any(axis=1), ~np.isnan(gallery).any(axis=1)
    out = np.full((len(probes), len(gallery)), np.nan)
    if good_p.any() and good_g.any():
        part = spec.score(probes[good_p], gallery[good_g])
        out[np.ix_(good_p, good_g)] = part
    return out


def evaluate_split(
    split: Split,
    spec: EmbedderSpec,
    thresholds: Sequence[float] = (),
) -> EmbedderResult:
    """Every figure of one embedder on ``split``; ``thresholds`` are measured too."""
    vectors = spec.vectors(split.paths)
    g_paths = [p for _, p in split.gallery]
    m_paths = [p for _, p in split.mated]
    n_paths = [p for _, p in split.nonmated]
    gallery = _matrix(vectors, g_paths)
    searches = Searches.from_scores(
        _scores(spec, _matrix(vectors, m_paths), gallery),
        np.array([name for name, _ in split.mated], dtype=object),
        _scores(spec, _matrix(vectors, n_paths), gallery),
        np.array([name for name, _ in split.gallery], dtype=object),
    )
    return EmbedderResult(
        embedder=spec.name,
        searches=searches,
        no_face_gallery=sum(vectors.get(p) is None for p in g_paths),
        no_face_mated=sum(vectors.get(p) is None for p in m_paths),
        no_face_nonmated=sum(vectors.get(p) is None for p in n_paths),
        at_threshold=[searches.operating_point(t) for t in thresholds],
    )


def evaluate_identify(
    images: Path,
    specs: Sequence[EmbedderSpec],
    *,
    thresholds: Mapping[str, Sequence[float]] | None = None,
    det_png: Path | None = None,
    skipped: Mapping[str, str] | None = None,
) -> IdentifyReport:
    """Split ``images``, evaluate each embedder of ``specs``, optionally plot the DET curves.

    ``thresholds``: per embedder name, thresholds at which to report FNIR/FPIR
    (the configured one). An unreadable image counts as an image without a face;
    a folder in which no image at all has a face is refused.
    """
    started = time.perf_counter()
    split = split_folder(images)
    thresholds = thresholds or {}
    results = [evaluate_split(split, spec, thresholds.get(spec.name, ())) for spec in specs]
    for r in results:
        total = len(split.paths)
        if r.no_face_gallery + r.no_face_mated + r.no_face_nonmated == total:
            raise ConfigError(
                f"no face was found in any of the {total} images under {images} "
                f"(embedder {r.embedder}): are they readable face photos?"
            )
    if det_png is not None:
        plot_det(Path(det_png), results, str(images))
    return IdentifyReport(
        images=str(images),
        gallery_size=len(split.gallery),
        mated=len(split.mated),
        nonmated=len(split.nonmated),
        results=results,
        seconds=time.perf_counter() - started,
        det_png=str(det_png) if det_png is not None else None,
        skipped=dict(skipped or {}),
    )


#: What ``safecity eval identify`` evaluates unless told otherwise (those available).
DEFAULT_EMBEDDERS = ("dlib", "faceres", "fused")


def embedder_specs(
    kinds: Sequence[str],
    images: Path,
    *,
    workers: int | None = None,
    progress: bool = True,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> tuple[list[EmbedderSpec], dict[str, str]]:
    """The specs of the embedder ``kinds`` this installation has, and why the others are not.

    A single embedder's vectors come from :func:`safecity.identity.embedcache.embed_folder`
    (cached per embedder); the fused one's are made from the dlib and FaceRes
    vectors of the same images (``fuse_vectors``), not embedded again. Scores are
    the matcher's own (:func:`score_function`): cosine, or the fused score.
    """
    from pydantic import ValidationError

    from safecity.config import EmbedderConfig
    from safecity.errors import SafecityError
    from safecity.identity.embedcache import embed_folder
    from safecity.vision.embedder import embedder_name, make_embedder

    options = dict(workers=workers, progress=progress, cache_dir=cache_dir, use_cache=use_cache)
    specs: list[EmbedderSpec] = []
    skipped: dict[str, str] = {}
    for kind in dict.fromkeys(kinds):
        try:
            config = EmbedderConfig(kind=kind)
            name = embedder_name(config)
            make_embedder(config)  # loads its models: a missing one is said now, not later
            score = score_function(name)
        except ValidationError:
            skipped[kind] = "this installation has no such embedder"
            continue
        except SafecityError as error:
            skipped[kind] = str(error)
            continue
        parts = _fused_parts(config)
        if parts:

            def vectors(paths: Sequence[str], parts=parts) -> dict[str, np.ndarray | None]:
                from safecity.vision.embedder import fuse_vectors

                each = [embed_folder(images, paths, k, cache_name=c, **options) for k, c in parts]
                return {
                    p: None
                    if any(e[p] is None for e in each)
                    else fuse_vectors(*(e[p] for e in each))
                    for p in paths
                }

        else:

            def vectors(
                paths: Sequence[str], kind=kind, name=name
            ) -> Mapping[str, np.ndarray | None]:
                return embed_folder(
                    images, paths, kind, cache_name=_cache_name(kind, name), **options
                )

        specs.append(EmbedderSpec(name, vectors, score))
    return specs, skipped


def _cache_name(kind: str, name: str) -> str:
    """The cache file of one embedder.

    FaceRes vectors depend on the calibration's mean descriptor and flip setting:
    their cache is named after a digest of those, so a new calibration never
    reads vectors made under another.
    """
    if kind != "faceres":
        return name
    import hashlib

    try:
        from safecity.identity.calibration import load_calibration
    except ImportError:
        return name
    cal = load_calibration()
    digest = hashlib.sha256(np.asarray(cal.faceres_mean, "<f4").tobytes())
    digest.update(b"flip" if cal.faceres_flip else b"")
    return f"faceres@{digest.hexdigest()[:12]}"


def _fused_parts(config: Any) -> list[tuple[str, str]]:
    """For a fused embedder, its parts as (embedcache kind, cache name); empty for a single one.

    Each part is embedded as the fused embedder embeds it (``fused.<part>``,
    cached under the fused version's name), except where that is the very same
    embedder as a single kind: FaceRes always, dlib when the calibration does
    not mirror-average it.
    """
    if config.kind != "fused":
        return []
    from safecity.identity.calibration import FUSED_NAME, FUSED_PARTS, load_calibration

    cal = load_calibration()
    out = []
    for part in FUSED_PARTS:
        if part == "faceres" or (part == "dlib" and not getattr(cal, "dlib_flip", False)):
            out.append((part, _cache_name(part, part)))
        else:
            out.append((f"fused.{part}", f"{FUSED_NAME}.{part}"))
    return out


def score_function(embedder: str) -> ScoreFunction:
    """The matcher's score of probes against gallery rows for templates named ``embedder``.

    The cosine for a single embedder, the fused score for a fused one (when the
    matcher has :func:`~safecity.identity.matcher.scoring_for`).
    """
    try:
        from safecity.identity.matcher import scoring_for
    except ImportError:
        return cosine_scores

    def score(probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        scoring = scoring_for(embedder, int(np.asarray(gallery).shape[1]))
        rows = scoring.gallery_rows(np.asarray(gallery, np.float32)).astype(np.float64)
        probe = scoring.probe_row(np.asarray(probes, np.float32)).astype(np.float64)
        return probe @ rows.T - scoring.offset

    return score


def plot_det(path: Path, results: Sequence[EmbedderResult], title: str) -> None:
    """DET curves (FNIR against FPIR, log FPIR axis), one line per embedder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    floor = 1e-4  # a log axis cannot show FPIR = 0
    for i, r in enumerate(results):
        _, fpir, fnir = r.searches.det()
        ax.step(np.maximum(fpir, floor), fnir, where="post", lw=1.5, color=f"C{i}", label=(
            f"{r.embedder} (rank-1 {100 * r.searches.rank1:.1f} %)"
        ))  # fmt: skip
        for p in r.points():
            if p["fpir_target"] == 0.01:
                ax.plot([max(p["fpir"], floor)], [p["fnir"]], "o", color=f"C{i}")
    for target in FPIR_TARGETS:
        ax.axvline(target, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("FPIR (share of non-mated searches that alarm)")
    ax.set_ylabel("FNIR (share of mated searches missed)")
    ax.set_title(f"Open-set 1:N, {'/'.join(Path(title).parts[-2:])}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = [
    "DEFAULT_EMBEDDERS",
    "FPIR_TARGETS",
    "EmbedderResult",
    "EmbedderSpec",
    "IdentifyReport",
    "Searches",
    "Split",
    "cosine_scores",
    "embedder_specs",
    "evaluate_identify",
    "evaluate_split",
    "plot_det",
    "split_folder",
    "split_people",
]
