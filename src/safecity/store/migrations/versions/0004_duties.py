"""Separation of duties: who set each password, and who set up each account.

Revision ID: 0004
Revises: 0003
Created: 2026-11-28

``users.password_set_by`` names who set the current password; an account whose
password was set by someone else (its creator, an admin's reset) takes no
decision until its owner sets their own. ``account_sponsors`` keeps, append-only,
who created each account and everyone else who ever set its password.

Accounts made before this revision get their creator as the one who set their
password (so they are provisional until their owners change it), their creator
as a sponsor, and every ``user.password`` record of the audit trail whose actor
is not the account as a sponsor too.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.add_column(
            sa.Column("password_set_by", sa.String(128), nullable=False, server_default="")
        )
    op.create_table(
        "account_sponsors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("sponsor", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_account_sponsors_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_account_sponsors"),
    )
    op.create_index("ix_account_sponsors_user_id", "account_sponsors", ["user_id"])
    op.execute("UPDATE users SET password_set_by = created_by")
    op.execute(
        "INSERT INTO account_sponsors (user_id, sponsor, reason, at) "
        "SELECT id, created_by, 'created', created_at FROM users"
    )
    op.execute(
        "INSERT INTO account_sponsors (user_id, sponsor, reason, at) "
        "SELECT users.id, audit_log.actor, 'password', audit_log.at "
        "FROM audit_log JOIN users ON users.username = audit_log.object "
        "WHERE audit_log.action = 'user.password' AND audit_log.actor <> users.username"
    )


def downgrade() -> None:
    op.drop_index("ix_account_sponsors_user_id", table_name="account_sponsors")
    op.drop_table("account_sponsors")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("password_set_by")
