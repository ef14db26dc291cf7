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

#: Galleries up to this many templates are searched exactly. Measured
#: (``safecity bench match``, dlib 128-d, one probe at a time, 2 cores): exact
#: search costs about 0.1 ms a probe at 10k templates and grows linearly; at
#: 50k it is under 2 ms, which leaves the pipeline's budget intact, and every
#: city watchlist we know of is far smaller, so their matches stay exact.
FLAT_MAX = 50_000

#: HNSW graph degree. 32 links per node: recall@1 against exact search 1.000 on
#: real LFW probes at 100k and 1M (dlib), with index memory +256 B a template.
HNSW_M = 32
#: Candidates kept while the graph is built (higher: better graph, slower build).
HNSW_EF_CONSTRUCTION = 80
#: Candidates kept while searching; at least the ``k`` asked for (FAISS returns
#: no more than efSearch hits). 128 gives recall@1 1.000 at 1M in ~0.3 ms a probe.
HNSW_EF_SEARCH = 128


@dataclass(frozen=True)
class IndexChoice:
    """Which index a gallery gets: ``flat`` (exact) or ``hnsw`` (approximate), and its settings."""

    kind: str
    m: int = HNSW_M
    ef_construction: int = HNSW_EF_CONSTRUCTION
    ef_search: int = HNSW_EF_SEARCH

    @property
    def exact(self) -> bool:
        return self.kind == "flat"

    def describe(self) -> str:
        """A line for people: ``flat (exact)`` or ``hnsw M=32 efC=80 efSearch=128``."""
        if self.exact:
            return "flat (exact)"
        return f"hnsw M={self.m} efC={self.ef_construction} efSearch={self.ef_search}"


def choose_index(size: int, flat_max: int = FLAT_MAX) -> IndexChoice:
    """The index for a gallery of ``size`` templates: exact up to ``flat_max``, HNSW above.

    HNSW rather than IVF: at 1M dlib templates both reached recall@1 1.000 under
    2 ms, but HNSW needs no training (IVF's k-means depends on what is enrolled
    and would need retraining as watchlists change) and its search cost barely
    grows with the gallery; see :data:`HNSW_EF_SEARCH` for its figures.
    """
    return IndexChoice("flat") if size <= flat_max else IndexChoice("hnsw")


def build_index(rows: np.ndarray, choice: IndexChoice) -> faiss.Index:
    """An inner-product index over ``rows`` (float32, (N, d)), as ``choice`` says."""
    rows = np.ascontiguousarray(rows, np.float32)
    d = int(rows.shape[1])
    if choice.exact:
        index: faiss.Index = faiss.IndexFlatIP(d)
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
    if isinstance(index, faiss.IndexHNSW):
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
