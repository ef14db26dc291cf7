"""Match a face vector against the enrolled templates of authorised watchlists.

The gallery is a FAISS ``IndexFlatIP``, one row per enrolled template, with a
:class:`GalleryEntry` per row. A probe matches a person only if its best score
reaches ``threshold`` **and** leads the best score of any *other* person by at
least ``margin``; otherwise the result is ``None`` and the caller drops the
vector (privacy invariant 2).

The score is the embedder's (:class:`Scoring`): the cosine for a single
embedder; for the fused one, ``w·z_dlib + (1 − w)·z_faceres`` with
``z = (cosine − μ)/σ`` (constants from :mod:`safecity.identity.calibration`).
Both are one inner product: gallery rows hold each part unit-normalised, the
probe's part i is unit-normalised and scaled by ``a_i = w_i/σ_i``, so the index
returns ``Σ a_i·cos_i`` and the score is that minus ``b = Σ w_i·μ_i/σ_i``. Any
FAISS index over the concatenated rows can take the flat one's place: above
:data:`~safecity.identity.index.FLAT_MAX` templates an approximate HNSW index
does (:mod:`safecity.identity.index`); smaller galleries are searched exactly.

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

from safecity.config import MatcherConfig, SafecityConfig
from safecity.errors import ConfigError, SafecityError
from safecity.identity import index as gallery_index
from safecity.vision.types import Match

# When every hit in the first search belongs to one person, search again this much deeper.
_FIRST_K = 32
# Vector sizes of the embedders safecity ships (a user's ArcFace model has its own).
_KNOWN_DIMS = {"dlib": 128, "faceres": 1024}


@dataclass(frozen=True)
class GalleryEntry:
    """Who one gallery row belongs to, and on which watchlist."""

    person_id: int
    person_name: str
    watchlist_id: int
    watchlist_name: str


class EmbedderMismatchError(SafecityError, ValueError):
    """A probe vector from another embedder than the gallery's templates."""


@dataclass(frozen=True)
class Scoring:
    """How an embedder's vectors are compared: score = Σ scales_i·cos(part_i) − offset.

    >>> Scoring.cosine("dlib", 128).score(np.array([0.93]))
    0.93
    """

    embedder: str | None
    parts: tuple[int, ...]
    scales: tuple[float, ...]
    offset: float = 0.0

    @classmethod
    def cosine(cls, embedder: str | None, dim: int) -> Scoring:
        """Plain cosine over one unit vector of ``dim`` values."""
        return cls(embedder, (int(dim),), (1.0,), 0.0)

    @property
    def dim(self) -> int:
        return sum(self.parts)

    @property
    def floor(self) -> float:
        """The lowest score possible (every part's cosine −1)."""
        return -sum(self.scales) - self.offset

    def score(self, cosines: np.ndarray) -> float:
        """The score of one probe against one template from its per-part cosines."""
        return float(np.dot(self.scales, np.asarray(cosines, np.float64))) - self.offset

    def gallery_rows(self, vectors: np.ndarray) -> np.ndarray:
        """Rows with every part unit-normalised (a template's whole norm does not matter)."""
        return _unit_rows(vectors, self.parts)

    def probe_row(self, vector: np.ndarray) -> np.ndarray:
        """The probe with every part unit-normalised, then scaled by its weight."""
        row = _unit_rows(vector, self.parts)
        bounds = np.cumsum((0, *self.parts))
        for a, b, scale in zip(bounds[:-1], bounds[1:], self.scales, strict=True):
            row[:, a:b] *= scale
        return row


def scoring_for(embedder: str, dim: int) -> Scoring:
    """The :class:`Scoring` of templates stored as ``embedder``, ``dim`` values long.

    >>> scoring_for("dlib+faceres-2", 1152).parts
    (128, 1024)
    >>> scoring_for("dlib", 128).scales
    (1.0,)
    """
    from safecity.identity.calibration import FUSED_NAME, load_calibration

    if embedder == FUSED_NAME:
        scales, offset = load_calibration().fused_scales()
        scoring = Scoring(embedder, (128, 1024), scales, offset)
    else:
        scoring = Scoring.cosine(embedder, _KNOWN_DIMS.get(embedder, dim))
    if scoring.dim != dim:
        raise EmbedderMismatchError(
            f"vectors of {dim} values cannot be {embedder} templates, which have "
            f"{scoring.dim} values: they come from another embedder"
        )
    return scoring


