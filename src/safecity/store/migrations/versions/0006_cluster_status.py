"""The cluster's last reported state, for ``safecity cluster status`` and the console.

Revision ID: 0006
Revises: 0005
Created: 2026-12-03

One row per coordinator (``safecity run --cluster``): its nodes, workers and
cameras as one JSON document, replaced at every check. The console and the CLI
read it from the database, so they need no connection to Ray.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_status",
        sa.Column("coordinator", sa.String(256), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("address", sa.String(256), nullable=False, server_default=""),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cluster_status")
