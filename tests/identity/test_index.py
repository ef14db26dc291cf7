"""The gallery index chosen by size: exact up to FLAT_MAX, HNSW above, same matches.

Real LFW dlib embeddings (the cache ``safecity eval lfw`` leaves in
``/tmp/lfw-emb``; without it, a few people's LFW images are embedded here)
enrolled among random unit vectors, with the threshold lowered so that a few
thousand rows already take the approximate index.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import faiss
import numpy as np
import pytest

from safecity.bench import bench_match
from safecity.errors import SafecityError
from safecity.identity.index import FLAT_MAX, choose_index
from safecity.identity.matcher import FaissMatcher, GalleryEntry

THRESHOLD, MARGIN = 0.925, 0.02  # dlib's calibrated defaults
FILL = 4000  # random unit rows around the real ones
FLAT_MAX_TEST = 1000  # so that FILL rows already take HNSW


@pytest.fixture(scope="module")
def lfw(data_dir: Path) -> tuple[np.ndarray, list[str]]:
    """Real dlib vectors of LFW images and whose they are."""
    from safecity.bench import _lfw_vectors

    try:
        return _lfw_vectors("dlib")
    except SafecityError:
        pass  # no cache here: embed a few people with many images
    from safecity.identity.embedcache import embed_image

    images = data_dir / "lfw-dev" / "images"
    people = sorted(images.iterdir(), key=lambda d: -len(list(d.iterdir())))[:12]
    vectors, names = [], []
    for person in people:
        for path in sorted(person.iterdir())[:40]:
            v = embed_image(str(path), "dlib")
            if v is not None:
                vectors.append(v)
                names.append(person.name)
    return np.array(vectors, np.float32), names


def _gallery(vectors, names, fill: int = FILL):
    """Every person's first image is a probe; the rest are enrolled, then random rows."""
    ids = {name: i + 1 for i, name in enumerate(sorted(set(names)))}
    counts = Counter(names)
    seen: set[str] = set()
    rows, meta, probes = [], [], []
    for vector, name in zip(vectors, names, strict=True):
        if name not in seen and counts[name] > 1:
            probes.append((name, vector))
        else:
            rows.append(vector)
            meta.append(GalleryEntry(ids[name], name, 1, "lfw"))
        seen.add(name)
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((fill, vectors.shape[1])).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    meta += [GalleryEntry(100_000 + i, f"fill-{i}", 1, "lfw") for i in range(fill)]
    return np.concatenate([np.array(rows), noise]), meta, probes


def test_the_index_is_exact_up_to_the_threshold_and_hnsw_above():
    assert choose_index(FLAT_MAX).exact and choose_index(1).exact
    assert choose_index(FLAT_MAX + 1).kind == "hnsw"
    m = FaissMatcher(THRESHOLD, MARGIN, embedder="dlib")
    m.build(np.eye(128, dtype=np.float32)[:3], [GalleryEntry(i, str(i), 1, "w") for i in range(3)])
    assert m.index_choice.exact and isinstance(m._index, faiss.IndexFlatIP)


@pytest.mark.slow
def test_above_the_threshold_hnsw_matches_as_exact_search_does(lfw):
    vectors, names = lfw
    rows, meta, probes = _gallery(vectors, names)
    exact = FaissMatcher(THRESHOLD, MARGIN, embedder="dlib")
    approx = FaissMatcher(THRESHOLD, MARGIN, embedder="dlib", flat_max=FLAT_MAX_TEST)
    exact.build(rows, meta)
    approx.build(rows, meta)
    assert exact.index_choice.exact
    assert approx.index_choice.kind == "hnsw" and isinstance(approx._index, faiss.IndexHNSW)
    right = 0
    for name, probe in probes:
        want, got = exact.match(probe), approx.match(probe)
        assert (want is None) == (got is None), name
        if want is not None:
            assert got.person_id == want.person_id
            assert got.score == pytest.approx(want.score, abs=1e-5)
            assert got.margin == pytest.approx(want.margin, abs=1e-5)
            right += got.person_name == name
    assert right >= 5, f"only {right} of {len(probes)} probes matched their own person"


@pytest.mark.slow
def test_margin_is_against_another_person_when_one_fills_the_first_hits(lfw):
    """One person with more templates than the first search asks for (32): the
    approximate matcher finds the best *other* person by leaving that person out."""
    vectors, names = lfw
    many = Counter(names).most_common(1)[0][0]
    own = vectors[[i for i, n in enumerate(names) if n == many]]
    assert len(own) >= 3
    # Their templates 34 times over (>32 rows of one person), then everybody else.
    template = np.repeat(own[1:], -(-34 // (len(own) - 1)), axis=0)
    others = [(v, n) for v, n in zip(vectors, names, strict=True) if n != many]
    rows = np.concatenate([template, np.array([v for v, _ in others])])
    names2 = [many] * len(template) + [n for _, n in others]
    rows, meta, _ = _gallery(rows, names2, fill=FILL)
    exact = FaissMatcher(THRESHOLD, MARGIN, embedder="dlib")
    approx = FaissMatcher(THRESHOLD, MARGIN, embedder="dlib", flat_max=FLAT_MAX_TEST)
    exact.build(rows, meta)
    approx.build(rows, meta)
    probe = own[0]
    sims, hits = approx.scores(probe, 32)
    assert {meta[int(r)].person_name for r in hits} == {many}  # the deeper search is needed
    want, got = exact.match(probe), approx.match(probe)
    assert want is not None and got is not None and got.person_name == many
    assert got.margin == pytest.approx(want.margin, abs=1e-5)


def test_bench_match_prints_its_figures_for_hnsw_and_exact(lfw):
    r = bench_match(3000, "dlib", probes=40, flat_max=FLAT_MAX_TEST, real=lfw)
    # Fewer probes than asked when only the fixture's few people are at hand (no cache).
    assert r["gallery"] == 3000 and 20 <= r["probes"] <= 40 and r["chosen"].startswith("hnsw")
    kinds = [row["index"] for row in r["indexes"]]
    assert kinds[0].startswith("hnsw") and kinds[1] == "flat (exact)"
    for row in r["indexes"]:
        assert row["index_bytes"] >= 3000 * 128 * 4 and row["build_s"] >= 0
        assert 0 < row["median_ms"] <= row["p95_ms"]
        assert row["recall_at_1"] >= 0.95
    assert r["indexes"][1]["recall_at_1"] == 1.0  # exact against itself
