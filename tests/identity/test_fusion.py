"""dlib + FaceRes fusion: the vector layout, the fused score in FAISS, the calibration file."""

from __future__ import annotations

import json
import os
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import cv2
import numpy as np
import pytest
from lfw_support import needs_lfw_cache

from safecity.config import EmbedderConfig, MatcherConfig, SafecityConfig
from safecity.errors import ConfigError
from safecity.identity.calibration import (
    FUSED_NAME,
    calibration_file,
    load_calibration,
)
from safecity.identity.matcher import (
    EmbedderMismatchError,
    FaissMatcher,
    GalleryEntry,
    matcher_settings,
    score_templates,
)
from safecity.vision.embedder import (
    DlibEmbedder,
    FusedEmbedder,
    embedder_name,
    make_embedder,
    split_parts,
)
from safecity.vision.faceres import FaceResEmbedder
from safecity.vision.faces import FaceDetector

ROOT = Path(__file__).resolve().parents[2]
# Six LFW people with several images in the development view: the first image (by
# name) is enrolled, the second is the probe. Two more people are never enrolled.
ENROLLED = (
    "Colin_Powell", "Tony_Blair", "Serena_Williams", "Jennifer_Lopez", "Hans_Blix", "Zhu_Rongji"
)  # fmt: skip
STRANGERS = ("Gerhard_Schroeder", "Jennifer_Capriati")


def _nth(lfw: Path, name: str, n: int) -> Path:
    return sorted((lfw / name).glob("*.jpg"))[n]


@pytest.fixture(scope="module")
def fused() -> FusedEmbedder:
    return FusedEmbedder(DlibEmbedder(), FaceResEmbedder())


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def _embed(fused: FusedEmbedder, detector: FaceDetector, path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    faces = detector.detect(image)
    h, w = image.shape[:2]
    face = min(faces, key=lambda f: abs((f.box[0] + f.box[2]) / 2 - w / 2))
    return fused.embed(image, face)


@pytest.fixture(scope="module")
def portraits(data_dir: Path, fused, detector) -> dict[str, np.ndarray]:
    return {
        n: _embed(fused, detector, data_dir / f"images/{n}.jpg")
        for n in ("obama", "obama2", "obama3", "biden")
    }


def test_calibration_loads_and_is_fitted_on_training_pairs_only():
    cal = load_calibration()
    assert cal.name == FUSED_NAME and calibration_file().is_file()
    assert cal.fitted_on["pairs_file"] == "pairsDevTrain.txt" and cal.fitted_on["pairs"] == 2200
    assert cal.faceres_mean.shape == (1024,) and np.isfinite(cal.faceres_mean).all()
    assert sum(cal.weights) == pytest.approx(1.0) and 0 < cal.weights[0] < 1
    assert cal.threshold("dlib") == 0.925 and cal.margin("dlib") == 0.02
    assert {"dlib", "faceres", FUSED_NAME} <= set(cal.thresholds) <= set(cal.margins) | {""}
    # The defaults keep FAR <= 1e-3 on the training pairs (1 of 1100 impostors at most).
    for name in ("faceres", FUSED_NAME):
        assert cal.figures[name]["train_far_at_default"] <= 1 / 1100


def test_calibration_is_package_data_for_wheels_too():
    # setuptools ships only what package-data names; the JSON must be matched by it.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["safecity"]
    relative = calibration_file().relative_to(ROOT / "src/safecity").as_posix()
    assert any(fnmatch(relative, g) for g in globs), (relative, globs)


def test_fused_vector_holds_both_unit_parts(fused, portraits):
    assert fused.name == FUSED_NAME == embedder_name(EmbedderConfig(kind="fused"))
    assert fused.parts == (128, 1024) and fused.dim == 1152
    v = portraits["obama"]
    assert v.shape == (1152,) and v.dtype == np.float32
    assert float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-5)  # enrolment's check
    for part in (v[:128], v[128:]):
        assert float(np.linalg.norm(part)) == pytest.approx(2**-0.5, abs=1e-5)


def test_fused_score_is_the_weighted_z_sum(portraits):
    cal = load_calibration()
    a, b = portraits["obama3"], portraits["obama"]
    pa, pb = split_parts(a, (128, 1024)), split_parts(b, (128, 1024))
    cos = [float(x @ y) for x, y in zip(pa, pb, strict=True)]
    expected = sum(
        w * (c - cal.mu[p]) / cal.sigma[p]
        for w, c, p in zip(cal.weights, cos, ("dlib", "faceres"), strict=True)
    )
    m = FaissMatcher(-100.0, 0.0, embedder=FUSED_NAME)
    m.build(b[None], [GalleryEntry(1, "Obama", 1, "l")])
    assert m.match(a).score == pytest.approx(expected, abs=1e-4)
    assert score_templates(FUSED_NAME, b[None], a)[0] == pytest.approx(expected, abs=1e-4)


