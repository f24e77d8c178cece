"""`checkin backup` during a running drain, `checkin restore` into an empty place: the report, the audit chain and
every message come back as they were; the keys are never in the backup."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import select

from bot.backup import BackupError, backup, restore
from content.policy import load_policy
from handlers import compliance
from handlers.case_life import Actor, set_level
from scheduler.drain import Outbox
from storage import audit, outbox
from storage.db import session_scope
from storage.models import Message, Supervisee
from tests.conftest import KEYRING, make_engine
from tests.scheduler.test_outbox import RecordingChannel
from tests.sim import SH, County, local

NOW = local(2027, 3, 1, 14)


class Held(RecordingChannel):
    """Sends the first `free` messages, then holds the rest until `go` is set: the drain is mid-way meanwhile."""

    def __init__(self, name: str = "sms", free: int = 200) -> None:
        super().__init__(name)
        self.free, self.holding, self.go = free, asyncio.Event(), asyncio.Event()

    async def send(self, message):
        if len(self.sent) >= self.free:
            self.holding.set()
            await self.go.wait()
        return await super().send(message)


def _state(engine) -> tuple:
    """What must survive: the month's report, the audit chain's verdict, every message's words and address."""
    with session_scope(engine) as s:
        report = compliance.report(s, "2027-03", zone=SH, policy=load_policy(), now=NOW)
        verdict = audit.verify(s)
        words = {m.id: (m.body, m.address) for m in s.exec(select(Message))}
    return report, (verdict.ok, verdict.entries, verdict.head), words


@pytest.fixture
def empty_place(db, tmp_path):
    """An empty database of the same kind: a new SQLite file, or a new PostgreSQL database."""
    if db.kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'restored.db'}")
        yield engine
        engine.dispose()
        return
    name = f"checkin_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(db.engine.url.set(query={}), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(db.engine.url.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


async def test_a_backup_during_a_drain_restores_whole(db, tmp_path, empty_place):
    c = County(db)
    for hour in (9, 11, 13):
        c.sweep(local(2027, 3, 1, hour))
    with session_scope(db.engine) as s:  # an officer's act: the audit chain has entries
        set_level(s, s.get(Supervisee, c.lenient.id), "ordinary", actor=Actor(f"officer:{c.li.id}"), now=NOW)
        for i in range(1500):  # a greeting's worth of messages waiting
            outbox.enqueue(s, channel="sms", address=f"+86139{i:08d}", body=f"节日问候 {i}", now=NOW,
                           dedupe_key=f"g:{i}")
    before = _state(db.engine)
    channel = Held()
    drain = asyncio.create_task(Outbox(db.engine, {"sms": channel, "telegram": RecordingChannel("telegram")})
                                .drain(NOW))
    await asyncio.wait_for(channel.holding.wait(), 60)  # the drain is under way: 200 sent, the rest claimed
    copied = await asyncio.to_thread(backup, db.engine, tmp_path / "checkin.backup")
    assert not drain.done()  # taken while the drain was sending
    channel.go.set()
    await drain
    assert copied.messages == len(before[2]) and copied.audit_entries == before[1][1] > 0
    kept = (tmp_path / "checkin.backup").read_bytes()
    assert os.environ["CHECKIN_DATA_KEYS"].encode() not in kept and KEYRING.data_keys[0] not in kept  # no keys
    restored = await asyncio.to_thread(restore, tmp_path / "checkin.backup", empty_place)
    assert restored.messages == copied.messages and restored.revision == copied.revision
    after = _state(empty_place)
    assert after[0] == before[0]  # the report
    assert after[1] == before[1] and after[1][0]  # the audit chain: whole, the same head
    assert after[2] == before[2]  # every message: the same words to the same address
    with pytest.raises(BackupError, match="already has checkin tables"):
        restore(tmp_path / "checkin.backup", empty_place)
    with pytest.raises(BackupError, match="exists"):
        backup(db.engine, tmp_path / "checkin.backup")
