"""Plate watchlists: a watchlist's kind, and the plates listed on one.

Revision ID: 0010
Revises: 0009
Created: 2026-12-06

A watchlist lists faces or licence plates (issue 14). Existing watchlists list
faces. A listed vehicle is a person row (its name says what and why) with its
plate(s) in ``listed_plates``, so review, removal, erasure and retention treat it
like an enrolled face. PostgreSQL: ``listed_plates`` notifies the gallery channel
like ``templates`` (migration 0005's function), so a listing reaches every
analysing process at once.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FUNCTION = "safecity_gallery_changed"  # migration 0005's


def upgrade() -> None:
    with op.batch_alter_table("watchlists") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="face"))
    op.create_table(
        "listed_plates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("plate", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enrolled_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name="fk_listed_plates_person_id_persons",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_listed_plates"),
        sa.UniqueConstraint("person_id", "plate", name="uq_listed_plates_person_id_plate"),
    )
    op.create_index("ix_listed_plates_plate", "listed_plates", ["plate"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {FUNCTION} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON listed_plates FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def downgrade() -> None:
    op.drop_table("listed_plates")  # its trigger goes with it
    with op.batch_alter_table("watchlists") as batch:
        batch.drop_column("kind")
