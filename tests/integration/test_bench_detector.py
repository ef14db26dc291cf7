"""``safecity bench detector`` as an operator runs it: per clip, each variant's time
against the float model in the same run and the share of its people found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import safecity


@pytest.mark.slow
def test_bench_detector_prints_time_ratio_and_recall_per_clip(
    tmp_path, data_dir: Path, monkeypatch
):
    monkeypatch.setenv("SAFECITY_TEST_DATA", str(data_dir))
    done = safecity(tmp_path, "bench", "detector", "--repeats", "1", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    clips = {c["clip"]: c for c in result["clips"]}
    assert {"pedestrians-768x576.avi", "arcade-crowd-1080p.mp4"} <= set(clips)
    inputs = {"pedestrians-768x576.avi": "416x352", "arcade-crowd-1080p.mp4": "416x288"}
    for name, trimmed in inputs.items():
        reference, square, trim = clips[name]["variants"]
        assert reference["ratio"] == 1.0 and reference["recall"] == 1.0
        assert reference["extra"] == 0 and reference["people"] > 100
        assert (square["input"], trim["input"]) == ("416x416", trimmed)
        for variant in (square, trim):
            # measured 0.98-1.00 (the misses score 0.35-0.39 in the float model)
            assert variant["recall"] >= 0.97, (name, variant)
            assert variant["median_ms"] > 0  # figures, not a race on a busy machine
    assert "load average" in result["machine"]
    table = safecity(tmp_path, "bench", "detector", "--repeats", "1")
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())
    for field in ("int8", "ratio", "recall", "extra", "load average"):  # 60 columns: cut
        assert field in text, (field, table.stdout)
