"""notices: breach-notice campaigns, their recipients (numbers sealed, references as keyed hashes) and opt-outs
(ivr/store/notices.py, docs/notify.md)."""
import sqlalchemy as sa
from alembic import op

revision = '0017_notices'
down_revision = '0016_statement_approvals'


def _id():
    return sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'notice_campaigns',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('channels', sa.String(length=40), nullable=False),
        sa.Column('rate_per_second', sa.Float(), nullable=False),
        sa.Column('quiet_hours', sa.String(length=16), nullable=True),
        sa.Column('statements', sa.Text(), nullable=False),
        sa.Column('hotline_number', sa.String(length=32), nullable=False),
        sa.Column('notice_url', sa.String(length=500), nullable=False),
        sa.Column('sender', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=400), nullable=False),
        sa.Column('file_sha256', sa.String(length=64), nullable=False),
        sa.Column('created_by', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sender_token', sa.String(length=80), nullable=True),
        sa.Column('sender_until', sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        'notice_recipients',
        sa.Column('id', _id(), primary_key=True),
        sa.Column('campaign_id', sa.Integer(), sa.ForeignKey('notice_campaigns.id',
                  name='fk_notice_recipients_campaign_id_notice_campaigns'), nullable=False),
        sa.Column('number_sealed', sa.String(length=255), nullable=True),
        sa.Column('number_hash', sa.LargeBinary(length=16), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('time_zones', sa.String(length=120), nullable=False),
        sa.Column('exposed', sa.String(length=40), nullable=True),
        sa.Column('reference_hash', sa.String(length=32), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('message_sid', sa.String(length=64), nullable=True),
        sa.Column('error_code', sa.Integer(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('locked_by', sa.String(length=80), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint('campaign_id', 'number_hash', name='uq_notice_recipients_person'),
    )
    op.create_index('ix_notice_recipients_reference_hash', 'notice_recipients', ['reference_hash'], unique=True)
    op.create_index('ix_notice_recipients_due', 'notice_recipients', ['campaign_id', 'state', 'next_attempt_at'])
    op.create_index('ix_notice_recipients_sent', 'notice_recipients', ['campaign_id', 'sent_at'])
    op.create_table(
        'notice_opt_outs',
        sa.Column('number_hash', sa.LargeBinary(length=16), primary_key=True),
        sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('notice_opt_outs')
    op.drop_index('ix_notice_recipients_sent', table_name='notice_recipients')
    op.drop_index('ix_notice_recipients_due', table_name='notice_recipients')
    op.drop_index('ix_notice_recipients_reference_hash', table_name='notice_recipients')
    op.drop_table('notice_recipients')
    op.drop_table('notice_campaigns')
