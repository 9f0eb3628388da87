"""The schema of ivr 0.1.0, in one step.

Development builds reached this schema through the migrations 0001 to 0009_agents, squashed into this one
before the first release. It keeps the last of their ids, so a database they built is at head already; a
database left at an earlier one is refused by ivr.store.migrate, which says how to bring it here.
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0009_agents'
down_revision = None

# At most one published version of a text per incident (and language and topic): a partial unique index.
PUBLISHED_ONLY = dict(sqlite_where=sa.text("status = 'published'"),
                      postgresql_where=sa.text("status = 'published'"))


def upgrade() -> None:
    op.create_table(
        'affected_imports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('file_sha256', sa.String(length=64), nullable=False),
        sa.Column('filename', sa.String(length=400), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('byte_offset', sa.BigInteger(), nullable=False),
        sa.Column('line_no', sa.Integer(), nullable=False),
        sa.Column('rows_read', sa.Integer(), nullable=False),
        sa.Column('rows_added', sa.Integer(), nullable=False),
        sa.Column('bad_rows', sa.Integer(), nullable=False),
        sa.Column('actor', sa.String(length=120), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_affected_imports')),
    )
    op.create_index(op.f('ix_affected_imports_file_sha256'), 'affected_imports', ['file_sha256'])
    op.create_table(
        'affected_numbers',
        sa.Column('number_hash', sa.LargeBinary(length=16), nullable=False),
        sa.PrimaryKeyConstraint('number_hash', name=op.f('pk_affected_numbers')),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'agents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('phone_hash', sa.String(length=64), nullable=False),
        sa.Column('phone_masked', sa.String(length=32), nullable=False),
        sa.Column('pin_hash', sa.String(length=255), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('phone', sa.String(length=32), nullable=True),
        sa.Column('user_name', sa.String(length=120), nullable=True),
        sa.Column('queues', sa.String(length=400), nullable=False, server_default=''),
        sa.Column('status', sa.String(length=16), nullable=False, server_default='signed_out'),
        sa.Column('status_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('call_sid', sa.String(length=64), nullable=True),
        sa.Column('callback_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
        sa.UniqueConstraint('name', name=op.f('uq_agents_name')),
    )
    op.create_index(op.f('ix_agents_phone_hash'), 'agents', ['phone_hash'])
    op.create_table(
        'audit_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=120), nullable=False),
        sa.Column('action', sa.String(length=60), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('from_value', sa.Text(), nullable=True),
        sa.Column('to_value', sa.Text(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    )
    op.create_index(op.f('ix_audit_log_action'), 'audit_log', ['action'])
    op.create_index(op.f('ix_audit_log_at'), 'audit_log', ['at'])
    op.create_table(
        'call_events',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('step', sa.String(length=160), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('digits', sa.String(length=32), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_call_events')),
        sa.UniqueConstraint('call_sid', 'step', name='uq_call_events_step'),
    )
    op.create_table(
        'callbacks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('number', sa.String(length=32), nullable=True),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('queue', sa.String(length=64), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=80), nullable=False),
        sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('voicemail_url', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('done_by', sa.String(length=120), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('number_masked', sa.String(length=32), nullable=False, server_default=''),
        sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('next_try_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('claimed_by', sa.String(length=120), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_callbacks')),
        sa.UniqueConstraint('call_sid', name=op.f('uq_callbacks_call_sid')),
    )
    op.create_index('ix_callbacks_worklist', 'callbacks', ['status', 'priority', 'requested_at'])
    op.create_table(
        'calls',
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('caller_hash', sa.String(length=64), nullable=True),
        sa.Column('caller_masked', sa.String(length=32), nullable=True),
        sa.Column('language', sa.String(length=8), nullable=True),
        sa.Column('mode', sa.String(length=16), nullable=True),
        sa.Column('incident_id', sa.Integer(), nullable=True),
        sa.Column('outcome', sa.String(length=40), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=True),
        sa.Column('status_sequence', sa.Integer(), server_default=sa.text('(-1)'), nullable=False),
        sa.Column('duration_s', sa.Integer(), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('outcome_step', sa.Integer(), server_default=sa.text('(-1)'), nullable=False),
        sa.PrimaryKeyConstraint('call_sid', name=op.f('pk_calls')),
    )
    op.create_index(op.f('ix_calls_caller_hash'), 'calls', ['caller_hash'])
    op.create_index(op.f('ix_calls_started_at'), 'calls', ['started_at'])
    op.create_table(
        'hotline_state',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('content_version', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by', sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_hotline_state')),
    )
    op.create_table(
        'incidents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('severity', sa.String(length=20), nullable=False),
        sa.Column('exposed', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents')),
    )
    op.create_table(
        'jobs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('run_after', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('dedupe_key', sa.String(length=160), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
        sa.UniqueConstraint('dedupe_key', name=op.f('uq_jobs_dedupe_key')),
    )
    op.create_index('ix_jobs_ready', 'jobs', ['status', 'run_after'])
    op.create_table(
        'login_failures',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('user_name', sa.String(length=120), nullable=False),
        sa.Column('ip', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures')),
    )
    op.create_index('ix_login_failures_lookup', 'login_failures', ['user_name', 'ip', 'at'])
    op.create_table(
        'media',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('content_type', sa.String(length=40), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sha256', name=op.f('pk_media')),
    )
    op.create_table(
        'pin_failures',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('line', sa.String(length=16), nullable=False),
        sa.Column('caller_hash', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pin_failures')),
    )
    op.create_index('ix_pin_failures_line', 'pin_failures', ['line', 'at'])
    op.create_index('ix_pin_failures_lookup', 'pin_failures', ['line', 'caller_hash', 'at'])
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
    op.create_table(
        'queue_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('queue', sa.String(length=64), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('reason', sa.String(length=40), nullable=False),
        sa.Column('severity', sa.String(length=20), nullable=False),
        sa.Column('affected', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('wait_s', sa.Integer(), nullable=True),
        sa.Column('agent', sa.String(length=120), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_entries')),
        sa.UniqueConstraint('call_sid', name=op.f('uq_queue_entries_call_sid')),
    )
    op.create_index('ix_queue_entries_waiting', 'queue_entries', ['status', 'queue', 'priority', 'enqueued_at'])
    op.create_table(
        'users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=True),
        sa.Column('phone_pin_hash', sa.String(length=255), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('phone_hash', sa.String(length=64), nullable=True),
        sa.Column('phone_masked', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
        sa.UniqueConstraint('name', name=op.f('uq_users_name')),
    )
    op.create_index(op.f('ix_users_phone_hash'), 'users', ['phone_hash'])
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
    op.create_index(op.f('ix_wrap_ups_code'), 'wrap_ups', ['code'])
    op.create_index(op.f('ix_wrap_ups_created_at'), 'wrap_ups', ['created_at'])
    op.create_table(
        'announcements',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('topic', sa.String(length=16), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('text', sa.Text(), nullable=True),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('engine', sa.String(length=40), nullable=True),
        sa.Column('media_sha256', sa.String(length=64), nullable=True),
        sa.Column('duration_ms', sa.Integer(), nullable=True),
        sa.Column('created_by', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_announcements_incident_id_incidents')),
        sa.ForeignKeyConstraint(['media_sha256'], ['media.sha256'], name=op.f('fk_announcements_media_sha256_media')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_announcements')),
        sa.UniqueConstraint('incident_id', 'language', 'topic', 'version', name='uq_announcements_version'),
    )
    op.create_index('ix_announcements_lookup', 'announcements', ['incident_id', 'language', 'topic', 'status'])
    op.create_index('uq_announcements_one_published', 'announcements', ['incident_id', 'language', 'topic'],
                    unique=True, **PUBLISHED_ONLY)
    op.create_table(
        'api_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash')),
    )
    op.create_table(
        'briefing_versions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('incident_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('facts', sa.Text(), nullable=False),
        sa.Column('exposed', sa.Text(), nullable=False),
        sa.Column('caller_actions', sa.Text(), nullable=False),
        sa.Column('answers', sa.Text(), nullable=False),
        sa.Column('created_by', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'],
                                name=op.f('fk_briefing_versions_incident_id_incidents')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_briefing_versions')),
        sa.UniqueConstraint('incident_id', 'version', name='uq_briefing_versions_version'),
    )
    op.create_index('uq_briefing_versions_one_published', 'briefing_versions', ['incident_id'], unique=True,
                    **PUBLISHED_ONLY)
    op.create_table(
        'console_sessions',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_console_sessions_user_id_users')),
        sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_console_sessions')),
    )
    op.create_index(op.f('ix_console_sessions_expires_at'), 'console_sessions', ['expires_at'])
    op.create_table(
        'tts_cache',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('media_sha256', sa.String(length=64), nullable=False),
        sa.Column('engine', sa.String(length=40), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['media_sha256'], ['media.sha256'], name=op.f('fk_tts_cache_media_sha256_media')),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_tts_cache')),
    )

    # The hotline starts in message mode: nobody is promised an agent until ops says so.
    op.bulk_insert(
        sa.table("hotline_state", sa.column("id", sa.Integer), sa.column("mode", sa.String),
                 sa.column("content_version", sa.Integer),
                 sa.column("updated_at", sa.DateTime(timezone=True)), sa.column("updated_by", sa.String)),
        [{"id": 1, "mode": "message", "content_version": 1, "updated_at": datetime.now(timezone.utc),
          "updated_by": "migration"}],
    )
    if op.get_bind().dialect.name == "postgresql":
        # Web workers LISTEN on ivr_state and re-read the hotline's state on change (ivr/store/state.py).
        op.execute("""
        CREATE FUNCTION ivr_state_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('ivr_state', '');
            RETURN NULL;
        END $$""")
        op.execute("""
            CREATE TRIGGER hotline_state_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON hotline_state
            FOR EACH STATEMENT EXECUTE FUNCTION ivr_state_notify()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS hotline_state_notify ON hotline_state")
        op.execute("DROP FUNCTION IF EXISTS ivr_state_notify()")
    # Those that others refer to go last.
    for table in ('tts_cache', 'console_sessions', 'briefing_versions', 'api_tokens', 'announcements',
                  'wrap_ups', 'users', 'queue_entries', 'pin_locks', 'pin_failures', 'media', 'login_failures',
                  'jobs', 'incidents', 'hotline_state', 'calls', 'callbacks', 'call_events', 'audit_log',
                  'agents', 'affected_numbers', 'affected_imports'):
        op.drop_table(table)
