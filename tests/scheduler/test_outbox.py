"""The outbox: dedupe, drain, retries with capped backoff, permanent failures, claims under concurrency."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from scheduler.channels import PermanentSendError, SendResult, TransientSendError
from scheduler.drain import BACKOFF_CAP, MAX_ATTEMPTS, Outbox, backoff
from storage import outbox
from storage.db import session_scope
from storage.models import Message
from tests.conftest import NOW
from tests.factories import officer


class RecordingChannel:
    """A channel that records what it sends and fails on demand."""

    def __init__(self, name="sms", rate=1000.0, fail=None):
        self.name, self.rate = name, rate
        self.sent: list[int] = []
        self.times: list[float] = []
        self.fail = fail or {}  # message id -> exception to raise (once per entry)
        self.lock = threading.Lock()

    async def send(self, message):
        if message.id in self.fail:
            raise self.fail.pop(message.id)
        await asyncio.sleep(0)
        with self.lock:
            self.sent.append(message.id)
            self.times.append(time.monotonic())
        return SendResult(provider_id=f"P{message.id}")


def _enqueue(db, n, channel="sms", **kw):
    ids = []
    with session_scope(db.engine) as s:
        for i in range(n):
            ids.append(outbox.enqueue(s, channel=channel, address=f"+86139{i:08d}", body=f"m{i}",
                                      now=NOW, dedupe_key=f"t:{channel}:{i}", **kw))
    return ids


def _rows(db):
    with session_scope(db.engine) as s:
        return {m.id: m for m in s.exec(select(Message))}


def test_enqueue_twice_with_same_key_does_nothing(db):
    with session_scope(db.engine) as s:
        first = outbox.enqueue(s, channel="sms", address="+8613800000000", body="a", now=NOW, dedupe_key="k")
        second = outbox.enqueue(s, channel="sms", address="+8613800000000", body="b", now=NOW, dedupe_key="k")
    assert first is not None and second is None
    rows = _rows(db)
    assert len(rows) == 1 and rows[first].body == "a"


async def test_drain_sends_and_records_provider_ids(db):
    ids = _enqueue(db, 5)
    later = _enqueue(db, 1, channel="telegram")  # no adapter given: stays queued
    ch = RecordingChannel()
    report = await Outbox(db.engine, {"sms": ch}).drain(NOW)
    assert sorted(ch.sent) == sorted(ids) and report.sent == 5
    rows = _rows(db)
    for i in ids:
        assert rows[i].status == "sent" and rows[i].provider_id == f"P{i}" and rows[i].sent_at == NOW
        assert rows[i].attempts == 1
    assert rows[later[0]].status == "queued"
    assert (await Outbox(db.engine, {"sms": ch}).drain(NOW)).claimed == 0


async def test_not_before_holds_a_row_back(db):
    with session_scope(db.engine) as s:
        mid = outbox.enqueue(s, channel="sms", address="+8613800000000", body="x", now=NOW,
                             not_before=NOW + timedelta(hours=1))
    ch = RecordingChannel()
    box = Outbox(db.engine, {"sms": ch})
    await box.drain(NOW)
    assert ch.sent == []
    await box.drain(NOW + timedelta(hours=1))
    assert ch.sent == [mid]


async def test_transient_error_retries_with_backoff_then_succeeds(db):
    (mid,) = _enqueue(db, 1)
    ch = RecordingChannel(fail={mid: TransientSendError("HTTP 503", code="503")})
    box = Outbox(db.engine, {"sms": ch})
    report = await box.drain(NOW)
    assert report.retried == 1
    row = _rows(db)[mid]
    assert row.status == "queued" and row.error_code == "503"
    assert row.next_attempt_at == NOW + backoff(1)
    await box.drain(NOW + timedelta(seconds=10))  # not yet due
    assert ch.sent == []
    await box.drain(row.next_attempt_at)
    row = _rows(db)[mid]
    assert ch.sent == [mid] and row.status == "sent" and row.attempts == 2 and row.error_code is None


async def test_retry_after_is_honoured(db):
    (mid,) = _enqueue(db, 1)
    ch = RecordingChannel(fail={mid: TransientSendError("Too Many Requests", code="429", retry_after=600)})
    await Outbox(db.engine, {"sms": ch}).drain(NOW)
    assert _rows(db)[mid].next_attempt_at == NOW + timedelta(seconds=600)


def test_backoff_is_capped():
    assert backoff(1) == timedelta(seconds=30)
    assert backoff(2) == timedelta(seconds=60)
    assert backoff(30) == BACKOFF_CAP
    assert backoff(1, retry_after=10**6) == BACKOFF_CAP


async def test_permanent_error_is_not_retried(db):
    (mid,) = _enqueue(db, 1)
    ch = RecordingChannel(fail={mid: PermanentSendError("Attempt to send to unsubscribed recipient", code="21610")})
    box = Outbox(db.engine, {"sms": ch})
    report = await box.drain(NOW)
    assert report.failed == 1
    row = _rows(db)[mid]
    assert row.status == "failed" and row.error_code == "21610"
    assert (await box.drain(NOW + timedelta(days=1))).claimed == 0


async def test_gives_up_after_max_attempts(db):
    (mid,) = _enqueue(db, 1)

    class AlwaysDown(RecordingChannel):
        async def send(self, message):
            raise TransientSendError("HTTP 500", code="500")

    box = Outbox(db.engine, {"sms": AlwaysDown()})
    at = NOW
    for _ in range(MAX_ATTEMPTS + 3):
        await box.drain(at)
        at += BACKOFF_CAP
    row = _rows(db)[mid]
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS


async def test_adapter_bug_does_not_lose_the_row(db):
    (mid,) = _enqueue(db, 1)

    class Buggy(RecordingChannel):
        async def send(self, message):
            raise KeyError("oops")

    await Outbox(db.engine, {"sms": Buggy()}).drain(NOW)
    row = _rows(db)[mid]
    assert row.status == "queued" and "KeyError" in row.error_detail


async def test_row_stuck_in_sending_is_claimed_again_after_the_lease(db):
    (mid,) = _enqueue(db, 1)
    with session_scope(db.engine) as s:
        assert [r.id for r in outbox.claim(s, NOW, ["sms"])] == [mid]  # its sender then dies
    ch = RecordingChannel()
    wall = [NOW + timedelta(minutes=1)]
    box = Outbox(db.engine, {"sms": ch}, wall=lambda: wall[0])
    await box.drain(NOW + timedelta(hours=3))  # a simulated clock far ahead does not end the lease
    assert ch.sent == []
    wall[0] = NOW + outbox.CLAIM_LEASE  # five real minutes do
    await box.drain(NOW + timedelta(hours=3))
    assert ch.sent == [mid] and _rows(db)[mid].attempts == 2


async def test_drain_only_to_one_recipient(db):
    boss = officer(db.engine, NOW)
    _enqueue(db, 2, channel="console")
    with session_scope(db.engine) as s:
        mine = outbox.enqueue(s, channel="console", address=f"officer:{boss.id}", body="yours", now=NOW,
                              officer_id=boss.id)
    ch = RecordingChannel(name="console")
    await Outbox(db.engine, {"console": ch}).drain(NOW, recipient=("officer", boss.id))
    assert ch.sent == [mine]


async def test_rate_limit_spaces_sends(db):
    _enqueue(db, 25)
    ch = RecordingChannel(rate=10)
    await Outbox(db.engine, {"sms": ch}).drain(NOW)
    assert len(ch.sent) == 25
    # aiolimiter lets a burst of `rate` through, then one every 1/rate s.
    assert ch.times[-1] - ch.times[0] >= 1.4


# SKIP LOCKED is PostgreSQL's (the scale-out deployment); SQLite serialises claims with BEGIN IMMEDIATE.
@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_concurrent_claims_skip_locked_rows(db):
    _enqueue(db, 10)
    with session_scope(db.engine) as a:
        got_a = outbox.claim(a, NOW, ["sms"], limit=4)  # transaction still open: rows locked
        with session_scope(db.engine) as b:
            b.execute(text("SET LOCAL lock_timeout = '5s'"))  # a blocking claim fails instead of hanging
            got_b = outbox.claim(b, NOW, ["sms"], limit=4)  # must not block, must not overlap
    assert len(got_a) == 4 and len(got_b) == 4
    assert not {r.id for r in got_a} & {r.id for r in got_b}


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_two_drains_at_once_never_send_a_row_twice(db):
    ids = _enqueue(db, 400)
    both_claimed = threading.Barrier(2, timeout=60)
    local = threading.local()

    class Gate(RecordingChannel):
        async def send(self, message):
            if not getattr(local, "waited", False):
                # Each drain holds its first claimed batch until the other has claimed one too.
                local.waited = True
                both_claimed.wait()
            return await super().send(message)

    ch = Gate()
    barrier = threading.Barrier(2)
    reports = []

    def worker():
        box = Outbox(db.engine, {"sms": ch}, batch=10)
        barrier.wait()
        reports.append(asyncio.run(box.drain(NOW)))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    counts = Counter(ch.sent)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    assert sum(r.sent for r in reports) == 400
    assert all(r.sent > 0 for r in reports), [r.sent for r in reports]


class SlowChannel:
    """Takes a while per send (a network round trip), with `concurrency` sends allowed in flight."""

    name, rate = "sms", 100_000.0

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.in_flight = self.most_in_flight = 0
        self.order: dict[str, list[int]] = {}

    async def send(self, message):
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        for _ in range(1 + message.id % 3):  # uneven round trips: yield to the others once, twice or three times
            await asyncio.sleep(0)
        self.in_flight -= 1
        self.order.setdefault(message.address, []).append(message.id)
        return SendResult(provider_id=f"P{message.id}")


async def test_several_chats_at_once_each_in_order(db):
    # Ten people get four messages each (a lesson in parts, say), queued interleaved.
    ids = []
    with session_scope(db.engine) as s:
        for part in range(4):
            for person in range(10):
                ids.append(outbox.enqueue(s, channel="sms", address=f"+86139000000{person:02d}", body=f"part {part}",
                                          now=NOW, dedupe_key=f"lesson:{person}:{part}"))
    channel = SlowChannel(concurrency=6)
    report = await Outbox(db.engine, {"sms": channel}).drain(NOW)
    assert report.sent == 40 and all(m.status == "sent" and m.provider_id == f"P{m.id}" for m in _rows(db).values())
    assert 1 < channel.most_in_flight <= 6
    for address, sent in channel.order.items():
        assert sent == sorted(sent) and len(sent) == 4, address  # each person's parts in the order queued
    assert Outbox(db.engine, {"sms": SlowChannel(concurrency=1)}).channels["sms"].concurrency == 1


async def test_outcomes_of_one_batch_are_recorded_together_and_failures_each(db):
    ids = _enqueue(db, 120)
    boom = {ids[5]: PermanentSendError("bad number", code="21211"), ids[70]: TransientSendError("busy", code="429")}
    report = await Outbox(db.engine, {"sms": RecordingChannel(fail=boom)}).drain(NOW)
    rows = _rows(db)
    assert (report.sent, report.failed, report.retried) == (118, 1, 1)
    assert rows[ids[5]].status == "failed" and rows[ids[5]].error_code == "21211"
    assert rows[ids[70]].status == "queued" and rows[ids[70]].next_attempt_at > NOW
    assert sum(r.status == "sent" and r.claim_token is None and r.sent_at == NOW for r in rows.values()) == 118
