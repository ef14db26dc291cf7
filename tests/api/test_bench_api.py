"""``safecity bench api``: the real server in its own process, driven by concurrent clients."""

from __future__ import annotations

import pytest

from safecity.api.bench import bench_api


@pytest.mark.slow
def test_bench_api_pages_through_events_without_errors() -> None:
    result = bench_api(events=500, clients=4, requests_per_client=3)
    assert result["errors"] == 0, result["first_error"]
    # 3 rounds of a first page and 2 further pages, and one filtered list, per client
    assert result["requests"] == 4 * (3 * 3 + 1)
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["requests_per_s"] > 0
    assert result["backend"] == "sqlite" and result["server_workers"] == 1


def test_bench_api_refuses_nonsense_sizes() -> None:
    from safecity.errors import SafecityError

    with pytest.raises(SafecityError, match="1 or more"):
        bench_api(events=0)
