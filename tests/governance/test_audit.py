"""The audit chain: append-only in the database, verify names the first broken record,
signed heads catch truncation and rewriting."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from governance_support import DAY, HOUR, T0
from sqlalchemy import text

from safecity.governance import audit
from safecity.governance.audit import HeadSigner, canonical_json, list_records, verify
from safecity.store import Store, StoreError


def _fill(store: Store, clock, n: int = 5) -> None:
    for i in range(n):
        audit.record(
            store,
            actor=f"user{i % 2}",
            action="search.events",
            object=f"query:{i}",
            details={"camera": "gate-1", "n": i, "name": "Zoë"},
            clock=clock,
        )
        clock.advance(HOUR)


def test_records_chain_and_verify(store: Store, clock) -> None:
    _fill(store, clock)
    records = list_records(store, newest_first=False)
    assert [r.id for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(records, records[1:], strict=False))
    assert records[0].at == T0 and records[0].details["name"] == "Zoë"
    report = verify(store)
    assert report.ok and report.records == 5 and (report.first_id, report.last_id) == (1, 5)


def test_the_database_refuses_update_and_delete(store: Store, clock) -> None:
    _fill(store, clock, 3)
    for statement in (
        "UPDATE audit_log SET actor = 'mallory' WHERE id = 2",
        "DELETE FROM audit_log WHERE id = 3",
    ):
        with pytest.raises(StoreError, match="append-only"), store.transaction() as session:
            session.execute(text(statement))
    if store.engine.dialect.name == "postgresql":
        with pytest.raises(StoreError, match="append-only"), store.transaction() as session:
            session.execute(text("TRUNCATE audit_log"))
    assert verify(store).ok and verify(store).records == 3


def _bypass_sqlite(store: Store, *statements: str) -> None:
    """What an attacker with the database file can do: drop the triggers, edit, recreate."""
    path = store.engine.url.database
    connection = sqlite3.connect(path)
    connection.executescript(
        "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;"
        + "".join(s + ";" for s in statements)
    )
    connection.commit()
    connection.close()


def test_an_edited_record_is_named(sqlite_store: Store, clock) -> None:
    _fill(sqlite_store, clock)
    details = canonical_json({"camera": "gate-9", "n": 2, "name": "Zoë"})
    _bypass_sqlite(sqlite_store, f"UPDATE audit_log SET details = '{details}' WHERE id = 3")
    report = verify(sqlite_store)
    assert not report.ok and report.broken_id == 3
    assert "record 3" in report.problem and "altered" in report.problem


def test_a_deleted_record_is_named(sqlite_store: Store, clock) -> None:
    _fill(sqlite_store, clock)
    _bypass_sqlite(sqlite_store, "DELETE FROM audit_log WHERE id = 2")
    report = verify(sqlite_store)
    assert not report.ok and report.broken_id == 2 and "missing" in report.problem


def test_a_rehashed_record_breaks_the_next_link(sqlite_store: Store, clock) -> None:
    """Editing a record and fixing its own hash still breaks the record after it."""
    _fill(sqlite_store, clock)
    second = list_records(sqlite_store, newest_first=False)[1]
    forged = audit.record_hash(
        2,
        second.at,
        "mallory",
        second.action,
        second.object,
        second.purpose,
        canonical_json(second.details),
        second.prev_hash,
    )
    _bypass_sqlite(
        sqlite_store, f"UPDATE audit_log SET actor = 'mallory', hash = '{forged}' WHERE id = 2"
    )
    report = verify(sqlite_store)
    assert not report.ok and report.broken_id == 3 and "does not follow" in report.problem


def test_signed_head_detects_truncation(sqlite_store: Store, clock, tmp_path: Path) -> None:
    signer = HeadSigner(tmp_path / "key.pem", tmp_path / "heads.jsonl")
    _fill(sqlite_store, clock)
    head = signer.sign(sqlite_store, clock)
    assert head is not None and head.id == 5
    assert (tmp_path / "key.pem").stat().st_mode & 0o077 == 0
    assert signer.verify(sqlite_store).ok
    # The chain alone cannot see a cut tail: records 4-5 removed leave a valid chain.
    _bypass_sqlite(sqlite_store, "DELETE FROM audit_log WHERE id >= 4")
    assert verify(sqlite_store).ok
    report = signer.verify(sqlite_store)
    assert not report.ok and report.broken_id == 5 and "truncated" in report.problem


def test_signed_head_detects_a_rewritten_tail(sqlite_store: Store, clock, tmp_path) -> None:
    signer = HeadSigner(tmp_path / "key.pem", tmp_path / "heads.jsonl")
    _fill(sqlite_store, clock, 3)
    signer.sign(sqlite_store, clock)
    # Rewrite record 3 into a different but well-chained record.
    _bypass_sqlite(sqlite_store, "DELETE FROM audit_log WHERE id = 3")
    audit.record(sqlite_store, actor="mallory", action="search.events", clock=clock)
    assert verify(sqlite_store).ok
    report = signer.verify(sqlite_store)
    assert not report.ok and report.broken_id == 3 and "rewritten" in report.problem


def test_a_forged_head_is_refused(sqlite_store: Store, clock, tmp_path) -> None:
    signer = HeadSigner(tmp_path / "key.pem", tmp_path / "heads.jsonl")
    _fill(sqlite_store, clock, 2)
    signer.sign(sqlite_store, clock)
    lines = (tmp_path / "heads.jsonl").read_text().splitlines()
    head = json.loads(lines[-1])
    head["id"] = 1  # moved to hide records, without the key
    (tmp_path / "heads.jsonl").write_text(json.dumps(head) + "\n")
    report = signer.verify(sqlite_store)
    assert not report.ok and "signature" in report.problem


def test_signing_twice_without_new_records_adds_nothing(sqlite_store, clock, tmp_path) -> None:
    signer = HeadSigner(tmp_path / "key.pem", tmp_path / "heads.jsonl")
    _fill(sqlite_store, clock, 2)
    signer.sign(sqlite_store, clock)
    signer.sign(sqlite_store, clock)
    assert len((tmp_path / "heads.jsonl").read_text().splitlines()) == 1


def test_purge_keeps_the_chain_verifiable(store: Store, clock, tmp_path: Path) -> None:
    signer = HeadSigner(tmp_path / "key.pem", tmp_path / "heads.jsonl")
    _fill(store, clock, 6)
    clock.advance(200 * DAY)
    with store.transaction(write=True) as session:
        purged = audit.purge_before(
            session, T0 + 3 * HOUR, actor="safecity", at=clock.now(), signer=signer
        )
    assert purged == 3
    records = list_records(store, newest_first=False)
    assert [r.id for r in records] == [4, 5, 6, 7] and records[-1].action == "audit.purge"
    report = verify(store)
    assert report.ok, report.problem
    assert signer.verify(store).ok
    # Only what a purge covers may go.
    with pytest.raises(StoreError, match="append-only"), store.transaction() as session:
        session.execute(text("DELETE FROM audit_log WHERE id = 5"))


def test_actor_is_required(store: Store, clock) -> None:
    with pytest.raises(audit.AuditError, match="user name"):
        audit.record(store, actor=" ", action="x", clock=clock)


def test_a_hand_made_purge_row_does_not_hide_deleted_records(
    sqlite_store: Store, clock, tmp_path: Path
) -> None:
    """Inserting an audit_purges row lets the trigger delete rows, but without the key no
    signed head vouches for the purge boundary, so verify reports the deletion."""
    signer = HeadSigner(tmp_path / "key.pem", tmp_path / "heads.jsonl")
    _fill(sqlite_store, clock, 5)
    signer.sign(sqlite_store, clock)
    fourth = list_records(sqlite_store, newest_first=False)[3]
    connection = sqlite3.connect(sqlite_store.engine.url.database)
    connection.executescript(
        "INSERT INTO audit_purges (through_id, through_hash, rows, actor, purged_at) "
        f"VALUES (4, '{fourth.hash}', 4, 'mallory', '2026-11-27 08:00:00');"
        "DELETE FROM audit_log WHERE id <= 4;"
    )
    connection.close()
    assert verify(sqlite_store).ok  # the bare chain cannot tell
    report = signer.verify(sqlite_store)
    assert not report.ok and report.broken_id == 4 and "outside audit retention" in report.problem


def test_insert_or_replace_cannot_rewrite_a_record(sqlite_store: Store, clock) -> None:
    _fill(sqlite_store, clock, 3)
    connection = sqlite3.connect(sqlite_store.engine.url.database)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        connection.execute(
            "INSERT OR REPLACE INTO audit_log (id, at, actor, action, object, purpose, details, "
            "prev_hash, hash) SELECT id, at, 'mallory', action, object, purpose, details, "
            "prev_hash, hash FROM audit_log WHERE id = 2"
        )
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):  # a new id, an old hash
        connection.execute(
            "INSERT OR REPLACE INTO audit_log (id, at, actor, action, object, purpose, details, "
            "origin, prev_hash, hash) SELECT 99, at, actor, action, object, purpose, details, "
            "origin, prev_hash, hash FROM audit_log WHERE id = 2"
        )
    connection.close()
    assert verify(sqlite_store).ok


def test_a_signed_chain_head_does_not_vouch_for_a_purge(
    sqlite_store: Store, clock, tmp_path: Path
) -> None:
    """Heads are signed all the time; a purge row pointing at one must still be refused,
    and so must a genuine purge of records younger than the legal minimum."""
    signer = HeadSigner(tmp_path / "key.pem", tmp_path / "heads.jsonl")
    _fill(sqlite_store, clock, 2)
    head = signer.sign(sqlite_store, clock)
    _fill(sqlite_store, clock, 2)
    connection = sqlite3.connect(sqlite_store.engine.url.database)
    connection.executescript(
        "INSERT INTO audit_purges (through_id, through_hash, rows, actor, purged_at) "
        f"VALUES (2, '{head.hash}', 2, 'mallory', '2026-11-27 08:00:00');"
        "DELETE FROM audit_log WHERE id <= 2;"
    )
    connection.close()
    report = signer.verify(sqlite_store)
    assert not report.ok and report.broken_id == 2 and "no signed purge" in report.problem


def test_a_purge_of_young_records_is_refused_by_verify(store: Store, clock, tmp_path) -> None:
    signer = HeadSigner(tmp_path / "key.pem", tmp_path / "heads.jsonl")
    _fill(store, clock, 4)
    with store.transaction(write=True) as session:  # the config floor bypassed: 2 hours
        audit.purge_before(session, T0 + 2 * HOUR, actor="x", at=clock.now(), signer=signer)
    assert not signer.verify(store).ok
