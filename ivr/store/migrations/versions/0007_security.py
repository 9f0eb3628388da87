"""security: PIN failures and locks, token expiry and revocation, admins' own caller IDs

Revision ID: 0007_security
Revises: 0006
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = '0007_security'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pin_failures',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('line', sa.String(length=16), nullable=False),
        sa.Column('caller_hash', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pin_failures')),
    )
    op.create_index('ix_pin_failures_lookup', 'pin_failures', ['line', 'caller_hash', 'at'])
    op.create_index('ix_pin_failures_line', 'pin_failures', ['line', 'at'])
    op.create_table(
        'pin_locks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('line', sa.String(length=16), nullable=False),
        sa.Column('caller_hash', sa.String(length=64), nullable=True),
        sa.Column('until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pin_locks')),
    )
    op.create_index('ix_pin_locks_lookup', 'pin_locks', ['line', 'until'])
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('phone_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('phone_masked', sa.String(length=32), nullable=True))
        batch.create_index(op.f('ix_users_phone_hash'), ['phone_hash'])


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_index(op.f('ix_users_phone_hash'))
        batch.drop_column('phone_masked')
        batch.drop_column('phone_hash')
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('revoked_at')
        batch.drop_column('expires_at')
    op.drop_index('ix_pin_locks_lookup', table_name='pin_locks')
    op.drop_table('pin_locks')
    op.drop_index('ix_pin_failures_line', table_name='pin_failures')
    op.drop_index('ix_pin_failures_lookup', table_name='pin_failures')
    op.drop_table('pin_failures')
