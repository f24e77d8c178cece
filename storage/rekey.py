"""Key rotation: re-encrypt every encrypted value under the newest data key; recompute blind indexes.

Rotation works online and resumes: each batch of rows is its own transaction,
and a value already under the newest key is left alone, so an interrupted
rotation is finished by running it again. While it runs, the service (holding
the same keys, newest first) writes new values with the newest key and reads
old ones with whichever key wrote them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Text, func, select, type_coerce, update
from sqlalchemy.engine import Engine

from storage.crypto import Encrypted, keyring_for
from storage.models import Conversation, Officer, SQLModel, Supervisee

BATCH = 1000


def encrypted_columns() -> list[tuple]:
    """(table, [columns]) of every table with encrypted columns."""
    out = []
    for table in SQLModel.metadata.sorted_tables:
        cols = [c for c in table.columns if isinstance(c.type, Encrypted)]
        if cols:
            out.append((table, cols))
    return out


@dataclass
class RotationReport:
    """What a rotation rewrote, per table.column; and the key ids still in use afterwards."""

    rewritten: Counter = field(default_factory=Counter)
    keys_in_use: Counter = field(default_factory=Counter)
    reindexed: int = 0
    conversations_reset: int = 0


def keys_in_use(engine: Engine) -> Counter:
    """How many stored values each data key (by id) wrote."""
    found: Counter = Counter()
    with engine.connect() as conn:
        for _table, cols in encrypted_columns():
            for c in cols:
                kid = func.substr(type_coerce(c, Text), 4, 8)  # c1:<key id>:...
                for k, n in conn.execute(select(kid, func.count()).where(c.is_not(None)).group_by(kid)):
                    found[k] += n
    return found


def reencrypt(engine: Engine, batch: int = BATCH) -> RotationReport:
    """Rewrite every value not under the newest key; returns what was rewritten and the keys still in use."""
    keyring = keyring_for(engine)
    report = RotationReport()
    for table, cols in encrypted_columns():
        pk = table.c.id
        raws = [type_coerce(c, Text).label(c.name) for c in cols]
        after = 0
        while True:
            with engine.begin() as conn:
                rows = conn.execute(select(pk, *raws).where(pk > after).order_by(pk).limit(batch)).all()
                if not rows:
                    break
                after = rows[-1][0]
                for row in rows:
                    stale = {c.name: getattr(row, c.name) for c in cols
                             if not keyring.is_current(getattr(row, c.name))}
                    if not stale:
                        continue
                    fresh = {
                        name: keyring.encrypt(f"{table.name}.{name}", keyring.decrypt(f"{table.name}.{name}", token))
                        for name, token in stale.items()
                    }
                    report.rewritten.update(f"{table.name}.{name}" for name in fresh)
                    # One UPDATE per row: which columns were stale differs from row to row. The values are
                    # sealed already, so they bypass the columns' own encryption.
                    conn.execute(update(table).where(pk == row[0])
                                 .values({name: type_coerce(value, Text) for name, value in fresh.items()}))
    report.keys_in_use = keys_in_use(engine)
    return report


def reindex(engine: Engine, batch: int = BATCH) -> RotationReport:
    """Recompute the phone blind indexes with the current index key (after changing CHECKIN_INDEX_KEY).

    Conversation rows are keyed by the blind index of an address that is not
    stored anywhere in the clear, so they cannot be recomputed: they are reset
    (a half-written report or leave request is lost; the person starts again).
    """
    keyring = keyring_for(engine)
    report = RotationReport()
    for model in (Officer, Supervisee):
        after = 0
        while True:
            with engine.begin() as conn:
                rows = conn.execute(select(model.id, model.phone).where(model.id > after)
                                    .order_by(model.id).limit(batch)).all()
                if not rows:
                    break
                after = rows[-1][0]
                for r in rows:
                    if r[1] is not None:
                        conn.execute(update(model).where(model.id == r[0]).values(phone_index=keyring.blind(r[1])))
                        report.reindexed += 1
    with engine.begin() as conn:
        report.conversations_reset = conn.execute(Conversation.__table__.delete()).rowcount
    return report
