"""Re-embedding enrolled persons for a new embedder, from their kept face photos.

Real SQLite store, real portraits enrolled with the real detector and dlib. The
second embedder is the ArcFace stand-in of the embedder tests (a tiny ONNX, the
only ArcFace-shaped model obtainable here) for the bookkeeping, and FaceRes
where this version has it, to show a re-embedded person is found again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqlalchemy import select

from safecity.config import EmbedderConfig, FacesConfig
from safecity.errors import AuthorisationError
from safecity.governance import audit
from safecity.governance.authorisations import approve, revoke
from safecity.governance.clock import ManualClock
from safecity.identity.enrol import enroll
from safecity.identity.reembed import persons_without_templates, reembed
from safecity.identity.watchlists import create_watchlist, get_watchlist, load_templates
from safecity.store import Store, open_store
from safecity.store.schema import Template
from safecity.vision.embedder import ArcFaceEmbedder, make_embedder
from safecity.vision.faces import FaceDetector

NOW = datetime.now(UTC)


def _arcface_stub(path: Path) -> None:
    """A tiny ONNX with ArcFace's interface (as in tests/vision/test_embedder.py):
    a 14x14/14 conv of the 112x112 chip to 8x8x8 = 512 values."""
    weight = np.random.default_rng(0).normal(size=(8, 3, 14, 14)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["data", "w"], ["conv"], kernel_shape=[14, 14], strides=[14, 14]),
        helper.make_node("Flatten", ["conv"], ["fc1"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_stub",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 512])],
        initializer=[numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(FacesConfig())


@pytest.fixture(scope="module")
def dlib():
    return make_embedder(EmbedderConfig())


@pytest.fixture(scope="module")
def stub(tmp_path_factory) -> ArcFaceEmbedder:
    path = tmp_path_factory.mktemp("model") / "arcface.onnx"
    _arcface_stub(path)
    return ArcFaceEmbedder(path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'safecity.db'}", tmp_path / "media")
    info = create_watchlist(
        opened,
        "missing",
        by="alice",
        legal_basis="Police Act s.12",
        authority="District Court",
        reference="2024/117",
        valid_from=NOW - timedelta(days=1),
        valid_until=NOW + timedelta(days=30),
        cameras=None,
        purpose="find missing persons",
    )
    approve(opened, info.authorisation_id, by="bob")
    yield opened
    opened.close()


@pytest.fixture
def enrolled(store: Store, data_dir: Path, detector, dlib) -> dict[str, int]:
    """Obama and Biden enrolled with dlib (by alice); Biden's kept face photo then deleted."""
    images = data_dir / "images"
    ids = {}
    for name, photo in (("Barack Obama", "obama.jpg"), ("Joe Biden", "biden.jpg")):
        result = enroll(store, "missing", name, [images / photo], detector, dlib, by="alice")
        ids[name] = result.person_id
        if name == "Joe Biden":
            store.media.path(result.photo_paths[0]).unlink()  # as retention would
    return ids


def _templates(store: Store, person_id: int) -> list[Template]:
    with store.transaction() as session:
        rows = session.scalars(select(Template).where(Template.person_id == person_id))
        return [(t.embedder, t.dim, t.source_sha256, t.photo_path, t.enrolled_by) for t in rows]


@pytest.mark.slow
def test_reembed_moves_a_person_to_the_new_embedder_and_flags_a_lost_photo(
    store: Store, enrolled, detector, stub
) -> None:
    wl = get_watchlist(store, "missing").id
    assert persons_without_templates(store, "dlib") == {}
    assert persons_without_templates(store, stub.name) == {wl: 2}  # nobody would match

    result = reembed(store, detector, stub, by="carol")

    assert result.embedder == stub.name and result.refused == ()
    outcome = {p.person_name: p for p in result.persons}
    assert outcome["Barack Obama"].status == "re-embedded" and outcome["Barack Obama"].added == 1
    biden = outcome["Joe Biden"]
    assert biden.status == "needs re-enrolment" and biden.added == 0
    assert "kept face photo is gone" in biden.problems[0]
    assert [p.person_name for p in result.needs_reenrolment] == ["Joe Biden"]
    assert persons_without_templates(store, stub.name) == {wl: 1}

    (old, new) = sorted(_templates(store, enrolled["Barack Obama"]), key=lambda t: t[0] != "dlib")
    assert old[0] == "dlib" and new[0] == stub.name and new[1] == 512
    assert new[2] == old[2]  # the same enrolment photo, by its sha256
    assert new[4] == "alice"  # the enroller stays the enroller (four-eyes rule)
    assert new[3] != old[3] and store.media.path(new[3]).read_bytes() == (
        store.media.path(old[3]).read_bytes()
    )  # a photo of its own, a copy of the kept one
    vectors, entries = load_templates(store, stub.name)
    assert vectors.shape == (1, 512) and entries[0].person_name == "Barack Obama"
    assert abs(float(np.linalg.norm(vectors[0])) - 1) < 1e-5

    (record,) = audit.list_records(store, action="enrolment.reembed")
    assert record.actor == "carol" and record.object == f"person:{enrolled['Barack Obama']}"
    kept = hashlib.sha256(store.media.path(new[3]).read_bytes()).hexdigest()
    assert record.details["photos_sha256"] == [kept]
    assert record.details["sources_sha256"] == [old[2]]
    assert record.details["embedder"] == stub.name and record.details["templates"] == 1
    assert audit.verify(store).ok

    again = reembed(store, detector, stub, by="carol")  # nothing left to do for Obama
    assert {p.person_name: p.status for p in again.persons} == {
        "Barack Obama": "up to date",
        "Joe Biden": "needs re-enrolment",
    }
    assert again.added == 0 and len(audit.list_records(store, action="enrolment.reembed")) == 1


