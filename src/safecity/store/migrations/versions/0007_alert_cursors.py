"""How far each alert sink has been told: one cursor per sink and stream.

Revision ID: 0007
Revises: 0006
Created: 2026-12-05

The alert dispatcher (``safecity.alerts``) reads what it announces from the
database (events by id, confirmations by audit record id) and keeps here, per
sink and stream, the last id the sink acknowledged, what failed and a lease, so
two dispatchers on one database never both send the same thing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_cursors",
        sa.Column("sink", sa.String(128), primary_key=True),
        sa.Column("stream", sa.String(16), primary_key=True),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_cursors")
