"""The inbox: inbound stored and handled off the event loop; a blocked handler delays only itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import select

from bot import inbox as inbox_module
from bot.inbox import Inbox
from bot.sandbox.loopback import free_port
from bot.sandbox.twilio_api import FakeTwilio
from content.areas import load_areas
from content.policy import load_policy
from handlers.contract import Inbound, Reply
from handlers.router import ANYONE, Route, default_router
from scheduler.clock import FixedClock
from scheduler.drain import Outbox
from scheduler.sweep import SweepConfig, sweep
from scheduler.ticker import Ticker
from storage.db import session_scope
from storage.models import Message, Obligation
from tests.factories import officer, supervisee
from tests.scheduler.test_outbox import RecordingChannel
from tests.sim import SH, local

NOW = local(2027, 3, 1, 9, 30)


def people(db, n: int):
    """An officer and `n` people, planned the day before and prompted at 09:00."""
    day_before = NOW - timedelta(days=1)
    boss = officer(db.engine, day_before)
    out = [supervisee(db.engine, day_before, boss.id, case_number=f"JZ{i:05d}", phone=f"+861390000{i:04d}",
                      level="strict") for i in range(n)]
    policy = load_policy()
    policy = policy.model_copy(update={"planning": policy.planning.model_copy(update={"people_per_sweep": n})})
    sweep(db.engine, NOW - timedelta(minutes=30), SweepConfig(policy, SH))
    return out


def router_with(handler=None):
    router = default_router(policy=load_policy(), areas=load_areas(), zone=SH)
    if handler is not None:
        router.routes.insert(0, Route(("slow",), ANYONE, handler))
    return router


async def test_a_burst_is_stored_in_groups_and_each_answer_handled_once(db, monkeypatch):
    monkeypatch.setattr(inbox_module, "BATCH_SECONDS", 60.0)  # batches sized by count, not by this machine's pace
    folk = people(db, 40)
    inbox = Inbox(db.engine, router_with(), lambda: NOW, lambda handled: None)
    answers = [Inbound("sms", p.phone, text="1", provider_id=f"SM{i:032d}") for i, p in enumerate(folk)]
    repeat = Inbound("sms", folk[0].phone, text="1", provider_id="SM" + "0" * 32)  # Twilio retrying the first
    ids = await asyncio.gather(*(inbox.submit(a) for a in [*answers, repeat]))
    await inbox.join()
    await inbox.stop()
    assert len(set(ids[:-1])) == 40 and None not in ids[:-1]
    assert ids[-1] is None  # the repeat is not stored again
    with session_scope(db.engine) as s:
        rows = s.exec(select(Message).where(Message.direction == "in")).all()
        assert len(rows) == 40 and {r.status for r in rows} == {"handled"}
        assert {r.supervisee_id for r in rows} == {p.id for p in folk}  # the sender is recorded when handled
        done = s.exec(select(Obligation).where(Obligation.kind == "checkin", Obligation.state == "done")).all()
        assert len(done) == 40
        replies = s.exec(select(Message).where(Message.direction == "out", Message.dedupe_key.like("reply:%"))).all()
        assert len(replies) == 40
    assert inbox.batches < 40  # several answers to a transaction


async def test_a_failing_handler_costs_only_its_own_message(db):
    folk = people(db, 3)

    async def broken(inbound, ctx):
        raise RuntimeError("a bug")

    inbox = Inbox(db.engine, router_with(broken), lambda: NOW, lambda handled: None)
    sent = [Inbound("sms", folk[0].phone, text="1", provider_id="SMa"),
            Inbound("sms", folk[1].phone, text="slow", provider_id="SMb"),
            Inbound("sms", folk[2].phone, text="1", provider_id="SMc")]
    await asyncio.gather(*(inbox.submit(m) for m in sent))
    await inbox.join()
    await inbox.stop()
    with session_scope(db.engine) as s:
        rows = {r.provider_id: r for r in s.exec(select(Message).where(Message.direction == "in"))}
        assert {k: (r.status, r.error_code) for k, r in rows.items()} == {
            "SMa": ("handled", None), "SMb": ("handled", "handler_error"), "SMc": ("handled", None)}
        kinds = sorted(r.kind for r in s.exec(select(Message).where(Message.direction == "out",
                                                                    Message.dedupe_key.like("reply:%"))))
        assert kinds == ["error", "reply", "reply"]  # the broken one is still answered


async def test_a_blocked_handler_delays_only_itself(db):
    """While one handler is stuck, the loop runs the clock job, a send goes out, and (PostgreSQL) others are stored."""
    folk = people(db, 3)
    entered, release = threading.Event(), threading.Event()

    async def stuck(inbound, ctx):
        entered.set()
        release.wait(30)  # a slow transaction: this thread waits, holding its transaction
        return [Reply("done at last")]

    inbox = Inbox(db.engine, router_with(stuck), lambda: NOW, lambda handled: None)
    try:
        await inbox.submit(Inbound("sms", folk[0].phone, text="slow", provider_id="SMslow"))
        assert await asyncio.to_thread(entered.wait, 10)
        # The event loop is free (before the inbox, the handler ran on it and the submit above never returned).
        ran = []

        async def clock_job():
            ran.append(NOW)

        await asyncio.wait_for(clock_job(), 1)
        assert ran == [NOW]
        if db.kind == "postgres":  # SQLite has one writer, and the stuck transaction holds it
            # Another answer is stored (acknowledged) while the handler is stuck ...
            stored = await asyncio.wait_for(
                inbox.submit(Inbound("sms", folk[1].phone, text="1", provider_id="SMnext")), 10)
            assert stored is not None
            # ... and a tick sweeps and drains: the outbox sends what is due.
            channel = RecordingChannel()
            with session_scope(db.engine) as s:
                notice = Message(direction="out", channel="sms", address=folk[2].phone, kind="notice", body="hi",
                                 status="queued", attempts=0, next_attempt_at=NOW, created_at=NOW, updated_at=NOW)
                s.add(notice)
                s.flush()
                notice_id = notice.id
            clock = FixedClock(NOW)
            ticker = Ticker(db.engine, Outbox(db.engine, {"sms": channel}),
                            SweepConfig(load_policy(), SH), clock)
            await asyncio.wait_for(ticker.tick(NOW), 20)
            assert notice_id in channel.sent
    finally:
        release.set()
        await inbox.join()
        await inbox.stop()
    with session_scope(db.engine) as s:
        statuses = {r.provider_id: r.status for r in s.exec(select(Message).where(Message.direction == "in"))}
    assert set(statuses.values()) == {"handled"}


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_two_inboxes_receiving_one_message_handle_it_once(db):
    """Two inboxes (two services) on one database both get the same provider id: stored once, handled once."""
    folk = people(db, 1)
    inboxes = [Inbox(db.engine, router_with(), lambda: NOW, lambda handled: None) for _ in range(2)]
    same = Inbound("sms", folk[0].phone, text="1", provider_id="SM" + "7" * 32)
    ids = await asyncio.gather(*(box.submit(same) for box in inboxes))
    for box in inboxes:
        await box.join()
        await box.stop()
    assert sorted(ids, key=lambda i: i is None)[1] is None and any(ids)
    with session_scope(db.engine) as s:
        assert len(s.exec(select(Message).where(Message.direction == "in")).all()) == 1
        assert len(s.exec(select(Message).where(Message.direction == "out",
                                                Message.dedupe_key.like("reply:%"))).all()) == 1


class Log:
    """A service process's log, read as it comes (no polling); `running` is set once it listens."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.running = threading.Event()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc) -> None:
        for line in proc.stderr:
            self.lines.append(line)
            if "checkin running" in line:
                self.running.set()

    def text(self) -> str:
        return "".join(self.lines)


