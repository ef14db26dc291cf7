"""Reading and verifying the audit trail over the API."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from api_support import signed_in
from fastapi import FastAPI

from safecity.config import SafecityConfig
from safecity.governance import audit
from safecity.governance.audit import HeadSigner, canonical_json, list_records
from safecity.store import Store

API = "/api/v1"


def _bypass_sqlite(store: Store, *statements: str) -> None:
    """What an attacker with the database file can do: drop the triggers, edit, recreate."""
    connection = sqlite3.connect(store.engine.url.database)
    connection.executescript(
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;"
        + "".join(s + ";" for s in statements)
    )
    connection.commit()
    connection.close()


def test_auditors_read_the_logins_of_this_test(app: FastAPI, api_store: Store) -> None:
    for name in ("olga", "rita", "olga"):
        signed_in(app, name)
    auditor = signed_in(app, "aude")
    logins = auditor.get(f"{API}/audit", params={"action": "auth.login"}).json()
    assert [r["object"] for r in logins["items"]] == [
        "aude",
        "olga",
        "rita",
        "olga",
    ]  # newest first
    assert logins["next_cursor"] is None
    newest = logins["items"][0]
    assert newest["actor"] == "aude" and newest["action"] == "auth.login"
    assert newest["origin"] == "api testclient (login)"
    assert len(newest["hash"]) == 64 and newest["details"]["ip"] == "testclient"

    prefix = auditor.get(f"{API}/audit", params={"action": "auth."}).json()["items"]
    assert {r["action"] for r in prefix} == {"auth.login"}
    olga = auditor.get(f"{API}/audit", params={"actor": "olga", "action": "auth."}).json()
    assert [r["object"] for r in olga["items"]] == ["olga", "olga"]

    # Keyset pages: the cursor is the id to continue below.
    ids = [r.id for r in list_records(api_store, limit=1000)]
    first = auditor.get(f"{API}/audit", params={"limit": 2}).json()
    assert [r["id"] for r in first["items"]] == ids[:2]
    assert first["next_cursor"] == str(ids[1])
    second = auditor.get(f"{API}/audit", params={"limit": 2, "cursor": first["next_cursor"]})
    assert [r["id"] for r in second.json()["items"]] == ids[2:4]

    at = datetime.fromisoformat(newest["at"])
    since = auditor.get(f"{API}/audit", params={"since": at.isoformat(), "action": "auth."})
    assert [r["id"] for r in since.json()["items"]] == [newest["id"]]
    naive = at.astimezone(UTC).replace(tzinfo=None).isoformat()
    until = auditor.get(f"{API}/audit", params={"until": naive, "action": "auth.login"})
    assert newest["id"] not in [r["id"] for r in until.json()["items"]]
    assert len(until.json()["items"]) == 3


def test_operators_and_viewers_may_not_read_the_audit_trail(app: FastAPI) -> None:
    for name, role in (("vic", "viewer"), ("olga", "operator"), ("rita", "reviewer")):
        client = signed_in(app, name)
        for response in (client.get(f"{API}/audit"), client.post(f"{API}/audit/verify")):
            assert response.status_code == 403
            assert response.json()["detail"] == (
                f"your role ({role}) may not read and verify the audit trail"
            )
    assert signed_in(app, "ada").get(f"{API}/audit").status_code == 200


def test_verify_reports_an_intact_trail_then_the_broken_record(
    app: FastAPI, api_store: Store, api_config: SafecityConfig
) -> None:
    auditor = signed_in(app, "aude")
    report = auditor.post(f"{API}/audit/verify").json()
    assert report["intact"] is True and report["first_broken_id"] is None
    assert report["records"] == report["last_id"] >= 1 and report["heads_checked"] == 0
    assert report["message"].startswith("audit trail intact")
    assert any("no signed heads" in note for note in report["notes"])

    HeadSigner(api_config.audit.key_path, api_config.audit.heads_path).sign(api_store)
    signed = auditor.post(f"{API}/audit/verify").json()
    assert signed["intact"] is True and signed["heads_checked"] == 1 and signed["notes"] == []
    # Verifying is not itself audited (as the CLI's safecity audit verify).
    assert list_records(api_store, action="audit.") == []

    audit.record(api_store, actor="ada", action="search.events", details={"camera": "gate-1"})
    target = list_records(api_store, limit=1)[0].id
    details = canonical_json({"camera": "gate-9"})
    _bypass_sqlite(api_store, f"UPDATE audit_log SET details = '{details}' WHERE id = {target}")
    broken = auditor.post(f"{API}/audit/verify").json()
    assert broken["intact"] is False and broken["first_broken_id"] == target
    assert f"record {target}" in broken["problem"] and "altered" in broken["problem"]
    assert broken["message"].startswith("AUDIT TRAIL BROKEN")
