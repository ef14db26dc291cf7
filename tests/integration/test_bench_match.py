"""``safecity bench match`` as an operator runs it: figures printed, bad input refused."""

from __future__ import annotations

import json

import pytest
from test_cli import one_error_line, safecity

from safecity.bench import _lfw_vectors
from safecity.errors import SafecityError


@pytest.fixture
def home(tmp_path):
    try:
        _lfw_vectors("dlib")
    except SafecityError as error:
        pytest.skip(str(error))  # the bench reads the LFW embedding cache
    return tmp_path


def test_bench_match_prints_build_memory_time_and_recall(home):
    done = safecity(home, "bench", "match", "--gallery", "5000", "--probes", "30")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # the table wraps at 60 columns
    for field in ("build", "MB", "RSS+MB", "p50", "p95", "rec", "flat (exact)", "5,000"):
        assert field in text, (field, done.stdout)
    done = safecity(home, "bench", "match", "--gallery", "5000", "--probes", "30", "--json")
    r = json.loads(done.stdout)
    assert r["gallery"] == 5000 and r["chosen"] == "flat (exact)" and len(r["indexes"]) == 1
    row = r["indexes"][0]
    assert row["recall_at_1"] == 1.0 and row["index_bytes"] >= 5000 * 128 * 4


def test_bench_match_refuses_an_unknown_embedder_in_one_line(home):
    line = one_error_line(safecity(home, "bench", "match", "--embedder", "arcface"))
    assert "dlib or fused" in line
