"""Threshold-and-margin matching over FAISS, on real dlib embeddings."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from safecity.config import MatcherConfig, SafecityConfig
from safecity.identity.matcher import FaissMatcher, GalleryEntry, Scoring, matcher_settings
from safecity.vision.embedder import DlibEmbedder
from safecity.vision.faces import FaceDetector

# dlib's calibrated default (matcher.threshold unset): cosine 0.925.
THRESHOLD = matcher_settings(SafecityConfig())[0]
OBAMA = GalleryEntry(1, "Barack Obama", 10, "test-list")
BIDEN = GalleryEntry(2, "Joe Biden", 10, "test-list")


@pytest.fixture(scope="module")
def vec(data_dir: Path) -> dict[str, np.ndarray]:
    detector, embedder = FaceDetector(), DlibEmbedder()
    out = {}
    for name in ("obama", "obama2", "obama3", "biden"):
        image = cv2.imread(str(data_dir / f"images/{name}.jpg"))
        out[name] = embedder.embed(image, detector.detect(image)[0])
    return out


def test_probe_matches_the_enrolled_person_with_its_margin(vec):
    m = FaissMatcher.from_config(MatcherConfig())
    m.build(np.stack([vec["obama"], vec["obama2"], vec["biden"]]), [OBAMA, OBAMA, BIDEN])
    match = m.match(vec["obama3"])
    assert match is not None and match.person_id == 1 and match.watchlist_name == "test-list"
    best = max(float(vec["obama3"] @ vec["obama"]), float(vec["obama3"] @ vec["obama2"]))
    assert match.score == pytest.approx(best, abs=1e-5)
    # The margin is measured against Biden (the other person), not Obama's 2nd template.
    assert match.margin == pytest.approx(best - float(vec["obama3"] @ vec["biden"]), abs=1e-5)


def test_a_person_not_enrolled_matches_nothing(vec):
    m = FaissMatcher.from_config(MatcherConfig())
    m.build(np.stack([vec["obama"], vec["obama2"]]), [OBAMA, OBAMA])
    assert m.match(vec["biden"]) is None  # cosine ~0.81-0.83, below the threshold
    assert m.match(vec["obama3"]) is not None


def test_margin_refuses_a_probe_close_to_two_people(vec):
    # The same man enrolled twice under two identities (a data-entry error): obama3
    # scores 0.97 and 0.95 against them; a 0.05 margin must refuse to pick one.
    twin = GalleryEntry(3, "Look-alike", 10, "test-list")
    gallery = np.stack([vec["obama"], vec["obama2"]])
    strict = FaissMatcher(THRESHOLD, margin=0.05)
    strict.build(gallery, [OBAMA, twin])
    lead = abs(float(vec["obama3"] @ vec["obama"]) - float(vec["obama3"] @ vec["obama2"]))
    assert lead < 0.05
    assert strict.match(vec["obama3"]) is None
    lenient = FaissMatcher(THRESHOLD, margin=0.0)
    lenient.build(gallery, [OBAMA, twin])
    assert lenient.match(vec["obama3"]).margin == pytest.approx(lead, abs=1e-5)


def test_threshold_is_inclusive_and_refuses_below(vec):
    score = float(vec["obama3"] @ vec["obama"])
    at = FaissMatcher(threshold=score - 1e-4, margin=0.0)
    at.build(vec["obama"][None], [OBAMA])
    assert at.match(vec["obama3"]) is not None
    above = FaissMatcher(threshold=score + 1e-4, margin=0.0)
    above.build(vec["obama"][None], [OBAMA])
    assert above.match(vec["obama3"]) is None


def test_single_person_gallery_margin_is_to_the_cosine_floor(vec):
    m = FaissMatcher(threshold=0.5, margin=0.5)
    m.build(vec["obama"][None], [OBAMA])
    match = m.match(vec["obama2"])
    assert match is not None and match.margin == pytest.approx(match.score + 1.0, abs=1e-5)


def test_other_person_found_beyond_many_templates_of_the_best(vec):
    # 40 templates of one person fill the first search; the runner-up must still
    # be found so that the margin rule sees him.
    rng = np.random.default_rng(0)
    noisy = vec["obama"] + rng.normal(scale=0.01, size=(40, 128)).astype(np.float32)
    gallery = np.vstack([noisy, vec["obama2"][None]])
    meta = [OBAMA] * 40 + [GalleryEntry(3, "Look-alike", 10, "test-list")]
    m = FaissMatcher(threshold=0.5, margin=0.5)
    m.build(gallery, meta)
    assert m.match(vec["obama3"]) is None  # lead over the look-alike is ~0.02


def test_empty_gallery_and_bad_input():
    m = FaissMatcher(0.9, 0.02)
    assert m.match(np.ones(128, np.float32)) is None
    m.build(np.zeros((0, 128), np.float32), [])
    assert m.match(np.ones(128, np.float32)) is None and len(m) == 0
    with pytest.raises(ValueError):
        m.build(np.ones((2, 128), np.float32), [OBAMA])
    m.build(np.ones((1, 128), np.float32), [OBAMA])
    with pytest.raises(ValueError):
        m.match(np.ones(64, np.float32))


def test_unset_config_means_dlibs_calibrated_default():
    m = FaissMatcher.from_config(MatcherConfig())
    assert (m.threshold, m.margin) == (0.925, 0.02)
    m = FaissMatcher.from_config(SafecityConfig())
    assert m.embedder == "dlib" and (m.threshold, m.margin) == (0.925, 0.02)


def test_rows_are_normalised_per_part(vec):
    # Two parts of different lengths: each part is made unit on its own, so a template
    # whose second part was stored at 10x scale scores as if it were unit.
    scoring = Scoring("two", (128, 128), (0.5, 0.5), 0.0)
    template = np.concatenate([vec["obama"], 10 * vec["obama2"]])
    probe = np.concatenate([vec["obama3"], vec["obama3"]])
    m = FaissMatcher(-1.0, 0.0, scoring=scoring)
    m.build(template[None], [OBAMA])
    expected = 0.5 * float(vec["obama3"] @ vec["obama"]) + 0.5 * float(
        vec["obama3"] @ vec["obama2"]
    )
    assert m.match(probe).score == pytest.approx(expected, abs=1e-5)
    # Whole-row normalisation would have given mostly the second part's cosine.
    whole = template / np.linalg.norm(template)
    assert abs(float(whole @ (probe / np.linalg.norm(probe))) - expected) > 1e-3
