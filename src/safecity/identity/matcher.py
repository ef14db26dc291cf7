"""Match a face vector against the enrolled templates of authorised watchlists.

The gallery is a FAISS ``IndexFlatIP`` of unit vectors (inner product = cosine),
one row per enrolled template, with a :class:`GalleryEntry` per row. A probe
matches a person only if its best score reaches ``threshold`` **and** leads the
best score of any *other* person by at least ``margin``; otherwise the result is
``None`` and the caller drops the vector (privacy invariant 2).

>>> m = FaissMatcher(threshold=0.9, margin=0.02)
>>> m.build(np.eye(2, dtype=np.float32),
...         [GalleryEntry(1, "A", 7, "wanted"), GalleryEntry(2, "B", 7, "wanted")])
>>> m.match(np.array([1.0, 0.1], np.float32)).person_name
'A'
>>> m.match(np.array([1.0, 1.0], np.float32)) is None   # both 0.71: below threshold
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from safecity.config import MatcherConfig
from safecity.vision.types import Match

# When every hit in the first search belongs to one person, search again this much deeper.
_FIRST_K = 32
# Margin of a match when the gallery holds no other person: the distance from the
# score to the lowest possible cosine, so the margin rule never blocks it.
_COSINE_FLOOR = -1.0


@dataclass(frozen=True)
class GalleryEntry:
    """Who one gallery row belongs to, and on which watchlist."""

    person_id: int
    person_name: str
    watchlist_id: int
    watchlist_name: str


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(np.asarray(vectors, np.float32))
    if v.ndim == 1:
        v = v[None]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.where(norms > 0, norms, 1.0))


class FaissMatcher:
    """Threshold-and-margin matcher over a FAISS inner-product index."""

    def __init__(self, threshold: float, margin: float) -> None:
        self.threshold = float(threshold)
        self.margin = float(margin)
        self._index: faiss.IndexFlatIP | None = None
        self._meta: list[GalleryEntry] = []

    @classmethod
    def from_config(cls, config: MatcherConfig | None = None) -> FaissMatcher:
        config = config or MatcherConfig()
        return cls(config.threshold, config.margin)

    def __len__(self) -> int:
        return len(self._meta)

    @property
    def dim(self) -> int | None:
        """Vector length of the gallery, None while it is empty."""
        return None if self._index is None else int(self._index.d)

    def build(self, vectors: np.ndarray, meta: Sequence[GalleryEntry]) -> None:
        """Replace the gallery: one row of ``vectors`` (N, d) per entry of ``meta``.

        Rows are L2-normalised here, so inner product is cosine whatever the caller passed.
        """
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or len(vectors) != len(meta):
            raise ValueError(
                f"need an (N, d) array with one row per entry; got {vectors.shape} "
                f"for {len(meta)} entries"
            )
        if len(meta) == 0:
            self._index, self._meta = None, []
            return
        index = faiss.IndexFlatIP(int(vectors.shape[1]))
        index.add(_unit_rows(vectors))
        self._index, self._meta = index, list(meta)

    def scores(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` cosine scores and row numbers for one probe, best first."""
        if self._index is None:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        probe = _unit_rows(vector)
        if probe.shape[1] != self._index.d:
            raise ValueError(f"probe has {probe.shape[1]} values; the gallery has {self._index.d}")
        sims, rows = self._index.search(probe, min(k, self._index.ntotal))
        keep = rows[0] >= 0
        return sims[0][keep], rows[0][keep]

    def match(self, vector: np.ndarray) -> Match | None:
        """The matched person, or None (below threshold, too close to another person, empty)."""
        if self._index is None or not np.isfinite(vector).all():
            return None  # a broken embedding (NaN from a user's model) matches nobody
        total = self._index.ntotal
        sims, rows = self.scores(vector, _FIRST_K)
        if len(rows) == 0:
            return None
        best = self._meta[int(rows[0])]
        others = self._others(sims, rows, best.person_id)
        if not others and len(rows) < total:
            # Every hit so far is the same person (many templates): look at the whole gallery.
            sims, rows = self.scores(vector, total)
            others = self._others(sims, rows, best.person_id)
        score = float(sims[0])
        runner_up = float(others[0]) if others else _COSINE_FLOOR
        lead = score - runner_up
        if score < self.threshold or lead < self.margin:
            return None
        return Match(
            person_id=best.person_id,
            person_name=best.person_name,
            watchlist_id=best.watchlist_id,
            watchlist_name=best.watchlist_name,
            score=score,
            margin=lead,
        )

    def _others(self, sims: np.ndarray, rows: np.ndarray, person_id: int) -> list[float]:
        """Scores of hits that belong to someone other than ``person_id``, best first."""
        return [
            float(s)
            for s, r in zip(sims, rows, strict=True)
            if self._meta[r].person_id != person_id
        ]
