"""Full numbers sealed at rest: callbacks.number and agents.phone widened for Fernet tokens, callbacks.number_hash
(the caller's keyed hash, for lookups by number now that the number is a token), and every number
(and pending job's `to`) stored in clear before this sealed under the data key (ivr/store/sealed.py).

The keys come from IVR_DATA_KEY or the instance folder's data.key, as for the running hotline; when there is
a number to seal and no key yet, the key file is made (as `ivr setup` does). Downgrade only narrows the
columns back if nothing sealed is left: it never writes a number in clear.
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0013_sealed_numbers'
down_revision = '0012_verification'

TOKEN = 255  # a Fernet token of a 32-character number is 140 characters


def upgrade() -> None:
    with op.batch_alter_table('callbacks') as batch:
        batch.alter_column('number', existing_type=sa.String(length=32), type_=sa.String(length=TOKEN),
                           existing_nullable=True)
        # Tokens never repeat, so finding a number's open callback needs the keyed hash (new callbacks only).
        batch.add_column(sa.Column('number_hash', sa.String(length=64), nullable=True))
        batch.create_index('ix_callbacks_number_hash', ['number_hash'])
    with op.batch_alter_table('agents') as batch:
        batch.alter_column('phone', existing_type=sa.String(length=32), type_=sa.String(length=TOKEN),
                           existing_nullable=True)
    seal_stored_numbers(op.get_bind())


def seal_stored_numbers(conn) -> int:
    """Seal every number still in clear; returns how many. No key is needed (or made) when there are none."""
    from ivr.store import sealed

    rows = _clear_numbers(conn)
    if not rows:
        return 0
    from ivr.config import from_env

    cfg = from_env()
    sealed.ensure_key_file(cfg.instance_path, cfg.data_keys)
    ring = sealed.load(cfg.instance_path, cfg.data_keys)
    if not ring.usable:
        raise RuntimeError(f"cannot seal the {len(rows)} numbers stored in clear: {ring.problem}")
    for table, column, key, value in rows:
        if table == 'jobs':
            value = json.dumps({k: ring.seal(v) if sealed.holds_number(k, v) else v
                                for k, v in json.loads(value).items()})
        else:
            value = ring.seal(value)
        conn.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE id = :id"), {"v": value, "id": key})
    return len(rows)


def _clear_numbers(conn) -> list[tuple[str, str, int, str]]:
    from ivr.store import sealed

    found = []
    for table, column in (('callbacks', 'number'), ('agents', 'phone')):
        for key, value in conn.execute(sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")):
            if value and not sealed.is_sealed(value):
                found.append((table, column, key, value))
    for key, payload in conn.execute(sa.text("SELECT id, payload FROM jobs")):  # failed ones may be retried
        fields = json.loads(payload or "{}")
        if any(sealed.holds_number(k, v) and not sealed.is_sealed(v) for k, v in fields.items()):
            found.append(('jobs', 'payload', key, payload))
    return found


def downgrade() -> None:
    from ivr.store import sealed

    conn = op.get_bind()
    for table, column in (('callbacks', 'number'), ('agents', 'phone')):
        if any(sealed.is_sealed(v) for (v,) in conn.execute(sa.text(f"SELECT {column} FROM {table}"))):
            raise RuntimeError(f"{table}.{column} holds sealed numbers: downgrading would need them in clear; "
                               "close the callbacks (or deactivate the agents) first")
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, existing_type=sa.String(length=TOKEN), type_=sa.String(length=32),
                               existing_nullable=True)
            if table == 'callbacks':
                batch.drop_index('ix_callbacks_number_hash')
                batch.drop_column('number_hash')
