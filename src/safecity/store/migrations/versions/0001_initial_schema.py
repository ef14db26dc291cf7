"""Initial schema: cameras, authorisations, watchlists, persons, templates, events.

Revision ID: 0001
Revises:
Created: 2026-11-27

Written out in full (not ``metadata.create_all``) so this revision stays what it
was when later revisions change the models. Constraint names follow
``safecity.store.schema.NAMING_CONVENTION``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _utc() -> sa.DateTime:
    # safecity.store.schema.UTCDateTime stores through this type.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cameras",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cameras"),
        sa.UniqueConstraint("name", name="uq_cameras_name"),
    )
    op.create_table(
        "authorisations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("authority", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("valid_from", _utc(), nullable=False),
        sa.Column("valid_until", _utc(), nullable=False),
        sa.Column("all_cameras", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_authorisations"),
    )
    op.create_table(
        "authorisation_cameras",
        sa.Column("authorisation_id", sa.Integer(), nullable=False),
        sa.Column("camera", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["authorisation_id"],
            ["authorisations.id"],
            name="fk_authorisation_cameras_authorisation_id_authorisations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("authorisation_id", "camera", name="pk_authorisation_cameras"),
    )
    op.create_table(
        "watchlists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("authorisation_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["authorisation_id"],
            ["authorisations.id"],
            name="fk_watchlists_authorisation_id_authorisations",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_watchlists"),
        sa.UniqueConstraint("name", name="uq_watchlists_name"),
    )
    op.create_index("ix_watchlists_authorisation_id", "watchlists", ["authorisation_id"])
    op.create_table(
        "persons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("watchlist_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["watchlist_id"],
            ["watchlists.id"],
            name="fk_persons_watchlist_id_watchlists",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_persons"),
        sa.UniqueConstraint("watchlist_id", "name", name="uq_persons_watchlist_id_name"),
    )
    op.create_index("ix_persons_watchlist_id", "persons", ["watchlist_id"])
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("embedder", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name="fk_templates_person_id_persons",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_templates"),
    )
    op.create_index("ix_templates_person_id_embedder", "templates", ["person_id", "embedder"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=32), nullable=False),
        sa.Column("camera", sa.String(length=128), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("ended_at", _utc(), nullable=False),
        sa.Column("best_score", sa.Float(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("snapshot_path", sa.Text(), nullable=True),
        sa.Column("match_snapshot_path", sa.Text(), nullable=True),
        sa.Column("match_person_id", sa.Integer(), nullable=True),
        sa.Column("match_watchlist_id", sa.Integer(), nullable=True),
        sa.Column("match_score", sa.Float(), nullable=True),
        sa.Column("match_margin", sa.Float(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["match_person_id"],
            ["persons.id"],
            name="fk_events_match_person_id_persons",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["match_watchlist_id"],
            ["watchlists.id"],
            name="fk_events_match_watchlist_id_watchlists",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("uuid", name="uq_events_uuid"),
    )
    op.create_index("ix_events_camera_started_at", "events", ["camera", "started_at"])
    op.create_index("ix_events_label", "events", ["label"])
    op.create_index("ix_events_started_at", "events", ["started_at"])
    op.create_index("ix_events_match_person_id", "events", ["match_person_id"])
    op.create_index("ix_events_match_watchlist_id", "events", ["match_watchlist_id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("templates")
    op.drop_table("persons")
    op.drop_table("watchlists")
    op.drop_table("authorisation_cameras")
    op.drop_table("authorisations")
    op.drop_table("cameras")
