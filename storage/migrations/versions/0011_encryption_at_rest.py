"""encryption at rest: personal data encrypted, phone numbers looked up by blind index

Revision ID: 0011
Revises: 0010

Existing rows are encrypted in place with the engine's keys (storage.crypto);
conversation addresses become blind indexes; the audit chain is recomputed
over the hash of each entry's details (so that a purge may remove them).
"""
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from storage.crypto import keyring_for

revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 2000


def _rows(conn, table: str, columns: list[str]):
    """(id, *columns) of every row, in id order, a batch at a time."""
    last = 0
    while True:
        rows = conn.execute(sa.text(f"SELECT id, {', '.join(columns)} FROM {table} WHERE id > :last "
                                    f"ORDER BY id LIMIT {BATCH}"), {"last": last}).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _seal(conn, table: str, columns: list[str]) -> None:
    """Encrypt `columns` of `table` in place."""
    keyring = None
    for rows in _rows(conn, table, columns):
        keyring = keyring or keyring_for(conn)
        params = []
        for row in rows:
            values = {"id": row[0]}
            for i, c in enumerate(columns):
                v = row[i + 1]
                if v is not None and c in ("latitude", "longitude"):
                    v = repr(float(v))
                values[c] = None if v is None else keyring.encrypt(f"{table}.{c}", str(v))
            params.append(values)
        sets = ", ".join(f"{c} = :{c}" for c in params[0] if c != "id")
        conn.execute(sa.text(f"UPDATE {table} SET {sets} WHERE id = :id"), params)


def _phones(table: str) -> None:
    conn = op.get_bind()
    saved = [r for rows in _rows(conn, table, ["phone"]) for r in rows if r[1] is not None]
    with op.batch_alter_table(table, schema=None) as b:
        b.drop_column('phone')
    with op.batch_alter_table(table, schema=None) as b:
        b.add_column(sa.Column('phone', sa.Text(), nullable=True))
        b.add_column(sa.Column('phone_index', sa.String(length=64), nullable=True))
        b.alter_column('name', existing_type=sa.String(length=100), type_=sa.Text(), existing_nullable=False)
        b.create_unique_constraint(f'uq_{table}_phone_index', ['phone_index'])
    if saved:
        keyring = keyring_for(conn)
        conn.execute(sa.text(f"UPDATE {table} SET phone = :p, phone_index = :i WHERE id = :id"),
                     [{"id": r[0], "p": keyring.encrypt(f"{table}.phone", r[1]), "i": keyring.blind(r[1])}
                      for r in saved])
    _seal(conn, table, ["name"])


def _audit() -> None:
    conn = op.get_bind()
    with op.batch_alter_table('audit_entry', schema=None) as b:
        b.add_column(sa.Column('details_hash', sa.String(length=64), nullable=True))
        b.alter_column('details', existing_type=sa.Text(), nullable=True)
    # The new hashes may equal old ones of later rows under the unique index: clear them all first.
    conn.execute(sa.text("UPDATE audit_entry SET hash = 'tmp:' || CAST(id AS VARCHAR(20))"))
    prev = "0" * 64
    for rows in _rows(conn, "audit_entry", ["at", "actor", "action", "supervisee_id", "subject", "details"]):
        keyring = keyring_for(conn)
        params = []
        for r in rows:
            at = datetime.fromisoformat(r[1]) if isinstance(r[1], str) else r[1]  # SQLite gives text
            details_hash = hashlib.sha256(r[6].encode("utf-8")).hexdigest()
            content = json.dumps([prev, at.replace(tzinfo=UTC).isoformat(), r[2], r[3], r[4], r[5], details_hash],
                                 ensure_ascii=False, separators=(",", ":"))
            digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
            params.append({"id": r[0], "h": details_hash, "prev": prev, "hash": digest,
                           "d": keyring.encrypt("audit_entry.details", r[6])})
            prev = digest
        conn.execute(sa.text("UPDATE audit_entry SET details_hash = :h, prev_hash = :prev, hash = :hash, "
                             "details = :d WHERE id = :id"), params)
    with op.batch_alter_table('audit_entry', schema=None) as b:
        b.alter_column('details_hash', existing_type=sa.String(length=64), nullable=False)


def upgrade() -> None:
    conn = op.get_bind()
    _phones("officer")
    _phones("supervisee")
    with op.batch_alter_table('supervisee', schema=None) as b:
        b.add_column(sa.Column('purged_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('message', schema=None) as b:
        b.alter_column('address', existing_type=sa.String(length=64), type_=sa.Text(), existing_nullable=False)
        b.alter_column('error_detail', existing_type=sa.String(length=500), type_=sa.Text(), existing_nullable=True)
    _seal(conn, "message", ["address", "body", "payload", "error_detail"])

    for rows in _rows(conn, "conversation", ["address", "data"]):
        keyring = keyring_for(conn)
        conn.execute(sa.text("UPDATE conversation SET address = :a, data = :d WHERE id = :id"),
                     [{"id": r[0], "a": keyring.blind(r[1]), "d": keyring.encrypt("conversation.data", r[2])}
                      for r in rows])

    _seal(conn, "written_report", ["body"])
    _seal(conn, "warning", ["reason"])
    _seal(conn, "escalation", ["note"])

    with op.batch_alter_table('leave', schema=None) as b:
        b.alter_column('destination', existing_type=sa.String(length=200), type_=sa.Text(), existing_nullable=False)
        b.alter_column('decision_note', existing_type=sa.String(length=500), type_=sa.Text(),
                       existing_nullable=True)
    _seal(conn, "leave", ["destination", "reason", "decision_note"])

    with op.batch_alter_table('location_check', schema=None) as b:
        b.alter_column('latitude', existing_type=sa.Float(), type_=sa.Text(), existing_nullable=False,
                       postgresql_using='latitude::text')
        b.alter_column('longitude', existing_type=sa.Float(), type_=sa.Text(), existing_nullable=False,
                       postgresql_using='longitude::text')
    _seal(conn, "location_check", ["latitude", "longitude"])

    _audit()


def downgrade() -> None:
    raise NotImplementedError("encrypted data is not decrypted back into the old schema; restore a backup")
