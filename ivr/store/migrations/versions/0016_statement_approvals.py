"""statement approvals: who asked for an announcement version to be published, who approved it (a second
person), and the reason when an admin overrode the two-person rule (ivr/store/approvals.py)."""
import sqlalchemy as sa
from alembic import op

revision = '0016_statement_approvals'
down_revision = '0015_scheduled_changes'

COLUMNS = (
    ('requested_by', sa.String(length=120)),
    ('requested_at', sa.DateTime(timezone=True)),
    ('approved_by', sa.String(length=120)),
    ('approved_at', sa.DateTime(timezone=True)),
    ('override_reason', sa.Text()),
)


def upgrade() -> None:
    with op.batch_alter_table('announcements') as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('announcements') as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
