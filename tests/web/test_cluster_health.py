"""The health page's cluster part over HTTP: the section the script fills, hidden until a
coordinator reports; the data it asks for with the page's own session; the fields it reads
exist in the API's answer."""

from __future__ import annotations

import re
from pathlib import Path

from api_support import signed_in
from cluster_support import document
from fastapi import FastAPI
from test_pages import Page

from safecity.api.schemas.cluster import (
    Cluster,
    ClusterCamera,
    ClusterCoordinator,
    ClusterNode,
    ClusterWorker,
)
from safecity.store import Store
from safecity.store.cluster import write_status
from safecity.web import pages

SCRIPT = Path(pages.__file__).parent / "static" / "health.js"


def test_the_health_page_has_a_hidden_cluster_section_next_to_the_camera_health(
    app: FastAPI,
) -> None:
    page = Page(signed_in(app, "olga").get("/health").text)
    ids = page.testids()
    # The per-camera health stays as it was; the cluster comes after it, hidden.
    assert ids.index("health-table") < ids.index("cluster") < ids.index("cluster-list")
    assert "hidden" in page.by_testid("cluster")
    assert [s.split("?")[0] for s in page.srcs("script", "src")][-1] == "/static/health.js"


def test_the_page_session_reads_the_cluster_and_a_scoped_user_sees_only_their_cameras(
    app: FastAPI, api_store: Store
) -> None:
    operator = signed_in(app, "olga")  # gate-1 only
    assert operator.get("/api/v1/cluster").json()["coordinators"] == []  # nothing to show
    write_status(api_store, document())
    assert operator.get("/health").status_code == 200
    # What the page's script asks for, with the page's cookie (no bearer token).
    answer = operator.get("/api/v1/cluster", headers={"Accept": "application/json"})
    assert answer.status_code == 200
    [head] = answer.json()["coordinators"]
    assert [c["camera"] for c in head["cameras"]] == ["gate-1"]
    assert [w["outbox_health"] for w in head["workers"]] == ["error"]


def test_the_script_reads_only_fields_the_api_sends() -> None:
    text = SCRIPT.read_text()
    # The cluster's part of the script: up to the next section (the alert sinks).
    cluster = text[text.index("the cluster --") : text.index("// --- the alert sinks")]
    assert "SC.api('/api/v1/cluster')" in cluster
    fields = {
        "body": set(Cluster.model_fields),
        "c": set(ClusterCoordinator.model_fields) | set(ClusterCamera.model_fields),
        "n": set(ClusterNode.model_fields),
        "w": set(ClusterWorker.model_fields),
        "a": set(ClusterCamera.model_fields),
        "b": set(ClusterCamera.model_fields),
    }
    read = re.findall(r"\b(body|c|n|w|a|b)\.([a-z_0-9]+)\b", cluster)
    assert read, "the pattern found no field reads: the test no longer checks anything"
    unknown = {f"{who}.{name}" for who, name in read if name not in fields[who]}
    assert not unknown, f"health.js reads fields the API does not send: {sorted(unknown)}"
    # Every trouble the API can rate has a style.
    css = (SCRIPT.parent / "console.css").read_text()
    for health in ("late", "error"):
        assert f"tr.outbox-{health}" in css and f"td.outbox-{health}" in css
