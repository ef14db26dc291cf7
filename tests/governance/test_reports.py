"""Reports: the DPIA draft and the transparency report, figures checked against the store.

The scene below stores real rows through the real paths (watchlists approved by a
second user, the store sink, four-eyes review, audit records), so every figure
the reports print has a known value.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from governance_support import HOUR, T0, add_person, authorised_watchlist, make_event, unit
from sqlalchemy import func, select

from safecity.config import CameraConfig, SafecityConfig
from safecity.governance import audit
from safecity.governance.accuracy import (
    EvaluationError,
    latest_evaluation,
    operating_point,
    save_evaluation,
)
from safecity.governance.authorisations import approve, start_emergency
from safecity.governance.charts import bar_chart, stacked_bar_chart
from safecity.governance.reports import (
    NO_SENSITIVE_TRAITS,
    ReportError,
    gather_dpia,
    gather_transparency,
    record_export,
    render_dpia_html,
    render_transparency_html,
)
from safecity.governance.review import review_match
from safecity.identity.watchlists import create_watchlist
from safecity.store import Store
from safecity.store.schema import EventRecord, IdentificationUse
from safecity.store.sink import StoreSink
from safecity.vision.types import Match

MIN = timedelta(minutes=1)
START, END = T0, T0 + 150 * MIN  # the transparency window [08:00, 10:30)


def _config(tmp_path: Path) -> SafecityConfig:
    config = SafecityConfig(
        cameras=[
            CameraConfig(name="gate-1", url="rtsp://cam/1", location="North gate, Main St"),
            CameraConfig(name="plaza", url="rtsp://cam/3", location="Town hall plaza"),
        ]
    )
    config.audit.key_path = tmp_path / "audit" / "key.pem"
    config.audit.heads_path = tmp_path / "audit" / "heads.jsonl"
    return config


def _use(store: Store, camera: str, watchlist, start, end=None, last_seen=None) -> None:
    with store.transaction(write=True) as session:
        session.add(
            IdentificationUse(
                camera=camera,
                watchlist_id=watchlist.id,
                watchlist_name=watchlist.name,
                authorisation_id=watchlist.authorisation_id,
                started_at=start,
                last_seen_at=last_seen or end,
                ended_at=end,
            )
        )


def _matched(store: Store, clock, watchlist, person_id: int, camera: str, at, track: int) -> int:
    match = Match(person_id, "Jane Doe", watchlist.id, watchlist.name, 0.97, 0.2)
    return StoreSink(store, clock).write(
        make_event(_image(), camera=camera, track_id=track, start=at, match=match)
    )


def _image():
    import numpy as np

    return np.full((64, 48, 3), 90, np.uint8)


@pytest.fixture
def scene(store: Store, clock):
    """Two authorisations, identification uses of known length, matches of every outcome."""
    wanted = authorised_watchlist(store, clock, "wanted")  # all cameras, Police Act s.12
    missing = create_watchlist(
        store,
        "missing-children",
        by="dave",
        legal_basis="Children Act 1989 s.46",
        authority="Family Court",
        reference="FC-77",
        purpose="find a missing child",
        valid_from=T0 - HOUR,
        valid_until=T0 + 48 * HOUR,
        cameras=["gate-1", "market-2"],
        evidence_days=30,
        clock=clock,
    )
    approve(store, missing.authorisation_id, by="erin", clock=clock)
    jane = add_person(store, wanted.id, "Jane Doe", [unit(1)])
    add_person(store, missing.id, "Tom Roe", [unit(2), unit(3)], by="dave")

    # gate-1: wanted 08:00–10:00 and missing 09:00–10:45 (overlap counted once; clipped
    # at 10:30) → 2.5 h; a use after the window does not count.
    _use(store, "gate-1", wanted, T0, T0 + 120 * MIN)
    _use(store, "gate-1", missing, T0 + 60 * MIN, T0 + 165 * MIN)
    _use(store, "gate-1", wanted, T0 + 180 * MIN, T0 + 240 * MIN)
    # market-2 (not in the config): 07:00–08:15 clipped to 0.25 h, and one still running
    # since 08:30, last seen 09:30 → 1.25 h.
    _use(store, "market-2", wanted, T0 - 60 * MIN, T0 + 15 * MIN)
    _use(store, "market-2", wanted, T0 + 30 * MIN, last_seen=T0 + 90 * MIN)

    sink = StoreSink(store, clock)
    plain = sink.write(make_event(_image(), camera="gate-1", track_id=1, start=T0 + 5 * MIN))
    confirmed = _matched(store, clock, wanted, jane, "gate-1", T0 + 10 * MIN, 2)
    rejected = _matched(store, clock, wanted, jane, "gate-1", T0 + 20 * MIN, 3)
    confirmed2 = _matched(store, clock, wanted, jane, "market-2", T0 + 40 * MIN, 4)
    candidate = _matched(store, clock, wanted, jane, "gate-1", T0 + 50 * MIN, 5)
    later = _matched(store, clock, wanted, jane, "gate-1", T0 + 200 * MIN, 6)  # after window
    for event in (confirmed, confirmed2):
        review_match(store, event, by="carol", decision="confirm", clock=clock)
        review_match(store, event, by="dave", decision="confirm", clock=clock)
    review_match(store, rejected, by="carol", decision="reject", clock=clock)

    clock.set(T0 + 60 * MIN)
    for action, ref in (("subject.access", "SR-1"), ("subject.access", "SR-1")):
        audit.record(
            store,
            actor="alice",
            action=action,
            purpose="subject-request",
            details={"request_ref": ref},
            clock=clock,
        )
    audit.record(
        store,
        actor="alice",
        action="subject.erase",
        object="person:9",
        purpose="subject-request",
        details={"request_ref": "SR-2"},
        clock=clock,
    )
    for deleted in (
        {"snapshots": 3, "events": 2, "files": {"orphans": 1}, "dry_run": False},
        {"snapshots": 4, "templates": 1},
    ):
        audit.record(
            store, actor=audit.SYSTEM_ACTOR, action="retention.run", details=deleted, clock=clock
        )
    clock.set(T0 + 200 * MIN)  # outside the window
    audit.record(
        store,
        actor="alice",
        action="subject.access",
        purpose="subject-request",
        details={"request_ref": "SR-3"},
        clock=clock,
    )
    clock.set(T0 + 240 * MIN)
    return {
        "wanted": wanted,
        "missing": missing,
        "events": {
            "plain": plain,
            "confirmed": confirmed,
            "rejected": rejected,
            "confirmed2": confirmed2,
            "candidate": candidate,
            "later": later,
        },
    }


# -- transparency -------------------------------------------------------------------
def test_transparency_figures_are_exact(store: Store, clock, scene, tmp_path) -> None:
    report = gather_transparency(store, _config(tmp_path), START, END, by="alice", clock=clock)

    cameras = {c.camera: c for c in report.cameras}
    # Configured cameras first (plaza with nothing), then those seen only in the records.
    assert [c.camera for c in report.cameras] == ["gate-1", "plaza", "market-2"]
    assert cameras["gate-1"].identification_seconds == 2.5 * 3600
    assert cameras["gate-1"].uses == 2
    assert cameras["market-2"].identification_seconds == 1.25 * 3600
    assert cameras["market-2"].uses == 2
    assert cameras["plaza"].identification_hours == 0 and cameras["plaza"].events == 0
    assert cameras["gate-1"].location == "North gate, Main St"
    assert report.identification_hours == 3.75

    per_watchlist = {(w.camera, w.watchlist): w for w in report.watchlist_hours}
    assert per_watchlist[("gate-1", "wanted")].hours == 2.0
    assert per_watchlist[("gate-1", "missing-children")].hours == 1.5
    assert per_watchlist[("market-2", "wanted")].hours == 1.25
    assert per_watchlist[("market-2", "wanted")].still_open == 1

    g, m = cameras["gate-1"], cameras["market-2"]
    assert (g.events, g.candidate, g.confirmed, g.rejected, g.annulled) == (4, 1, 1, 1, 0)
    assert (m.events, m.candidate, m.confirmed, m.rejected) == (1, 0, 1, 0)
    matches = report.matches
    assert (matches.candidate, matches.confirmed, matches.rejected, matches.total) == (1, 2, 1, 4)
    assert matches.decided == 3 and matches.false_match_rate == pytest.approx(1 / 3)

    # The same figures straight from the database.
    with store.transaction() as session:
        in_window = (EventRecord.started_at >= START, EventRecord.started_at < END)
        assert report.events == session.scalar(select(func.count(EventRecord.id)).where(*in_window))
        for status in ("candidate", "confirmed", "rejected"):
            n = session.scalar(
                select(func.count(EventRecord.id)).where(
                    *in_window, EventRecord.match_status == status
                )
            )
            assert getattr(matches, status) == n

    assert report.subject_requests.records == 3
    assert report.subject_requests.requests == 2
    assert report.subject_requests.by_action == {"subject.access": 1, "subject.erase": 1}
    assert report.retention.runs == 2
    assert report.retention.deleted == {
        "events": 2,
        "files.orphans": 1,
        "snapshots": 7,
        "templates": 1,
    }
    assert report.authorisations_by_status == {"active": 2}
    assert {a.legal_basis for a in report.authorisations} == {
        "Police Act s.12",
        "Children Act 1989 s.46",
    }
    assert [p.period for p in report.periods] == ["2026-11-27"]
    assert report.periods[0].confirmed == 2 and report.periods[0].rejected == 1
    assert report.generated_at == clock.now() and report.generated_by == "alice"


def test_transparency_html_shows_the_figures_and_charts(store, clock, scene, tmp_path) -> None:
    report = gather_transparency(store, _config(tmp_path), START, END, clock=clock)
    html = render_transparency_html(report)

    def cell(id_: str) -> str:
        found = re.search(rf'id="{id_}">([^<]*)<', html)
        assert found, id_
        return found.group(1)

    assert cell("total-hours") == "3.75"
    assert cell("total-events") == "5"
    assert cell("total-confirmed") == "2" and cell("total-rejected") == "1"
    assert cell("false-match-rate") == "33.3 %"
    assert cell("subject-requests") == "2" and cell("retention-runs") == "2"
    assert html.count("<svg") == 3  # hours per camera, outcomes, matches per day
    assert 'aria-label="Hours of identification per camera"' in html
    assert "North gate, Main St" in html
    json.dumps(report.to_dict())  # the --json form


def test_false_match_rate_is_na_without_decisions(store: Store, clock) -> None:
    wanted = authorised_watchlist(store, clock)
    person = add_person(store, wanted.id, "Jane Doe", [unit(1)])
    _matched(store, clock, wanted, person, "gate-1", T0, 1)
    report = gather_transparency(store, None, T0 - HOUR, T0 + HOUR, clock=clock)
    assert report.matches.candidate == 1 and report.matches.false_match_rate is None
    html = render_transparency_html(report)
    assert 'id="false-match-rate">n/a<' in html
    assert report.to_dict()["matches"]["false_match_rate"] is None


def test_an_empty_window_is_refused(store: Store, clock) -> None:
    with pytest.raises(ReportError, match="empty"):
        gather_transparency(store, None, T0, T0, clock=clock)
    with pytest.raises(ReportError, match="time zone"):
        gather_transparency(store, None, T0.replace(tzinfo=None), T0 + HOUR, clock=clock)


def test_long_windows_chart_matches_per_month(store: Store, clock) -> None:
    report = gather_transparency(store, None, T0 - 100 * 24 * HOUR, T0, clock=clock)
    assert report.period_kind == "month"
    assert [p.period for p in report.periods] == ["2026-08", "2026-09", "2026-10", "2026-11"]


# -- DPIA ---------------------------------------------------------------------------
def test_dpia_describes_the_live_system(store: Store, clock, scene, tmp_path) -> None:
    config = _config(tmp_path)
    config.review.required_confirmations = 3
    report = gather_dpia(store, config, by="alice", evaluations_home=tmp_path, clock=clock)

    cameras = {c.name: c for c in report.cameras}
    assert list(cameras) == ["gate-1", "plaza", "market-2"]
    assert cameras["gate-1"].location == "North gate, Main St"
    assert cameras["market-2"].configured is False
    assert set(cameras["market-2"].seen_in) == {"events", "identification", "authorisation scope"}
    assert cameras["gate-1"].events == 5  # all time: the later match too
    # All time: gate-1 08:00–10:45 and 11:00–12:00; market-2 07:00–08:15 and 08:30–09:30.
    assert cameras["gate-1"].identification_hours == 3.75
    assert cameras["market-2"].identification_hours == 2.25
    legal = {a.legal_basis: a for a in report.authorisations}
    assert set(legal) == {"Police Act s.12", "Children Act 1989 s.46"}
    assert legal["Children Act 1989 s.46"].cameras == ("gate-1", "market-2")
    assert legal["Children Act 1989 s.46"].evidence_days == 30
    assert all(a.in_force for a in report.authorisations)
    assert {w.name: w.persons for w in report.watchlists} == {"missing-children": 1, "wanted": 1}
    assert {w.name: w.templates for w in report.watchlists} == {"missing-children": 2, "wanted": 1}
    assert report.purposes == ("find a missing child", "find missing persons")
    kept = {d.name: d.count for d in report.data_kept}
    assert kept["Face templates"] == 3 and kept["Events"] == 6 and kept["Match records"] == 5
    observed = report.accuracy.observed  # all time
    assert (observed.confirmed, observed.rejected, observed.candidate) == (2, 1, 2)
    assert observed.false_match_rate == pytest.approx(1 / 3)
    assert not report.accuracy.evaluated
    assert report.accuracy.problem == "no evaluation on record: run safecity eval lfw"
    assert report.audit_ok
    safeguards = {s.name: s for s in report.safeguards}
    assert "3 different reviewers" in safeguards["Four-eyes review of matches"].detail
    assert safeguards["Two-user approval of authorisations"].state == "in force"
    assert safeguards["Retention enforced by the system"].state == "in force"
    assert safeguards["Tamper-evident audit trail"].state == "check"  # no signed head yet

    html = render_dpia_html(report)
    for basis in ("Police Act s.12", "Children Act 1989 s.46"):
        assert f'class="legal-basis">{basis}<' in html
    assert "Family Court" in html and "FC-77" in html
    assert "No sensitive-trait inference" in html
    for trait in ("ethnicity", "religion", "health", "sexual orientation", "political"):
        assert trait in html and trait in NO_SENSITIVE_TRAITS
    assert 'id="no-evaluation">no evaluation on record: run safecity eval lfw<' in html
    assert 'id="observed-fmr">33.3 %<' in html
    assert html.count('class="dpo"') >= 10
    assert html.count("<svg") == 2  # hours per camera, outcomes


def test_dpia_accuracy_comes_from_the_latest_evaluation(store: Store, clock, tmp_path) -> None:
    config = _config(tmp_path)
    report = {
        "protocol": "dev",
        "embedder": "dlib",
        "pairs": 1000,
        "accuracy": 0.9896,
        "accuracy_std": None,
        "threshold": 0.907,
        "tar_at_far": 0.953,
        "far_threshold": 0.923,
        "far_target": 0.001,
        "at_threshold": {"threshold": 0.925, "tar": 0.941, "far": 0.0009, "accuracy": 0.97},
    }
    save_evaluation(report, home=tmp_path, clock=clock)
    dpia = gather_dpia(store, config, evaluations_home=tmp_path, clock=clock)
    acc = dpia.accuracy
    assert acc.evaluated and acc.problem == "" and acc.evaluated_at == clock.now()
    assert (acc.tar_at_threshold, acc.far_at_threshold) == (0.941, 0.0009)
    assert acc.accuracy == 0.9896 and acc.tar_at_far == 0.953 and acc.pairs == 1000
    html = render_dpia_html(dpia)
    assert "94.10 %" in html and "0.090 %" in html and "98.96 %" in html

    # Another threshold configured: the figures on record are not at it, and the DPIA says so.
    config.matcher.threshold = 0.93
    dpia = gather_dpia(store, config, evaluations_home=tmp_path, clock=clock)
    assert dpia.accuracy.tar_at_threshold is None
    assert "does not give TAR and FAR at the configured threshold 0.93" in dpia.accuracy.problem


def test_evaluations_are_saved_and_read_back(tmp_path: Path, clock) -> None:
    assert latest_evaluation(tmp_path) is None
    path = save_evaluation({"accuracy": 0.98, "roc_png": "roc.png"}, home=tmp_path, clock=clock)
    assert path == tmp_path / "evaluations" / "lfw.json"
    saved = latest_evaluation(tmp_path)
    assert saved is not None and saved.report == {"accuracy": 0.98, "roc_png": "roc.png"}
    assert saved.saved_at == clock.now() and saved.at_threshold(0.925) is None
    save_evaluation({"accuracy": 0.99}, home=tmp_path, clock=clock)
    assert latest_evaluation(tmp_path).report == {"accuracy": 0.99}
    with pytest.raises(EvaluationError, match="not a number"):
        save_evaluation({"accuracy": float("nan")}, home=tmp_path, clock=clock)
    assert latest_evaluation(tmp_path).report == {"accuracy": 0.99}  # the old one stays
    path.write_text("{broken")
    with pytest.raises(EvaluationError, match="not valid JSON"):
        latest_evaluation(tmp_path)


def test_operating_point_counts_no_face_pairs_as_rejections() -> None:
    import numpy as np

    scores = np.array([0.95, 0.93, np.nan, 0.5, 0.94, np.nan])
    same = np.array([True, True, True, False, False, False])
    point = operating_point(scores, same, 0.925)
    assert point["tar"] == pytest.approx(2 / 3) and point["far"] == pytest.approx(1 / 3)
    assert point["accuracy"] == pytest.approx(3 / 6)  # no-face pairs are always errors


def test_dpia_shows_a_broken_audit_trail(store: Store, clock, tmp_path) -> None:
    config = _config(tmp_path)
    audit.record(store, actor="alice", action="search.events", clock=clock)
    from safecity.governance.audit import HeadSigner

    HeadSigner(config.audit.key_path, config.audit.heads_path).sign(store, clock)
    report = gather_dpia(store, config, evaluations_home=tmp_path, clock=clock)
    assert report.audit_ok
    assert {s.name: s.state for s in report.safeguards}["Tamper-evident audit trail"] == "in force"
    # A head signed for a record the log no longer has: the trail was truncated.
    lines = config.audit.heads_path.read_text().splitlines()
    head = json.loads(lines[-1])
    head["id"] = 99
    config.audit.heads_path.write_text(json.dumps(head) + "\n")
    report = gather_dpia(store, config, evaluations_home=tmp_path, clock=clock)
    assert not report.audit_ok
    assert {s.name: s.state for s in report.safeguards}["Tamper-evident audit trail"] == "broken"
    assert "state-broken" in render_dpia_html(report)


def test_an_emergency_use_without_a_request_shows_its_deadline(store, clock, tmp_path) -> None:
    start_emergency(
        store,
        by="alice",
        purpose="find an abducted child",
        reason="imminent danger",
        valid_until=T0 + 12 * HOUR,
        cameras=["gate-1"],
        clock=clock,
    )
    report = gather_dpia(store, _config(tmp_path), evaluations_home=tmp_path, clock=clock)
    (auth,) = report.authorisations
    assert auth.status == "emergency" and auth.in_force and auth.legal_basis == ""
    html = render_dpia_html(report)
    assert "must be filed by 2026-11-28 08:00 UTC" in html


# -- export, charts, command --------------------------------------------------------
def test_exports_are_audited(store: Store, clock) -> None:
    record_export(
        store,
        by="alice",
        report="transparency",
        start=T0,
        end=T0 + HOUR,
        file=Path("out/t.html"),
        clock=clock,
    )
    (rec,) = audit.list_records(store, action="export")
    assert rec.actor == "alice" and rec.object == "report:transparency"
    assert rec.details == {
        "report": "transparency",
        "from": T0.isoformat(),
        "to": (T0 + HOUR).isoformat(),
        "file": "out/t.html",
    }
    assert audit.verify(store).ok


def test_charts_are_inline_svg_with_ids_of_their_own() -> None:
    a = bar_chart(["gate-1", "plaza"], [2.5, 0.0], title="Hours", ylabel="hours")
    b = stacked_bar_chart(
        ["2026-11-27", "2026-11-28"],
        {"confirmed": [2, 0], "rejected": [1, 1]},
        title="Matches per day",
        ylabel="matches",
    )
    for svg in (a, b):
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
        assert "<?xml" not in svg and "<!DOCTYPE" not in svg
    assert "gate-1" in a and ">2.5<" in a  # text kept as text, value labels on bars
    assert "confirmed" in b and "rejected" in b
    ids = re.findall(r'id="([^"]+)"', a), re.findall(r'id="([^"]+)"', b)
    assert ids[0] and ids[1] and not set(ids[0]) & set(ids[1])
    assert bar_chart([], [], title="x", ylabel="y") == ""


def test_report_command_writes_html_and_json(
    store: Store, clock, scene, tmp_path, monkeypatch
) -> None:
    """The ``report`` group in-process (a subprocess test needs it registered in cli.py)."""
    from typer.testing import CliRunner

    from safecity.commands.common import state
    from safecity.commands.report import app

    if store.engine.dialect.name != "sqlite":
        pytest.skip("one backend is enough for the command")
    monkeypatch.setenv("SAFECITY_HOME", str(tmp_path / "home"))  # no evaluation, no heads
    url = store.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    out = tmp_path / "reports" / "transparency.html"
    dpia = tmp_path / "dpia.html"
    window = ["--from", START.isoformat(), "--to", END.isoformat()]

    def run(user: str, *args: str):
        state.reset(None, url, store.media_dir, user)
        try:
            return runner.invoke(app, list(args))
        finally:
            if state._store is not None:
                state._store.close()
            state.reset(None, None, None, None)

    done = run("alice", "transparency", *window, "--out", str(out))
    assert done.exit_code == 0, done.output
    assert 'id="total-hours">3.75<' in out.read_text()
    done = run("alice", "transparency", *window, "--json")
    assert done.exit_code == 0, done.output
    figures = json.loads(done.stdout)
    assert figures["identification_hours"] == 3.75 and figures["events"] == 5
    done = run("bob", "dpia", "--out", str(dpia))
    assert done.exit_code == 0, done.output
    assert "Police Act s.12" in dpia.read_text()
    assert "no evaluation on record" in dpia.read_text()

    exports = audit.list_records(store, action="export", newest_first=False)
    assert [(r.actor, r.details["report"], r.details["file"]) for r in exports] == [
        ("alice", "transparency", str(out)),
        ("alice", "transparency", None),
        ("bob", "dpia", str(dpia)),
    ]
    assert exports[0].details["from"] == START.isoformat()

    done = run("alice", "transparency", "--from", END.isoformat(), "--to", START.isoformat())
    assert done.exit_code != 0 and isinstance(done.exception, ReportError)
    assert len(audit.list_records(store, action="export")) == 3  # nothing exported, nothing audited


def test_report_commands_as_an_operator_runs_them(store: Store, clock, scene, tmp_path) -> None:
    """``safecity report …`` in a real process (needs the group registered in safecity.cli)."""
    import os
    import subprocess
    import sys

    if store.engine.dialect.name != "sqlite":
        pytest.skip("one backend is enough for the command")
    url = store.engine.url.render_as_string(hide_password=False)
    env = dict(os.environ, SAFECITY_HOME=str(tmp_path / "home"))
    base = [sys.executable, "-m", "safecity", "--db", url, "--media", str(store.media_dir)]

    def safecity(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*base, "--user", "alice", "report", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )

    done = safecity("transparency", "--from", START.isoformat(), "--to", END.isoformat(), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["matches"]["confirmed"] == 2
    page = tmp_path / "dpia.html"
    done = safecity("dpia", "--out", str(page))
    assert done.returncode == 0, done.stderr
    assert "Children Act 1989 s.46" in page.read_text()
    done = safecity("transparency", "--from", "yesterday", "--to", END.isoformat())
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: --from")
    assert [r.details["report"] for r in audit.list_records(store, action="export")] == [
        "dpia",
        "transparency",
    ]


# -- end to end -----------------------------------------------------------------------
NOW = T0 + HOUR


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, data_dir):
    """One real pipeline run on the pedestrians sample (OpenCV's vtest.avi), 2 frames/s,
    with an approved watchlist on its camera and one enrolled person. Everything runs on
    one manual clock at NOW (frames from NOW on), whatever the day."""
    from safecity.governance.clock import ManualClock
    from safecity.governance.uses import AuditedGallery
    from safecity.identity.enrol import enroll
    from safecity.identity.gallery import GalleryCache
    from safecity.pipeline import Stages
    from safecity.runtime.local import analyze_one
    from safecity.store import open_store
    from safecity.vision.embedder import make_embedder
    from safecity.vision.faces import FaceDetector

    folder = tmp_path_factory.mktemp("sample-run")
    video = data_dir / "video" / "pedestrians-768x576.avi"
    camera = CameraConfig(name="campus", url=str(video), fps=2, location="University campus")
    config = SafecityConfig(cameras=[camera])
    config.audit.key_path = folder / "audit" / "key.pem"
    config.audit.heads_path = folder / "audit" / "heads.jsonl"
    store = open_store(f"sqlite:///{folder / 'safecity.db'}", folder / "media")
    clock = ManualClock(NOW)
    info = create_watchlist(
        store,
        "wanted",
        by="alice",
        legal_basis="Test Act s.1",
        authority="Test Court",
        reference="TC-2026-001",
        purpose="integration test",
        valid_from=NOW - 12 * HOUR,
        valid_until=NOW + 12 * HOUR,
        cameras=["campus"],
        clock=clock,
    )
    approve(store, info.authorisation_id, by="bob", clock=clock)
    enroll(
        store,
        "wanted",
        "Barack Obama",
        [data_dir / "images" / "obama.jpg"],
        detector=FaceDetector(config.faces),
        embedder=make_embedder(config.embedder),
        by="alice",
        clock=clock,
    )
    gallery = AuditedGallery(GalleryCache(store, config), store, clock=clock)
    try:
        run = analyze_one(
            camera,
            config,
            Stages.load(config),
            write=StoreSink(store, clock).write_many,
            matcher_for=gallery.matcher_for,
            start_time=NOW,
        )
    finally:
        gallery.close()
    yield store, config, run, clock
    store.close()


@pytest.mark.slow
def test_reports_from_a_pipeline_run_match_the_database(sample_run, tmp_path) -> None:
    store, config, run, clock = sample_run
    start, end = NOW - HOUR, NOW + HOUR
    report = gather_transparency(store, config, start, end, by="alice", clock=clock)
    with store.transaction() as session:
        uses = session.scalars(select(IdentificationUse)).all()
        events = session.scalar(select(func.count(EventRecord.id)))
        statuses = dict(
            session.execute(
                select(EventRecord.match_status, func.count(EventRecord.id))
                .where(EventRecord.match_status.is_not(None))
                .group_by(EventRecord.match_status)
            ).all()
        )
    # One use of the watchlist on the camera, ended when the run closed the gallery.
    assert len(uses) == 1 and uses[0].camera == "campus" and uses[0].ended_at is not None
    seconds = (uses[0].ended_at - uses[0].started_at).total_seconds()
    assert 74 <= seconds <= 80  # the clip is 79.5 s (795 frames at 10 frames/s)

    (campus,) = report.cameras
    assert campus.camera == "campus" and campus.location == "University campus"
    assert campus.identification_seconds == seconds
    assert report.identification_hours == seconds / 3600
    assert report.events == campus.events == events == len(run.event_ids) > 10
    assert report.matches.total == sum(statuses.values())
    assert report.matches.candidate == statuses.get("candidate", 0)
    assert report.matches.false_match_rate is None  # nothing reviewed
    html = render_transparency_html(report)
    assert f'id="total-events">{events}<' in html
    assert f'id="total-hours">{seconds / 3600:.2f}<' in html
    assert "<svg" in html

    dpia = gather_dpia(store, config, by="alice", evaluations_home=tmp_path, clock=clock)
    (camera,) = dpia.cameras
    assert camera.identification_hours == seconds / 3600 and camera.events == events
    assert [(w.name, w.persons, w.templates) for w in dpia.watchlists] == [("wanted", 1, 1)]
    assert dpia.audit_ok
    page = render_dpia_html(dpia)
    assert 'class="legal-basis">Test Act s.1<' in page and "University campus" in page
    assert "No sensitive-trait inference" in page


def test_past_figures_do_not_drift_when_retention_deletes_events(store: Store, clock, portrait):
    """Outcomes come from the audit trail: a month later, with the event rows gone, the
    report for the same window says the same."""
    from governance_support import stored_match

    from safecity.governance.retention import run_retention

    start = clock.now() - HOUR
    confirmed = stored_match(store, clock, portrait, name="w1")
    rejected = stored_match(store, clock, portrait, name="w2")
    stored_match(store, clock, portrait, name="w3")  # nobody reviews it
    for reviewer in ("carol", "dave"):
        review_match(store, confirmed.event_id, by=reviewer, decision="confirm", clock=clock)
    review_match(store, rejected.event_id, by="carol", decision="reject", clock=clock)
    end = clock.now() + HOUR
    config = SafecityConfig()
    clock.advance(timedelta(hours=80))
    run_retention(store, config, clock=clock)  # the unreviewed candidate expires
    before = gather_transparency(store, config, start, end, clock=clock).matches
    assert (before.confirmed, before.rejected, before.expired, before.candidate) == (1, 1, 1, 0)
    assert before.false_match_rate == 0.5
    clock.advance(timedelta(days=200))
    run_retention(store, config, clock=clock)
    with store.transaction() as session:
        assert session.scalar(select(func.count(EventRecord.id))) == 0
    after = gather_transparency(store, config, start, end, clock=clock).matches
    assert after == before


# -- DPIA: open-set (1:N) section ------------------------------------------------------
def _identify_record() -> dict:
    """A saved identify evaluation whose figures at 0.925 are known by hand."""
    import numpy as np

    from safecity.identity.openset import Searches

    searches = Searches(
        mated=4,
        nonmated=4,
        gallery_size=2,
        mated_hits=np.array([0.90, 0.93, 0.95]),  # one mated search missed at rank 1
        nonmated_top=np.array([0.94, 0.80, 0.70, 0.60]),
        impostor_tail=np.array([0.94, 0.80, 0.70, 0.60, 0.50]),
        impostors=8,
    )
    return {
        "protocol": "openset-1n",
        "images": "lfw-dev/images",
        "gallery_size": 2,
        "mated": 4,
        "nonmated": 4,
        "fpir_targets": [0.1, 0.01, 0.001],
        "embedders": {"dlib": {"searches": searches.to_dict()}},
    }


def test_dpia_open_set_section_without_an_evaluation(store: Store, clock, scene, tmp_path):
    report = gather_dpia(store, _config(tmp_path), evaluations_home=tmp_path, clock=clock)
    os_ = report.open_set
    assert os_ is not None and not os_.evaluated
    assert os_.problem.startswith("no open-set evaluation on record: run safecity eval identify")
    assert {w.name: w.persons for w in os_.watchlists} == {"missing-children": 1, "wanted": 1}
    assert os_.searchable_persons == 2 and os_.estimated_fpir_all is None
    html = render_dpia_html(report)
    assert 'id="open-set"' in html and 'id="what-n-means"' in html
    assert "grows" in html and "no open-set evaluation on record" in html


def test_dpia_open_set_figures_at_the_configured_threshold(store, clock, scene, tmp_path):
    from safecity.identity.watchlists import get_watchlist

    # A person enrolled only under another embedder: on the list, never matched with dlib.
    add_person(store, get_watchlist(store, "wanted").id, "Ann Other", [unit(9)], embedder="x")
    save_evaluation(_identify_record(), home=tmp_path, clock=clock, kind="identify")
    report = gather_dpia(store, _config(tmp_path), evaluations_home=tmp_path, clock=clock)
    os_ = report.open_set
    assert os_.evaluated and os_.problem == "" and os_.threshold == 0.925
    assert (os_.fnir_at_threshold, os_.fpir_at_threshold) == (0.5, 0.25)  # by hand
    assert os_.rank1 == 0.75 and os_.fmr_at_threshold == 1 / 8
    sizes = {w.name: w for w in os_.watchlists}
    assert sizes["wanted"].persons == 2 and sizes["wanted"].without_template == 1
    # N = 1 on each list (Ann Other cannot match), 2 together: 1 − (7/8)^N.
    assert sizes["wanted"].estimated_fpir == pytest.approx(1 / 8)
    assert os_.searchable_persons == 2
    assert os_.estimated_fpir_all == pytest.approx(1 - (7 / 8) ** 2)
    html = render_dpia_html(report)
    assert 'id="open-set-fnir">50.00 %<' in html and 'id="open-set-fpir">25.00 %<' in html
    assert 'id="open-set-fpir-all">23.438 %<' in html
    assert 'id="open-set-gap"' in html and "safecity watchlist reembed" in html
    assert "Estimate, not a measurement" in html
    assert report.to_dict()["open_set"]["searchable_persons"] == 2
