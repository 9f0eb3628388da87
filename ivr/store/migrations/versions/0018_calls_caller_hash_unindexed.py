"""calls.caller_hash loses its index: nothing looks calls up by caller (the PIN guards, the verification limits
and callbacks keep their own keyed hashes, with their own indexes), and every call the spool writer records
paid for it. A random 64-character key, it was the largest of the three indexes each call touches at random:
about a fifth of the writer's CPU per call in a table of 88,000 calls (docs/performance.md)."""
from alembic import op

revision = '0018_calls_caller_hash_unindexed'
down_revision = '0017_notices'


def upgrade() -> None:
    op.drop_index('ix_calls_caller_hash', table_name='calls')


def downgrade() -> None:
    op.create_index('ix_calls_caller_hash', 'calls', ['caller_hash'])
