"""Events of people seen by the face only.

Revision ID: 0008
Revises: 0007
Created: 2026-12-04

The pipeline searches faces over the whole frame and tracks the faces of people
the object detector misses as face-only tracks (issue 12); their events say so,
so that an operator knows the snapshot is a head-and-shoulders crop and the body
was never detected. Existing events were all seen by their body: false.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("face_only", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("face_only")