def test_fused_matcher_picks_the_right_person_and_refuses_a_stranger(data_dir, fused, detector):
    lfw = data_dir / "lfw-dev/images"
    gallery, meta = [], []
    for pid, name in enumerate(ENROLLED, 1):
        gallery.append(_embed(fused, detector, _nth(lfw, name, 0)))
        meta.append(GalleryEntry(pid, name, 1, "wanted"))
    config = SafecityConfig(embedder=EmbedderConfig(kind="fused"))
    matcher = FaissMatcher.from_config(config)
    assert matcher.threshold == load_calibration().threshold(FUSED_NAME)
    matcher.build(np.stack(gallery), meta)
    for name in ENROLLED:
        match = matcher.match(_embed(fused, detector, _nth(lfw, name, 1)), FUSED_NAME)
        assert match is not None and match.person_name == name, name
    for name in STRANGERS:
        assert matcher.match(_embed(fused, detector, _nth(lfw, name, 0))) is None


def test_portraits_obama_matches_biden_does_not(portraits):
    matcher = FaissMatcher.from_config(SafecityConfig(embedder=EmbedderConfig(kind="fused")))
    matcher.build(
        np.stack([portraits["obama"], portraits["obama2"]]),
        [GalleryEntry(1, "Obama", 1, "l")] * 2,
    )
    assert matcher.match(portraits["obama3"]).person_id == 1
    assert matcher.match(portraits["biden"]) is None


def test_mismatched_embedder_is_refused_clearly(portraits, data_dir):
    matcher = FaissMatcher(3.0, 0.1, embedder=FUSED_NAME)
    matcher.build(portraits["obama"][None], [GalleryEntry(1, "Obama", 1, "l")])
    with pytest.raises(EmbedderMismatchError, match="'dlib'.*'dlib\\+faceres-2'"):
        matcher.match(portraits["obama2"], embedder="dlib")
    dlib_probe = portraits["obama2"][:128] * np.sqrt(2)  # a 128-d dlib vector
    with pytest.raises(EmbedderMismatchError, match="different embedders"):
        matcher.match(dlib_probe)
    dlib_gallery = FaissMatcher(0.925, 0.02, embedder="dlib")
    with pytest.raises(EmbedderMismatchError, match="1152 values cannot be dlib templates"):
        dlib_gallery.build(portraits["obama"][None], [GalleryEntry(1, "Obama", 1, "l")])


def test_matcher_settings_resolve_defaults_and_overrides():
    cal = load_calibration()
    assert matcher_settings(SafecityConfig()) == (0.925, 0.02)
    fused = SafecityConfig(embedder=EmbedderConfig(kind="fused"))
    assert matcher_settings(fused) == (cal.threshold(FUSED_NAME), cal.margin(FUSED_NAME))
    faceres = SafecityConfig(embedder=EmbedderConfig(kind="faceres"))
    assert matcher_settings(faceres) == (cal.threshold("faceres"), cal.margin("faceres"))
    own = SafecityConfig(matcher=MatcherConfig(threshold=0.95, margin=0.05))
    assert matcher_settings(own) == (0.95, 0.05)
    with pytest.raises(ConfigError, match="cosine, at most 1"):
        matcher_settings(SafecityConfig(matcher=MatcherConfig(threshold=3)))
    arc = SafecityConfig(embedder=EmbedderConfig(kind="arcface", model_path=Path("x.onnx")))
    with pytest.raises(ConfigError, match="set matcher.threshold"):
        matcher_settings(arc)


def test_make_embedder_knows_the_new_kinds():
    assert isinstance(make_embedder(EmbedderConfig(kind="fused")), FusedEmbedder)
    assert make_embedder(EmbedderConfig(kind="fused")).name == FUSED_NAME


@pytest.mark.slow
@needs_lfw_cache
def test_regenerating_the_calibration_gives_the_committed_file(data_dir, tmp_path):
    # Fits on pairsDevTrain.txt (2200 pairs, ~3,400 images): minutes without a cache;
    # SAFECITY_LFW_CACHE names a folder of cached embeddings (safecity.identity.lfw).
    from safecity.identity.calibration import save_calibration
    from safecity.identity.lfw import fit_lfw_calibration

    cache = Path(os.environ.get("SAFECITY_LFW_CACHE", tmp_path / "cache"))
    fitted = fit_lfw_calibration(
        data_dir / "lfw-dev/pairsDevTrain.txt", data_dir / "lfw-dev/images", cache=cache
    )
    out = save_calibration(fitted, tmp_path / "again.json")
    assert json.loads(out.read_text()) == json.loads(calibration_file().read_text())
    with pytest.raises(ConfigError, match="never on test"):
        fit_lfw_calibration(data_dir / "lfw-dev/pairsDevTest.txt", data_dir / "lfw-dev/images")
