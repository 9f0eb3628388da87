"""Verification by the reference on the company's notice (key 8; issue 23 item 2).

affected_references: the references on the notices, kept only as keyed hashes (like affected_numbers), each
with the code of what the list says was exposed for that person (a category, never the data).
verification_attempts: each reference keyed in (written by the spool writer), for the limits on wrong ones.
queue_entries.verified: the caller proved it with the reference (else "affected" is a caller ID only).
"""
import sqlalchemy as sa
from alembic import op

revision = '0012_verification'
down_revision = '0011_agent_line'


def upgrade() -> None:
    op.create_table(
        'affected_references',
        sa.Column('reference_hash', sa.LargeBinary(length=16), nullable=False),
        sa.Column('exposed', sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint('reference_hash', name=op.f('pk_affected_references')),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'verification_attempts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('step', sa.String(length=160), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('caller_hash', sa.String(length=64), nullable=True),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_attempts')),
        sa.UniqueConstraint('call_sid', 'step', name='uq_verification_attempts_step'),
    )
    op.create_index(op.f('ix_verification_attempts_at'), 'verification_attempts', ['at'])
    op.create_index('ix_verification_attempts_caller', 'verification_attempts', ['caller_hash', 'at'])
    with op.batch_alter_table('queue_entries') as batch:
        batch.add_column(sa.Column('verified', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('queue_entries') as batch:
        batch.drop_column('verified')
    op.drop_index('ix_verification_attempts_caller', table_name='verification_attempts')
    op.drop_index(op.f('ix_verification_attempts_at'), table_name='verification_attempts')
    op.drop_table('verification_attempts')
    op.drop_table('affected_references')
