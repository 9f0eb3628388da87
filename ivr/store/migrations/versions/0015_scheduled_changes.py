"""scheduled_changes: mode switches, publishes and incident activations planned for a time, and what became
of each (ivr/store/scheduled.py)."""
import sqlalchemy as sa
from alembic import op

revision = '0015_scheduled_changes'
down_revision = '0014_sign_in_passes'


def upgrade() -> None:
    op.create_table(
        'scheduled_changes',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('target', sa.String(length=40), nullable=False),
        sa.Column('what', sa.String(length=300), nullable=False),
        sa.Column('run_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('override', sa.Text(), nullable=True),
        sa.Column('carry_over', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_by', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_by', sa.String(length=80), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.Text(), nullable=True),
        sa.Column('cancelled_by', sa.String(length=120), nullable=True),
    )
    op.create_index('ix_scheduled_changes_due', 'scheduled_changes', ['status', 'run_at'])


def downgrade() -> None:
    op.drop_index('ix_scheduled_changes_due', table_name='scheduled_changes')
    op.drop_table('scheduled_changes')
