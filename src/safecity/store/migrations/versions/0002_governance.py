"""Governance: authorisation approval, review, legal holds, identification uses, audit chain.

Revision ID: 0002
Revises: 0001
Created: 2026-11-27

Authorisations that existed before this revision were never approved by a
second user, so they arrive as ``proposed``: nothing matches against them
until someone approves them (``safecity authorisation approve``).

The audit tables get triggers that refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL); the only deletion allowed is of records already covered by an
``audit_purges`` row, which is how audit retention works.

SQLite cannot add a foreign key to an existing table except by rebuilding it.
``events`` is rebuilt (no table refers to it yet); ``authorisations`` is not,
since dropping it with foreign keys on would cascade-delete its camera scopes,
so ``authorisations.renews_id`` is a plain integer.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


APPEND_ONLY_MESSAGE = "the audit log is append-only"


def upgrade() -> None:
    with op.batch_alter_table("authorisations", recreate="never") as batch:
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="proposed")
        )
        batch.add_column(
            sa.Column("proposed_by", sa.String(128), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("decided_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("decided_at", _utc(), nullable=True))
        batch.add_column(sa.Column("approved_at", _utc(), nullable=True))
        batch.add_column(sa.Column("decision_note", sa.Text(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("evidence_days", sa.Integer(), nullable=False, server_default="90")
        )
        batch.add_column(sa.Column("emergency_deadline_at", _utc(), nullable=True))
        batch.add_column(sa.Column("request_filed_at", _utc(), nullable=True))
        batch.add_column(sa.Column("filed_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("templates_deleted_at", _utc(), nullable=True))
        batch.add_column(sa.Column("results_deleted_at", _utc(), nullable=True))
        batch.add_column(sa.Column("renews_id", sa.Integer(), nullable=True))
    op.create_index("ix_authorisations_status", "authorisations", ["status"])

    with op.batch_alter_table("persons", recreate="never") as batch:
        batch.add_column(
            sa.Column("enrolled_by", sa.String(128), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("removed_at", _utc(), nullable=True))
        batch.add_column(sa.Column("erasure_ref", sa.String(128), nullable=True))

    with op.batch_alter_table("templates", recreate="never") as batch:
        batch.add_column(
            sa.Column("enrolled_by", sa.String(128), nullable=False, server_default="")
        )

    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("match_status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("match_decided_at", _utc(), nullable=True))
        batch.add_column(sa.Column("match_authorisation_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_events_match_authorisation_id_authorisations",
            "authorisations",
            ["match_authorisation_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_index("ix_events_match_status", "events", ["match_status"])
    op.create_index("ix_events_match_authorisation_id", "events", ["match_authorisation_id"])
    # Matches stored before review existed are candidates awaiting review.
    op.execute("UPDATE events SET match_status = 'candidate' WHERE match_person_id IS NOT NULL")

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name="fk_reviews_event_id_events", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
        sa.UniqueConstraint("event_id", "reviewer", name="uq_reviews_event_id_reviewer"),
    )
    op.create_index("ix_reviews_event_id", "reviews", ["event_id"])

    op.create_table(
        "legal_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("case_ref", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(128), nullable=False),
        sa.Column("placed_at", _utc(), nullable=False),
        sa.Column("released_by", sa.String(128), nullable=True),
        sa.Column("released_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name="fk_legal_holds_event_id_events", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_legal_holds"),
    )
    op.create_index("ix_legal_holds_event_id", "legal_holds", ["event_id"])

    op.create_table(
        "identification_uses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("camera", sa.String(128), nullable=False),
        sa.Column("watchlist_id", sa.Integer(), nullable=True),
        sa.Column("watchlist_name", sa.String(128), nullable=False),
        sa.Column("authorisation_id", sa.Integer(), nullable=True),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("last_seen_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["watchlist_id"],
            ["watchlists.id"],
            name="fk_identification_uses_watchlist_id_watchlists",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["authorisation_id"],
            ["authorisations.id"],
            name="fk_identification_uses_authorisation_id_authorisations",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_identification_uses"),
    )
    op.create_index(
        "ix_identification_uses_camera_started_at",
        "identification_uses",
        ["camera", "started_at"],
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("hash", name="uq_audit_log_hash"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])

    op.create_table(
        "audit_purges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("through_id", sa.Integer(), nullable=False),
        sa.Column("through_hash", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("purged_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_purges"),
    )
    _append_only_triggers()


def _append_only_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table, op_name in [
            ("audit_log", "UPDATE"),
            ("audit_purges", "UPDATE"),
            ("audit_purges", "DELETE"),
        ]:
            op.execute(
                f"CREATE TRIGGER {table}_no_{op_name.lower()} BEFORE {op_name} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}: {op_name} refused'); END"
            )
        # INSERT OR REPLACE deletes the old row without firing DELETE triggers
        # (unless recursive_triggers is on, which is per connection): refuse it here.
        for table, clash in (
            ("audit_log", "id = NEW.id OR hash = NEW.hash"),
            ("audit_purges", "id = NEW.id"),
        ):
            op.execute(
                f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {clash}) "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}: REPLACE refused'); END"
            )
        op.execute(
            "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
            "WHEN NOT EXISTS (SELECT 1 FROM audit_purges WHERE through_id >= OLD.id) "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}: DELETE refused'); END"
        )
        return
    op.execute(
        f"""
        CREATE FUNCTION safecity_audit_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_log' AND EXISTS (
                SELECT 1 FROM audit_purges WHERE through_id >= OLD.id
            ) THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}: % refused', TG_OP;
        END
        $$
        """
    )
    for table in ("audit_log", "audit_purges"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION safecity_audit_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION safecity_audit_append_only()"
        )


def downgrade() -> None:
    raise NotImplementedError("the audit trail cannot be downgraded away")