def score_templates(embedder: str, templates: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """The matcher's score of ``probe`` against each row of ``templates`` (no index).

    For code that compares a probe with stored templates directly (subject access
    searches): the same numbers :meth:`FaissMatcher.match` compares with its threshold.
    """
    templates = np.asarray(templates, np.float32)
    if templates.ndim != 2:
        raise ValueError("templates must be an (N, d) array")
    scoring = scoring_for(embedder, int(templates.shape[1]))
    if scoring.dim != templates.shape[1] or np.asarray(probe).size != scoring.dim:
        raise EmbedderMismatchError(
            f"the {embedder} templates have {templates.shape[1]} values, the probe "
            f"{np.asarray(probe).size}; embedder {embedder} makes {scoring.dim}"
        )
    rows = scoring.gallery_rows(templates)
    return (rows @ scoring.probe_row(probe)[0]).astype(np.float64) - scoring.offset


def matcher_settings(config: SafecityConfig) -> tuple[float, float]:
    """``(threshold, margin)`` the matcher uses under ``config``: the single place that says.

    ``matcher.threshold``/``matcher.margin`` when set; otherwise the configured
    embedder's calibrated default (dlib: cosine 0.925 and 0.02). A user's ArcFace
    model has no calibration, so it needs ``matcher.threshold`` set.
    ``matcher.fpir`` (instead of ``threshold``) is a target open-set false-alarm
    rate: the threshold is the score at which the configured embedder reached it
    in the saved ``safecity eval identify``
    (:func:`safecity.governance.accuracy.threshold_for_fpir`); an error saying
    which command to run when none is saved for that embedder.

    >>> matcher_settings(SafecityConfig())
    (0.925, 0.02)
    """
    from safecity.identity.calibration import load_calibration
    from safecity.vision.embedder import embedder_name

    kind = config.embedder.kind
    threshold, margin = config.matcher.threshold, config.matcher.margin
    if config.matcher.fpir is not None:
        from safecity.governance.accuracy import threshold_for_fpir

        if threshold is not None:
            raise ConfigError(
                "give matcher.threshold or matcher.fpir, not both: fpir is turned into a "
                "threshold from the saved identification evaluation"
            )
        threshold = threshold_for_fpir(config.matcher.fpir, embedder_name(config.embedder))
    if kind == "arcface":
        if threshold is None:
            raise ConfigError(
                "embedder.kind 'arcface' has no calibrated threshold: set matcher.threshold "
                "(a cosine, measured on your own model)"
            )
        margin = 0.02 if margin is None else margin
    else:
        name = embedder_name(config.embedder)
        calibration = load_calibration()
        threshold = calibration.threshold(name) if threshold is None else threshold
        margin = calibration.margin(name) if margin is None else margin
    if kind != "fused" and threshold > 1:
        raise ConfigError(
            f"matcher.threshold {threshold:g} cannot be reached: embedder '{kind}' scores by "
            "cosine, at most 1"
        )
    return float(threshold), float(margin)


def _unit_rows(vectors: np.ndarray, parts: tuple[int, ...] | None = None) -> np.ndarray:
    """Float32 rows with each part (default: the whole row) scaled to unit length."""
    v = np.array(np.asarray(vectors, np.float32), copy=True)
    if v.ndim == 1:
        v = v[None]
    parts = parts or (v.shape[1],)
    bounds = np.cumsum((0, *parts))
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        norms = np.linalg.norm(v[:, a:b], axis=1, keepdims=True)
        v[:, a:b] /= np.where(norms > 0, norms, 1.0)
    return np.ascontiguousarray(v)


class FaissMatcher:
    """Threshold-and-margin matcher over a FAISS inner-product index.

    ``embedder``: the name the gallery's templates were made by; a probe made by
    another is refused (:class:`EmbedderMismatchError`). ``scoring``: how the
    vectors compare (default: :func:`scoring_for` ``embedder``, or a plain cosine
    when no embedder is named).
    """

    def __init__(
        self,
        threshold: float,
        margin: float,
        *,
        embedder: str | None = None,
        scoring: Scoring | None = None,
        flat_max: int | None = None,
    ) -> None:
        self.threshold = float(threshold)
        self.margin = float(margin)
        self.embedder = embedder if embedder is not None else getattr(scoring, "embedder", None)
        self._scoring = scoring
        self._index: faiss.Index | None = None
        self._meta: list[GalleryEntry] = []
        # Galleries up to this many templates are searched exactly (index.FLAT_MAX).
        self.flat_max = gallery_index.FLAT_MAX if flat_max is None else int(flat_max)
        self._choice = gallery_index.choose_index(0, self.flat_max)
        self._rows_of: dict[int, np.ndarray] = {}  # person id -> row numbers

    @classmethod
    def from_config(cls, config: MatcherConfig | SafecityConfig | None = None) -> FaissMatcher:
        """A matcher with the configured settings (a whole config also names its embedder)."""
        if isinstance(config, SafecityConfig):
            from safecity.vision.embedder import embedder_name

            threshold, margin = matcher_settings(config)
            return cls(threshold, margin, embedder=embedder_name(config.embedder))
        threshold, margin = matcher_settings(SafecityConfig(matcher=config or MatcherConfig()))
        return cls(threshold, margin)

    def __len__(self) -> int:
        return len(self._meta)

    @property
    def dim(self) -> int | None:
        """Vector length of the gallery, None while it is empty."""
        return None if self._index is None else int(self._index.d)

    @property
    def scoring(self) -> Scoring | None:
        return self._scoring

    @property
    def index_choice(self) -> gallery_index.IndexChoice:
        """The index the gallery is searched with (exact flat up to ``flat_max`` templates)."""
        return self._choice

    def build(self, vectors: np.ndarray, meta: Sequence[GalleryEntry]) -> None:
        """Replace the gallery: one row of ``vectors`` (N, d) per entry of ``meta``.

        Each part of a row (the scoring's parts) is L2-normalised here, so the
        score is right whatever scale the caller passed. The index is exact up to
        ``flat_max`` rows, approximate (HNSW) above (:func:`~safecity.identity.index.choose_index`).
        """
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or len(vectors) != len(meta):
            raise ValueError(
                f"need an (N, d) array with one row per entry; got {vectors.shape} "
                f"for {len(meta)} entries"
            )
        if len(meta) == 0:
            self._index, self._meta, self._rows_of = None, [], {}
            return
        d = int(vectors.shape[1])
        if self._scoring is None:
            named = self.embedder is not None
            self._scoring = scoring_for(self.embedder, d) if named else Scoring.cosine(None, d)
        if self._scoring.dim != d:
            raise EmbedderMismatchError(
                f"the {self.embedder or 'gallery'} templates have {d} values; embedder "
                f"{self._scoring.embedder} makes {self._scoring.dim}"
            )
        self._choice = gallery_index.choose_index(len(meta), self.flat_max)
        index = gallery_index.build_index(self._scoring.gallery_rows(vectors), self._choice)
        self._index, self._meta = index, list(meta)
        owners = np.array([entry.person_id for entry in self._meta], np.int64)
        self._rows_of = {}
        if not self._choice.exact:  # only the approximate search excludes rows by person
            order = np.argsort(owners, kind="stable")
            people, starts = np.unique(owners[order], return_index=True)
            for person, part in zip(people, np.split(order, starts[1:]), strict=True):
                self._rows_of[int(person)] = part

    def _check(self, vector: np.ndarray, embedder: str | None) -> None:
        if embedder is not None and self.embedder is not None and embedder != self.embedder:
            raise EmbedderMismatchError(
                f"the probe was made by embedder '{embedder}' but the gallery's templates by "
                f"'{self.embedder}'; their scores mean nothing together (enrol again with "
                f"'{embedder}' or configure embedder '{self.embedder}')"
            )
        assert self._index is not None
        size = int(np.asarray(vector).size)
        if size != self._index.d:
            raise EmbedderMismatchError(
                f"the probe has {size} values but the gallery's templates "
                f"({self.embedder or 'unnamed embedder'}) have {self._index.d}: "
                "they come from different embedders"
            )

    def scores(
        self, vector: np.ndarray, k: int, embedder: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` scores (the embedder's: cosine or fused) and row numbers, best first."""
        if self._index is None:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        self._check(vector, embedder)
        assert self._scoring is not None
        probe = self._scoring.probe_row(vector)
        sims, rows = gallery_index.search(self._index, probe, k)
        keep = rows >= 0
        return sims[keep] - np.float32(self._scoring.offset), rows[keep]

    def _best_other(self, vector: np.ndarray, person_id: int) -> list[float]:
        """The best score of anyone but ``person_id``, from the approximate index.

        The exact index scores the whole gallery instead; on a million rows that is
        what the approximate one is there to avoid, so it searches once more with
        that person's rows left out.
        """
        assert self._index is not None and self._scoring is not None
        probe = self._scoring.probe_row(vector)
        exclude = self._rows_of.get(person_id, ())
        sims, rows = gallery_index.search(self._index, probe, 1, exclude=exclude)
        return [float(s) - self._scoring.offset for s, r in zip(sims, rows, strict=True) if r >= 0]

    def match(self, vector: np.ndarray, embedder: str | None = None) -> Match | None:
        """The matched person, or None (below threshold, too close to another person, empty).

        ``embedder``: the name of the embedder that made ``vector``; when given it
        must be the gallery's (:class:`EmbedderMismatchError` otherwise). A vector
        of another length is refused the same way.
        """
        if self._index is None or not np.isfinite(vector).all():
            return None  # a broken embedding (NaN from a user's model) matches nobody
        total = self._index.ntotal
        sims, rows = self.scores(vector, _FIRST_K, embedder)
        if len(rows) == 0:
            return None
        best = self._meta[int(rows[0])]
        others = self._others(sims, rows, best.person_id)
        if not others and len(rows) < total:
            if self._choice.exact:
                # Every hit so far is the same person (many templates): look at the whole gallery.
                sims, rows = self.scores(vector, total, embedder)
                others = self._others(sims, rows, best.person_id)
            else:
                others = self._best_other(vector, best.person_id)
        score = float(sims[0])
        assert self._scoring is not None
        # Alone in the gallery: the lead is over the lowest possible score, so the
        # margin rule never blocks a match only because nobody else is enrolled.
        runner_up = float(others[0]) if others else self._scoring.floor
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
