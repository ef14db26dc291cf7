"""Shared fixtures: the real media in ../shared/data (or $SAFECITY_TEST_DATA)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Nothing a test runs writes into the real data home of whoever runs the suite
# (~/.local/share/safecity): a default config's audit heads there made a later
# 'make demo' on the same machine report its new audit trail as truncated. Ray's
# workers, started from this process, inherit it too.
os.environ.setdefault("SAFECITY_HOME", tempfile.mkdtemp(prefix="safecity-test-home-"))
RAY_TOKEN_FILE = Path("~/.ray/auth_token")  # where 'ray start' keeps a cluster's token

# Local MJPEG/file servers and closed ports, for network-source tests.
pytest_plugins = ["servers"]


def _data_dir() -> Path | None:
    env = os.environ.get("SAFECITY_TEST_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for candidate in candidates:
        if (candidate / "README.md").exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = _data_dir()
    if found is None:
        pytest.skip("test media not found: set SAFECITY_TEST_DATA or place ../shared/data")
    return found


@pytest.fixture(scope="module")
def two_nodes():
    """A head and a second node, each with its own ports and 2 CPUs (4 cameras' worth).

    Token authentication on, as a real cluster should run: the driver that
    ``safecity run --cluster`` starts finds the same token (~/.ray/auth_token).
    """
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_AUTH_MODE"] = "token"
    if not os.environ.get("RAY_AUTH_TOKEN") and not RAY_TOKEN_FILE.expanduser().is_file():
        # 'ray start --head' writes ~/.ray/auth_token; Cluster() does not, and its GCS
        # server then aborts ("couldn't find an authentication token") and the head
        # times out waiting for it: on a fresh machine (CI) no earlier run left one.
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    second = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    yield cluster, second
    cluster.shutdown()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A database URL to an empty database on each backend (SQLite file; PostgreSQL schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'safecity.db'}"
        return
    yield request.getfixturevalue("pg_url")


@pytest.fixture
def pg_url():
    """A scratch schema on the test PostgreSQL server (SAFECITY_TEST_POSTGRES), dropped after."""
    from safecity.store import StoreError
    from safecity.store.testing import scratch_postgres_schema

    try:
        with scratch_postgres_schema() as url:
            yield url
    except StoreError as error:
        pytest.skip(f"PostgreSQL tests skipped: {error}")
