"""The configuration: defaults, the README's example, and errors an operator reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from safecity.config import SafecityConfig, load_config
from safecity.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_example_config_is_valid() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README shows a config example"
    config = SafecityConfig.model_validate(yaml.safe_load(blocks[0]))
    assert [c.name for c in config.cameras] == ["gate-1", "square"]
    assert config.detector.per_class_min_score == {"car": 0.5}


def test_defaults_need_no_file() -> None:
    config = SafecityConfig()
    assert config.detector.kind == "nanodet" and config.store.url.startswith("sqlite:///")
    assert config.faces.enabled and config.cameras == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("cameras: [{name: a, url: x.mp4}, {name: a, url: y.mp4}]", "repeated: a"),
        ("detector: {classes: [person, unicorn]}", "unicorn"),
        ("cameras: [{name: 'bad name', url: x}]", "cameras.0.name"),
        ("matcher: {threshold: [3]}", "matcher.threshold"),
        ("cameras: [\n  - name: a\n   url: b", "not valid YAML"),
    ],
)
def test_invalid_configs_say_what_is_wrong(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "safecity.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert words in message and "\n" not in message.strip()


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_object_filters_fold_in_the_old_score_keys() -> None:
    detector = SafecityConfig.model_validate(
        yaml.safe_load(
            "detector:\n  min_score: 0.35\n  per_class_min_score: {car: 0.5}\n"
            "  filters: {person: {min_area: 400, max_ratio: 1.5}, bus: {min_score: 0.6}}"
        )
    ).detector
    person = detector.filter_for("person")
    assert (person.min_area, person.max_ratio, person.min_score) == (400, 1.5, 0.35)
    assert person.threshold == 0.55  # the default survives a filter that names others
    assert detector.filter_for("car").min_score == 0.5  # per_class_min_score still counts
    assert detector.filter_for("car").threshold == 0.0  # parked vehicles stay events
    assert detector.filter_for("bus").min_score == 0.6
    from safecity.vision.coco import LABEL_TO_ID
    from safecity.vision.detector import class_thresholds

    thresholds = class_thresholds(detector)
    assert thresholds[LABEL_TO_ID["bus"]] == pytest.approx(0.6)
    assert thresholds[LABEL_TO_ID["car"]] == pytest.approx(0.5)
    assert thresholds[LABEL_TO_ID["person"]] == pytest.approx(0.35)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("detector: {filters: {unicorn: {min_area: 1}}}", "unicorn"),
        ("detector: {filters: {person: {threshold: 2}}}", "filters.person.threshold"),
        ("detector: {filters: {person: {min_arae: 1}}}", "min_arae"),
        (
            "detector: {per_class_min_score: {car: 0.5}, filters: {car: {min_score: 0.6}}}",
            "disagree for car",
        ),
    ],
)
def test_bad_object_filters_are_named(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words):
        load_config(path)
