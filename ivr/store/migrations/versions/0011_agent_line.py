"""The agent line's own call, and routing reasons in full.

agents.line_call_sid: the CallSid of an agent's call to the agent line while it is up (set at sign-in,
cleared by that call's final status), so "on the line" means a live call, not a desk setting.
queue_entries.reason: 40 -> 200 characters, so the agent hears the routing rule's whole name.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011_agent_line'
down_revision = '0010_job_leases'


def upgrade() -> None:
    with op.batch_alter_table('agents') as batch:
        batch.add_column(sa.Column('line_call_sid', sa.String(length=64), nullable=True))
        batch.create_index(batch.f('ix_agents_line_call_sid'), ['line_call_sid'])
    with op.batch_alter_table('queue_entries') as batch:
        batch.alter_column('reason', existing_type=sa.String(length=40), type_=sa.String(length=200),
                           existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('queue_entries') as batch:
        batch.alter_column('reason', existing_type=sa.String(length=200), type_=sa.String(length=40),
                           existing_nullable=False)
    with op.batch_alter_table('agents') as batch:
        batch.drop_index(batch.f('ix_agents_line_call_sid'))
        batch.drop_column('line_call_sid')