@pytest.mark.slow
def test_reembed_respects_the_authorisation(store: Store, enrolled, detector, stub) -> None:
    later = ManualClock(NOW + timedelta(days=31))
    with pytest.raises(AuthorisationError, match="expired on .*; re-embedding refused"):
        reembed(store, detector, stub, by="carol", watchlist="missing", clock=later)
    result = reembed(store, detector, stub, by="carol", clock=later)
    assert result.persons == () and "expired" in result.refused[0]
    revoke(store, get_watchlist(store, "missing").authorisation_id, by="bob", reason="case closed")
    with pytest.raises(AuthorisationError, match="was revoked; re-embedding refused"):
        reembed(store, detector, stub, by="carol", watchlist="missing")
    assert persons_without_templates(store, stub.name) == {get_watchlist(store, "missing").id: 2}


@pytest.mark.slow
def test_reembedded_person_is_found_by_faceres(store, enrolled, detector, data_dir) -> None:
    """dlib → FaceRes: a probe photo embedded by FaceRes finds the re-embedded person."""
    try:
        faceres = make_embedder(EmbedderConfig(kind="faceres"))
    except Exception as error:  # this version has no FaceRes embedder yet
        pytest.skip(f"FaceRes embedder not available: {error}")
    result = reembed(store, detector, faceres, by="carol")
    assert {p.person_name: p.status for p in result.persons}["Barack Obama"] == "re-embedded"
    vectors, entries = load_templates(store, faceres.name)
    from safecity.identity.enrol import check_photo

    probe = check_photo(data_dir / "images" / "obama2.jpg", detector)
    vector = faceres.embed(probe.image, probe.face)
    scores = vectors @ vector
    assert entries[int(np.argmax(scores))].person_name == "Barack Obama"


@pytest.mark.slow
def test_watchlist_list_shows_the_gap_and_reembed_command_exits_1(
    store: Store, enrolled, stub, tmp_path: Path
) -> None:
    model = tmp_path / "arcface.onnx"
    _arcface_stub(model)
    config = tmp_path / "arcface.yaml"
    config.write_text(f"embedder:\n  kind: arcface\n  model_path: {model}\n")
    env = dict(os.environ, SAFECITY_HOME=str(tmp_path / "home"), SAFECITY_USER="carol")
    base = [
        sys.executable,
        "-m",
        "safecity",
        "--config",
        str(config),
        "--db",
        str(store.engine.url),
    ]
    base += ["--media", str(store.media_dir)]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=120)

    listed = run("watchlist", "list")
    assert listed.returncode == 0, listed.stderr
    assert "2 enrolled person(s) have no template for the configured embedder" in listed.stdout
    done = run("watchlist", "reembed")
    assert done.returncode == 1, done.stderr + done.stdout
    assert "1 template(s) added" in done.stdout and "needs re-enrolment" in done.stdout
    assert "'Joe Biden' on 'missing': photo" in done.stdout and "Traceback" not in done.stderr
    listed = run("watchlist", "list")
    assert "1 enrolled person(s) have no template" in listed.stdout
    (row,) = json.loads(run("watchlist", "list", "--json").stdout)
    assert row["name"] == "missing" and row["persons"] == 2
    assert row["persons_without_template"] == 1 and row["embedder"].startswith("arcface-")
