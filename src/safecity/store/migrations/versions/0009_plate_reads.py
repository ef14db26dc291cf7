"""Licence plates read on vehicle events.

Revision ID: 0009
Revises: 0008
Created: 2026-12-05

A vehicle's event carries the plate read while it was tracked (issue 14): its
normalised text (indexed: searches by plate are exact or one edit away, both
lookups of the index), the read's confidence and the plate's crop under the
media folder. Existing events have no plate: all three are null.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("plate_text", sa.String(16), nullable=True))
        batch.add_column(sa.Column("plate_confidence", sa.Float, nullable=True))
        batch.add_column(sa.Column("plate_crop_path", sa.Text, nullable=True))
        batch.create_index("ix_events_plate_text", ["plate_text"])


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_index("ix_events_plate_text")
        batch.drop_column("plate_crop_path")
        batch.drop_column("plate_confidence")
        batch.drop_column("plate_text")