@pytest.mark.slow
@pytest.mark.parametrize("db", ["postgres"], indirect=True)
async def test_two_service_processes_on_one_port_handle_each_answer_once(db, tmp_path):
    """`checkin run --no-scheduler` twice on one port (SO_REUSEPORT); Twilio repeats some answers."""
    folk = people(db, 30)
    with session_scope(db.engine) as s:  # the 09:00 prompts went out: only the replies are to send
        s.execute(update(Message).where(Message.direction == "out").values(status="sent"))
    fake = FakeTwilio()
    await fake.start()
    port = free_port()
    fake.service_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHECKIN_", "TELEGRAM_", "TWILIO_"))}
    env.update(CHECKIN_DATABASE_URL=db.url, CHECKIN_HTTP_PORT=str(port), CHECKIN_HTTP_REUSE_PORT="1",
               CHECKIN_PUBLIC_URL=fake.service_url, CHECKIN_CLOCK=f"{NOW.astimezone(SH).isoformat()}@1",
               CHECKIN_DATA_KEYS=os.environ["CHECKIN_DATA_KEYS"], CHECKIN_INDEX_KEY=os.environ["CHECKIN_INDEX_KEY"],
               TWILIO_ACCOUNT_SID=fake.account_sid, TWILIO_AUTH_TOKEN=fake.auth_token,
               TWILIO_FROM_NUMBER=fake.number, TWILIO_API_BASE_URL=fake.base_url, CHECKIN_SMS_RATE="100",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))  # this checkout's code, whatever is installed
    procs = [subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--no-scheduler"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    logs = [Log(p) for p in procs]
    try:
        for log in logs:  # both listen on the one port: the second start did not fail with "address in use"
            assert await asyncio.to_thread(log.running.wait, 60), log.text()
        assert all(p.poll() is None for p in procs)
        answers = [fake.inbound_params(p.phone, "1") for p in folk]
        for params in answers:
            params["SmsSid"] = params["MessageSid"]
        # Every answer once, and ten of them three more times at once (a provider's retries).
        sends = answers + answers[:10] * 3
        async with httpx.AsyncClient(timeout=30) as client:
            async def post(params):
                url = f"{fake.service_url}/twilio/sms"
                return await client.post(url, data=params, headers={"X-Twilio-Signature": fake.sign(url, params)})

            responses = await asyncio.gather(*(post(p) for p in sends))
        assert {r.status_code for r in responses} == {200}
        await fake.wait_for(lambda: len(fake.sent) >= 30, timeout=60)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)
        await fake.stop()
    handled_by = Counter()  # "message 12 from supervisee 3 -> answer": which process handled which message
    for log in logs:
        handled_by.update(line.split(" from ")[0].split()[-1] for line in log.text().splitlines()
                          if " -> " in line and "message " in line)
    with session_scope(db.engine) as s:
        inbound = s.exec(select(Message).where(Message.direction == "in")).all()
        assert len(inbound) == 30 and {m.status for m in inbound} == {"handled"}
        replies = s.exec(select(Message).where(Message.direction == "out", Message.dedupe_key.like("reply:%"))).all()
        assert len(replies) == 30
        done = s.exec(select(Obligation).where(Obligation.kind == "checkin", Obligation.state == "done")).all()
        assert len(done) == 30
    assert sorted(m.to for m in fake.sent) == sorted(p.phone for p in folk)  # one reply each, none twice
    assert sum(handled_by.values()) == 30 and max(handled_by.values()) == 1
    assert all(" -> " in log.text() for log in logs)  # both processes took a share
