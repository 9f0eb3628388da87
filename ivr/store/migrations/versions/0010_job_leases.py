"""Job leases: who holds a running job (a token per claim) and until when (renewed while it runs).

A job "running" with an expired lease lost its runner and may be claimed again; only the holder of the
current token may record progress or finish it (ivr/store/jobs.py). Jobs running when this is applied get
the ten minutes the old rule gave them.
"""
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = '0010_job_leases'
down_revision = '0009_agents'


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('locked_by', sa.String(length=80), nullable=True))
        batch.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
    # Few rows at most (jobs running at the moment of the upgrade): computed here, the same on both databases.
    jobs = sa.table('jobs', sa.column('id', sa.Integer), sa.column('status', sa.String),
                    sa.column('updated_at', sa.DateTime(timezone=True)), sa.column('locked_by', sa.String),
                    sa.column('locked_until', sa.DateTime(timezone=True)))
    conn = op.get_bind()
    for job_id, updated_at in conn.execute(sa.select(jobs.c.id, jobs.c.updated_at).where(jobs.c.status == 'running')).all():
        conn.execute(jobs.update().where(jobs.c.id == job_id)
                     .values(locked_by='before-0010', locked_until=updated_at + timedelta(minutes=10)))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('locked_until')
        batch.drop_column('locked_by')
