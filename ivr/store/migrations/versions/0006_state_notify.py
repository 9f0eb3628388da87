"""NOTIFY on every change of hotline_state (PostgreSQL)

Each worker process LISTENs on the `ivr_state` channel and reads the state row again only when told (see
ivr/store/state.py). The code that changes the row sends NOTIFY itself; this trigger covers every other writer
(a manual UPDATE during an incident, a restore). SQLite has no such channel: workers there read the row per
request, so nothing is needed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE FUNCTION ivr_state_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('ivr_state', '');
            RETURN NULL;
        END $$""")
    op.execute("""
        CREATE TRIGGER hotline_state_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hotline_state
        FOR EACH STATEMENT EXECUTE FUNCTION ivr_state_notify()""")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS hotline_state_notify ON hotline_state")
    op.execute("DROP FUNCTION IF EXISTS ivr_state_notify()")
