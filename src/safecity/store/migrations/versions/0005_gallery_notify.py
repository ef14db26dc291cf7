"""Gallery change notices: PostgreSQL tells every listening process when what a
camera may match has changed.

Revision ID: 0005
Revises: 0004
Created: 2026-11-29

A statement-level trigger on each table that feeds the gallery (authorisations,
their camera scopes, watchlists, persons, templates) calls
``pg_notify('safecity_gallery', '<schema>.<table>')``. PostgreSQL delivers a
notice only when its transaction commits, so a process that hears one and
re-reads sees the change; :mod:`safecity.identity.gallery_watch` listens. The
schema is in the payload so that several stores in one database (one schema
each) do not wake each other's workers.

SQLite has no notices; there, one machine's processes watch ``PRAGMA
data_version`` instead, and this revision does nothing.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHANNEL = "safecity_gallery"
FUNCTION = "safecity_gallery_changed"
TABLES = ("authorisations", "authorisation_cameras", "watchlists", "persons", "templates")


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        return
    op.execute(
        f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME); "
        "RETURN NULL; END $$"
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {FUNCTION} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
        )


def downgrade() -> None:
    if not _postgresql():
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER {FUNCTION} ON {table}")
    op.execute(f"DROP FUNCTION {FUNCTION}()")
