"""Agents: callbacks the line dials (attempts, claims), agent status and desk link, wrap-ups

Revision ID: 0009_agents
Revises: 0007_security
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0009_agents'
down_revision = '0007_security'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.alter_column('number', existing_type=sa.String(length=32), nullable=True)
        batch_op.add_column(sa.Column('number_masked', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('next_try_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('user_name', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('queues', sa.String(length=400), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False, server_default='signed_out'))
        batch_op.add_column(sa.Column('status_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('call_sid', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('callback_id', sa.Integer(), nullable=True))
    op.create_table(
        'wrap_ups',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('callback_id', sa.Integer(), nullable=True),
        sa.Column('agent', sa.String(length=120), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('queue', sa.String(length=64), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('call_sid'),
    )
    with op.batch_alter_table('wrap_ups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wrap_ups_code'), ['code'], unique=False)
        batch_op.create_index(batch_op.f('ix_wrap_ups_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_table('wrap_ups')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        for column in ('callback_id', 'call_sid', 'status_at', 'status', 'queues', 'user_name', 'phone'):
            batch_op.drop_column(column)
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        for column in ('claimed_at', 'claimed_by', 'next_try_at', 'attempts', 'number_masked'):
            batch_op.drop_column(column)
        batch_op.alter_column('number', existing_type=sa.String(length=32), nullable=False)
