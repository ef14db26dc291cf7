"""Open-set 1:N identification: the arithmetic on a hand-made score matrix, the split,
and ``safecity eval identify`` on a real LFW subset (dlib)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from safecity.errors import ConfigError
from safecity.governance.accuracy import (
    EvaluationError,
    latest_evaluation,
    openset_searches,
    save_evaluation,
    threshold_for_fpir,
)
from safecity.identity.openset import (
    EmbedderSpec,
    Searches,
    evaluate_identify,
    split_folder,
    split_people,
)

NAN = np.nan
# Three enrolled persons A, B, C (columns). Answers worked out by hand below.
GALLERY = np.array(["A", "B", "C"], dtype=object)
MATED = np.array(
    [
        [0.9, 0.3, 0.2],  # A: mate first at 0.9 (hit)
        [0.4, 0.7, 0.1],  # B: mate first at 0.7 (hit)
        [0.6, 0.2, 0.5],  # C: A scores higher (miss at rank 1)
        [NAN, NAN, NAN],  # A: no face found (miss)
    ]
)
MATES = np.array(["A", "B", "C", "A"], dtype=object)
NONMATED = np.array(
    [
        [0.8, 0.1, 0.3],  # top 0.8
        [0.2, 0.6, 0.1],  # top 0.6
        [0.3, 0.4, 0.35],  # top 0.4
        [NAN, NAN, NAN],  # no face: never an alarm
    ]
)


@pytest.fixture
def searches() -> Searches:
    return Searches.from_scores(MATED, MATES, NONMATED, GALLERY)


def test_rank1_fnir_and_fpir_by_hand(searches: Searches) -> None:
    assert (searches.mated, searches.nonmated, searches.gallery_size) == (4, 4, 3)
    assert searches.rank1 == 0.5  # 2 of 4 mates first
    assert searches.fpir(0.5) == 0.5 and searches.fnir(0.5) == 0.5  # alarms 0.8, 0.6
    assert searches.fpir(0.75) == 0.25 and searches.fnir(0.75) == 0.75  # only 0.9 found
    assert searches.fpir(0.95) == 0.0 and searches.fnir(0.95) == 1.0
    # The C search (mate 0.5, A 0.6) is a miss at every threshold, even a low one.
    assert searches.fnir(0.0) == 0.5 and searches.fpir(0.0) == 0.75


def test_threshold_for_a_target_fpir_by_hand(searches: Searches) -> None:
    t = searches.threshold_for_fpir(0.25)  # one alarm of four allowed: just above 0.6
    assert 0.6 < t < 0.6 + 1e-9
    assert searches.fpir(t) == 0.25 and searches.fnir(t) == 0.5
    t = searches.threshold_for_fpir(0.1)  # no alarm allowed: just above 0.8
    assert 0.8 < t < 0.8 + 1e-9 and searches.fpir(t) == 0.0 and searches.fnir(t) == 0.75
    t = searches.threshold_for_fpir(0.5)
    assert 0.4 < t < 0.4 + 1e-9 and searches.fpir(t) == 0.5


def test_fmr_and_the_estimate_for_another_list_size(searches: Searches) -> None:
    # 12 impostor comparisons (the no-face row counts as 3 non-matches); 2 reach 0.5.
    assert searches.impostors == 12
    assert searches.fmr(0.5) == pytest.approx(2 / 12)
    assert searches.fpir_for_size(0.5, 3) == pytest.approx(1 - (1 - 2 / 12) ** 3)
    assert searches.fpir_for_size(0.5, 1000) == pytest.approx(1.0)
    # Below the kept tail FMR cannot be stated.
    short = Searches.from_scores(MATED, MATES, NONMATED, GALLERY, tail=2)
    assert short.fmr(0.7) == pytest.approx(1 / 12) and short.fmr(0.1) is None


def test_a_tie_with_another_person_is_a_miss() -> None:
    s = Searches.from_scores(np.array([[0.5, 0.5]]), np.array(["A"]), np.zeros((0, 2)), ["A", "B"])
    assert s.rank1 == 0.0 and s.fnir(0.1) == 1.0


def test_det_curve_and_round_trip(searches: Searches) -> None:
    thresholds, fpir, fnir = searches.det()
    assert list(thresholds) == sorted(thresholds, reverse=True)
    assert np.all(np.diff(fpir) >= 0) and np.all(np.diff(fnir) <= 0)
    assert fpir[-1] == 0.75 and fnir[-1] == 0.5
    again = Searches.from_dict(json.loads(json.dumps(searches.to_dict())))
    for t in (0.3, 0.5, 0.65, 0.85):
        assert (again.fpir(t), again.fnir(t), again.fmr(t)) == (
            searches.fpir(t),
            searches.fnir(t),
            searches.fmr(t),
        )
    with pytest.raises(ValueError, match="not a saved open-set outcome"):
        Searches.from_dict({"mated": 1})


def test_the_split_takes_the_first_image_by_name() -> None:
    split = split_people({"Ann": ["Ann/b.jpg", "Ann/a.jpg", "Ann/c.jpg"], "Bo": ["Bo/x.jpg"]})
    assert split.gallery == (("Ann", "Ann/a.jpg"),)
    assert split.mated == (("Ann", "Ann/b.jpg"), ("Ann", "Ann/c.jpg"))
    assert split.nonmated == (("Bo", "Bo/x.jpg"),)


def test_bad_folders_are_refused_in_plain_words(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such folder"):
        split_folder(tmp_path / "absent")
    with pytest.raises(ConfigError, match="holds no person folders with images"):
        split_folder(tmp_path)
    (tmp_path / "Solo").mkdir()
    (tmp_path / "Solo" / "1.jpg").write_bytes(b"x")
    with pytest.raises(ConfigError, match="no person .* has two images"):
        split_folder(tmp_path)


def test_unreadable_images_are_refused_when_no_face_is_found(tmp_path: Path) -> None:
    for name in ("A/1.jpg", "A/2.jpg", "B/1.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"not an image")
    spec = EmbedderSpec("none", lambda paths: dict.fromkeys(paths))
    with pytest.raises(ConfigError, match="no face was found in any of the 3 images"):
        evaluate_identify(tmp_path, [spec])


# --------------------------------------------------------------------------- fpir → threshold


def test_fpir_resolves_to_a_threshold_from_the_saved_evaluation(searches, tmp_path) -> None:
    with pytest.raises(EvaluationError, match="run safecity eval identify"):
        threshold_for_fpir(0.25, "dlib", home=tmp_path)
    report = {"protocol": "openset-1n", "embedders": {"dlib": {"searches": searches.to_dict()}}}
    save_evaluation(report, home=tmp_path, kind="identify")
    t = threshold_for_fpir(0.25, "dlib", home=tmp_path)
    assert t == searches.threshold_for_fpir(0.25) and 0.6 < t < 0.6 + 1e-9
    assert openset_searches(latest_evaluation(tmp_path, "identify"), "dlib") is not None
    with pytest.raises(EvaluationError, match="no figures for the configured embedder fused"):
        threshold_for_fpir(0.25, "fused", home=tmp_path)
    # 4 non-mated searches cannot measure a 1 % false-alarm rate.
    with pytest.raises(EvaluationError, match="smallest measurable false-alarm rate is 0.25"):
        threshold_for_fpir(0.01, "dlib", home=tmp_path)


def test_matcher_fpir_becomes_the_matcher_threshold(searches, tmp_path, monkeypatch) -> None:
    from pydantic import ValidationError

    from safecity.config import MatcherConfig, SafecityConfig
    from safecity.identity.matcher import matcher_settings

    monkeypatch.setenv("SAFECITY_HOME", str(tmp_path))  # where evaluations are saved
    config = SafecityConfig(matcher={"fpir": 0.25})
    with pytest.raises(
        EvaluationError, match="run safecity eval identify .* configured embedder, dlib"
    ):
        matcher_settings(config)
    report = {"protocol": "openset-1n", "embedders": {"dlib": {"searches": searches.to_dict()}}}
    save_evaluation(report, kind="identify")
    threshold, margin = matcher_settings(config)
    assert 0.6 < threshold < 0.6 + 1e-9 and margin == 0.02  # dlib's calibrated margin
    config.matcher.fpir = 0.5
    assert 0.4 < matcher_settings(config)[0] < 0.4 + 1e-9
    with pytest.raises(ConfigError, match="not both"):
        matcher_settings(SafecityConfig(matcher={"fpir": 0.25, "threshold": 0.9}))
    with pytest.raises(ValidationError):
        MatcherConfig(fpir=1.5)


# --------------------------------------------------------------------------- real data


@pytest.fixture
def lfw_subset(data_dir: Path, tmp_path: Path) -> Path:
    """12 LFW people with two images or more and 12 with one, as symlinks."""
    root = data_dir / "lfw-dev" / "images"
    people = sorted(p for p in root.iterdir() if p.is_dir())
    multi = [p for p in people if len(list(p.iterdir())) >= 2][:12]
    single = [p for p in people if len(list(p.iterdir())) == 1][:12]
    out = tmp_path / "images"
    for person in multi + single:
        (out / person.name).mkdir(parents=True)
        for image in sorted(person.iterdir()):
            (out / person.name / image.name).symlink_to(image)
    return out


def _safecity(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SAFECITY_HOME=str(tmp_path / "home"))
    return subprocess.run(
        [sys.executable, "-m", "safecity", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_eval_identify_on_a_real_lfw_subset(lfw_subset: Path, tmp_path: Path) -> None:
    det = tmp_path / "det.png"
    done = _safecity(
        tmp_path,
        "eval",
        "identify",
        "--images",
        str(lfw_subset),
        "--embedder",
        "dlib",
        "--cache",
        str(tmp_path / "cache"),
        "--det-curve",
        str(det),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["protocol"] == "openset-1n"
    assert (report["gallery_size"], report["nonmated"]) == (12, 12)
    assert report["mated"] == sum(len(list(p.iterdir())) - 1 for p in lfw_subset.iterdir())
    dlib = report["embedders"]["dlib"]
    # dlib finds every one of these 12 enrolled people first (measured: 22 of 22).
    assert dlib["rank1"] >= 0.9
    assert [p["fpir_target"] for p in dlib["fnir_at_fpir"]] == [0.1, 0.01, 0.001]
    for point in dlib["fnir_at_fpir"]:
        assert 0 <= point["fnir"] <= 1 and point["fpir"] <= point["fpir_target"] + 1e-9
    assert dlib["at_threshold"][0]["threshold"] == pytest.approx(0.925)
    assert set(dlib["no_face"]) == {"gallery", "mated", "nonmated"}
    assert "searches" not in dlib  # the raw outcome is saved, not printed
    assert det.stat().st_size > 0 and (tmp_path / "cache" / "dlib.npz").is_file()
    saved = latest_evaluation(tmp_path / "home", "identify")
    assert saved is not None and openset_searches(saved, "dlib").mated == report["mated"]


@pytest.mark.slow  # a fresh interpreter: about 4 s
def test_eval_identify_refuses_a_missing_folder(tmp_path: Path) -> None:
    done = _safecity(tmp_path, "eval", "identify", "--images", str(tmp_path / "nope"))
    assert done.returncode != 0
    assert "no such folder" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_fused_vectors_of_the_evaluation_are_the_fused_embedders(data_dir, tmp_path) -> None:
    """The evaluation builds fused vectors from cached parts: they must be what
    the configured fused embedder makes, or its figures would be another's."""
    import cv2

    from safecity.identity.openset import embedder_specs
    from safecity.vision.embedder import FusedEmbedder
    from safecity.vision.faces import FaceDetector

    images = data_dir / "lfw-dev" / "images"
    rel = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Abdullah/Abdullah_0002.jpg"]
    specs, skipped = embedder_specs(
        ["fused"], images, progress=False, workers=1, cache_dir=tmp_path / "cache"
    )
    assert not skipped, skipped
    vectors = specs[0].vectors(rel)
    detector, fused = FaceDetector(), FusedEmbedder()
    assert specs[0].name == fused.name
    for r in rel:
        image = cv2.imread(str(images / r))
        centre = np.array(image.shape[1::-1], np.float32) / 2
        face = min(
            detector.detect(image),
            key=lambda f: float(np.linalg.norm((f.box[:2] + f.box[2:]) / 2 - centre)),
        )
        np.testing.assert_allclose(vectors[r], fused.embed(image, face), atol=1e-6)
