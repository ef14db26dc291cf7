"""The FAISS index a gallery of templates is searched with, chosen by its size.

Up to :data:`FLAT_MAX` templates the search is exact (``IndexFlatIP``): every
row is scored, so a match is the same whatever the gallery's order. Above it an
exact search costs more than the pipeline can spend per face (one probe over a
million 128-d rows is tens of milliseconds here), so an approximate
inner-product index takes its place (see :func:`choose_index`). The figures
behind the constants come from ``safecity bench match`` (real LFW embeddings
plus random unit vectors for size) on this 2-core machine.

>>> choose_index(1000).kind
'flat'
>>> choose_index(2_000_000).kind
'hnsw'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import faiss
import numpy as np

# Figures: dlib 128-d, real LFW vectors + random unit fill, 300-500 probes one at a
# time, medians, on this 2-core machine while other test runs kept the load at 6-9
# (noisy: an idle machine is faster).
#
#: Galleries up to this many templates are searched exactly. Exact search, median
#: ms a probe: 10k 0.10, 100k 2.07 (load ~3); under load ~8: 60k 1.45 (p95 21.5),
#: 100k 24, 1M 296. So up to 50k stays near 1 ms on a calm machine.
#: Galleries of up to 50k templates therefore keep exact matches.
FLAT_MAX = 50_000

#: IVF lists: about 4·√N (N templates), never fewer than 39 training rows a list.
IVF_LISTS_PER_SQRT = 4
#: Lists searched per probe (IVF: measured, not chosen). Recall@1 against exact
#: search / median ms a probe: 100k (1264 lists): nprobe 4 0.887 / 0.034, 16
#: 1.000 / 0.050, 64 1.000 / 0.110; 1M (4000 lists): nprobe 4 0.987 / 0.071, 16
#: 1.000 / 0.111, 64 1.000 / 0.46 (p95 8.7); build 12.7 s at 100k, 145 s at 1M.
#: Not chosen: those figures flatter it (the real faces sit in few lists among
#: random fill); with real faces filling the lists (tests/identity/test_index.py,
#: 7,827 rows, nprobe 32 of 200) it missed the runner-up person, so the margin was wrong.
IVF_NPROBE = 32

#: HNSW graph degree (chosen). M=32, efConstruction 80, dlib at 100k: 78 MB
#: (+270 B a template over flat), built in 79 s; recall@1 against exact / median
#: ms a probe by efSearch: 32 0.997 / 0.039, 64 1.000 / 0.059, 128 1.000 / 0.095,
#: 256 1.000 / 0.166. At 1M: 784 MB, efSearch 128 recall 1.000 in 0.118 ms (p95
#: 0.154), but the build took 1693 s (28 min, load 6-8): its cost is the build.
HNSW_M = 32
#: Candidates kept while the graph is built (higher: better graph, slower build).
HNSW_EF_CONSTRUCTION = 80
#: Candidates kept while searching (≥ the k = 32 the matcher asks; 2x the
#: smallest that reached recall 1.000 at 100k).
HNSW_EF_SEARCH = 128


@dataclass(frozen=True)
class IndexChoice:
    """Which index a gallery gets: ``flat`` (exact), ``ivf`` or ``hnsw``, and its settings."""

    kind: str
    nprobe: int = IVF_NPROBE
    m: int = HNSW_M
    ef_construction: int = HNSW_EF_CONSTRUCTION
    ef_search: int = HNSW_EF_SEARCH

    @property
    def exact(self) -> bool:
        return self.kind == "flat"

    def describe(self) -> str:
        """A line for people: ``flat (exact)``, ``ivf nprobe=32`` or ``hnsw M=32 …``."""
        if self.exact:
            return "flat (exact)"
        if self.kind == "ivf":
            return f"ivf nprobe={self.nprobe}"
        return f"hnsw M={self.m} efC={self.ef_construction} efSearch={self.ef_search}"


def choose_index(size: int, flat_max: int = FLAT_MAX) -> IndexChoice:
    """The index for a gallery of ``size`` templates: exact up to ``flat_max``, HNSW above.

    HNSW rather than IVF: both reached recall@1 1.000 well under 2 ms a probe on
    LFW + random fill, but only HNSW also found the runner-up person the margin
    rule needs when real faces fill the gallery (see :data:`IVF_NPROBE`). Its
    build is slow (:data:`HNSW_M`).
    """
    return IndexChoice("flat") if size <= flat_max else IndexChoice("hnsw")


def ivf_lists(size: int) -> int:
    """IVF lists for ``size`` rows: about 4·√size, at least 39 training rows each.

    >>> ivf_lists(1_000_000), ivf_lists(100_000), ivf_lists(100)
    (4000, 1264, 2)
    """
    return max(1, min(int(IVF_LISTS_PER_SQRT * size**0.5), size // 39))


def build_index(rows: np.ndarray, choice: IndexChoice) -> faiss.Index:
    """An inner-product index over ``rows`` (float32, (N, d)), as ``choice`` says."""
    rows = np.ascontiguousarray(rows, np.float32)
    d = int(rows.shape[1])
    if choice.exact:
        index: faiss.Index = faiss.IndexFlatIP(d)
    elif choice.kind == "ivf":
        lists = ivf_lists(len(rows))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
        # k-means on at most 40 rows a list (FAISS's own cap is 256): a million
        # rows are not needed to place 4000 centres, and training is the build's cost.
        rng = np.random.default_rng(0)  # the same gallery always gets the same lists
        sample = rows[rng.choice(len(rows), min(len(rows), 40 * lists), replace=False)]
        index.train(sample)
        index.nprobe = choice.nprobe
    else:
        index = faiss.IndexHNSWFlat(d, choice.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = choice.ef_construction
        index.hnsw.efSearch = choice.ef_search
    index.add(rows)
    return index


def search(
    index: faiss.Index, probe: np.ndarray, k: int, exclude: Iterable[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` inner products and row numbers of one probe row (1, d), best first.

    ``exclude``: row numbers to leave out (the approximate index's way to find the
    best *other* person without scoring the whole gallery). On an HNSW index the
    candidate list is widened to ``k`` when ``k`` exceeds its efSearch, since it
    returns no more hits than that list holds.
    """
    k = max(1, min(int(k), int(index.ntotal)))
    params = None
    if isinstance(index, faiss.IndexIVF):
        params = faiss.SearchParametersIVF()
        params.nprobe = int(index.nprobe)
    elif isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(int(index.hnsw.efSearch), k)
    if exclude is not None:
        ids = np.fromiter(exclude, np.int64)
        selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(ids))
        params = params or faiss.SearchParameters()
        params.sel = selector
    if params is None:
        sims, rows = index.search(probe, k)
    else:
        sims, rows = index.search(probe, k, params=params)
    return sims[0], rows[0]


def index_bytes(index: faiss.Index) -> int:
    """Bytes the index holds (its serialised size: vectors plus graph or lists)."""
    return int(faiss.serialize_index(index).nbytes)
