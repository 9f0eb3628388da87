"""sign_in_passes: what lets a console user past the sign-in back-off (an address she signed in from, a
one-time unlock code), kept only as hashes (ivr/ops/console/auth.py)."""
import sqlalchemy as sa
from alembic import op

revision = '0014_sign_in_passes'
down_revision = '0013_sealed_numbers'


def upgrade() -> None:
    op.create_table(
        'sign_in_passes',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('user_name', sa.String(length=120), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_sign_in_passes_lookup', 'sign_in_passes', ['user_name', 'kind', 'secret_hash'])


def downgrade() -> None:
    op.drop_index('ix_sign_in_passes_lookup', table_name='sign_in_passes')
    op.drop_table('sign_in_passes')
