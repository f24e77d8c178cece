"""kill -9 in the middle of a bulk greeting drain and in the middle of inbound handling; then a restart.

The service runs as `checkin run --no-scheduler` in a process of its own, against the Telegram and Twilio
stand-ins in this one. After the restart nothing is lost, nothing is handled twice, and duplicate sends are
limited to the rows in flight when the process died (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, update
from sqlmodel import select

from bot.sandbox.loopback import free_port
from bot.sandbox.telegram_api import FakeTelegram
from bot.sandbox.twilio_api import FakeTwilio
from handlers import greetings
from scheduler.drain import RECORD_EVERY
from storage.db import session_scope
from storage.models import Message, Obligation, Supervisee
from tests.factories import officer, supervisee
from tests.sim import County, local

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TELEGRAM_CONCURRENCY = 8


def _service(env: dict, log: Path) -> subprocess.Popen:
    """`checkin run --no-scheduler` in its own process; the clock job ticks every real second."""
    return subprocess.Popen([sys.executable, "-c", "from bot.cli import main; main()", "run", "--no-scheduler"],
                            env={**os.environ, **env}, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


async def _until(predicate, timeout: float = 60.0, log: Path | None = None) -> None:
    """Wait for another process's progress (polling the stand-ins or the database, not the clock)."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out" + (f"; service log:\n{log.read_text()[-3000:]}" if log else ""))


def _base_env(db, now) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHECKIN_", "TELEGRAM_", "TWILIO_"))}
    env.update(CHECKIN_DATABASE_URL=db.url, CHECKIN_CLOCK=f"{now.isoformat()}@1", CHECKIN_CLAIM_LEASE_SECONDS="2",
               CHECKIN_HTTP_PORT=str(free_port()), PYTHONPATH=str(ROOT))
    return env


async def test_kill_during_a_bulk_greeting_drain(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = local(2027, 2, 6, 9)
    li = officer(db.engine, now, name="李娜", telegram_id=5001)
    people = 400
    for i in range(people):
        supervisee(db.engine, now, li.id, case_number=f"G{i:04d}", name=f"人{i}", phone=f"+86139{i:08d}",
                   telegram_chat_id=20_000 + i, preferred_channel="telegram", level="lenient")
    holiday = greetings.find_holiday("CN", today=now.date(), name="spring_festival")
    with session_scope(db.engine) as s:
        greetings.enqueue_bulk(s, key=greetings.greeting_key(holiday), kind="greeting", section="greeting",
                               template=holiday.slug, now=now, audience=greetings.Audience(), holiday=holiday)
    fake = FakeTelegram()
    await fake.start()
    env = {**_base_env(db, now), "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_BASE_URL": fake.base_url,
           "CHECKIN_TELEGRAM_RATE": "100", "CHECKIN_TELEGRAM_CHAT_RATE": "10",
           "CHECKIN_TELEGRAM_CONCURRENCY": str(TELEGRAM_CONCURRENCY)}
    log = tmp_path / "service.log"
    sent = lambda: sum(len(v) for v in fake.sent.values())  # noqa: E731
    try:
        first = _service(env, log)
        await _until(lambda: sent() >= 120, log=log)
        _kill(first)  # mid-drain: some rows sent and recorded, some sent and not yet recorded, some claimed
        at_kill = sent()
        assert at_kill < people, "the drain finished before it could be killed"
        second = _service(env, log)

        def all_recorded() -> bool:
            with session_scope(db.engine) as s:
                return s.exec(select(func.count()).select_from(Message).where(
                    Message.kind == "greeting", Message.status != "sent")).one() == 0
        await _until(all_recorded, timeout=90, log=log)
        _kill(second)
    finally:
        await fake.stop()
    per_chat = Counter({chat: len([m for m in msgs if "春节" in m.text]) for chat, msgs in fake.sent.items()})
    assert set(per_chat) == {20_000 + i for i in range(people)}  # everyone got it: nothing lost
    duplicates = sum(n - 1 for n in per_chat.values())
    assert duplicates <= TELEGRAM_CONCURRENCY + RECORD_EVERY, duplicates  # only rows in flight at the kill


async def test_kill_during_inbound_handling(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prompt_at = local(2027, 3, 1, 9)
    c = County(db)
    li = c.li
    people = 150
    for i in range(people):
        supervisee(db.engine, prompt_at, li.id, case_number=f"K{i:04d}", name=f"人{i}", phone=f"+86137{i:08d}",
                   level="strict")
    c.sweep(prompt_at)  # everyone's check-in is waiting
    with session_scope(db.engine) as s:  # the prompts went out earlier: not this test's business
        s.execute(update(Message).where(Message.direction == "out").values(status="sent"))
        phones = [p for p in s.exec(select(Supervisee.phone).where(Supervisee.case_number.like("K%"))).all()]
    twilio = FakeTwilio()
    await twilio.start()
    env = _base_env(db, prompt_at + timedelta(minutes=10))
    port = env["CHECKIN_HTTP_PORT"]
    env.update(CHECKIN_PUBLIC_URL=f"http://127.0.0.1:{port}", TWILIO_ACCOUNT_SID=twilio.account_sid,
               TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_FROM_NUMBER=twilio.number,
               TWILIO_API_BASE_URL=twilio.base_url, CHECKIN_SMS_RATE="200")
    target = f"http://127.0.0.1:{port}/twilio/sms"
    forms = {}
    for phone in phones:
        params = twilio.inbound_params(phone, "1")
        params["SmsSid"] = params["MessageSid"]
        forms[phone] = params
    acknowledged: set[str] = set()
    log = tmp_path / "service.log"

    async def post_all(client: httpx.AsyncClient, which: list[str]) -> None:
        gate = asyncio.Semaphore(20)

        async def one(phone: str) -> None:
            async with gate:
                try:
                    resp = await client.post(target, data=forms[phone],
                                             headers={"X-Twilio-Signature": twilio.sign(target, forms[phone])})
                except httpx.TransportError:
                    return  # the service died under it: Twilio would try again
                if resp.status_code == 200:
                    acknowledged.add(phone)
        await asyncio.gather(*(one(p) for p in which))

    try:
        first = _service(env, log)
        async with httpx.AsyncClient(timeout=30) as client:
            await _until(lambda: _up(port), log=log)
            burst = asyncio.create_task(post_all(client, phones))
            await _until(lambda: len(acknowledged) >= 40, log=log)
            _kill(first)  # in the middle of the burst
            await burst
            assert len(acknowledged) < people, "the burst finished before the kill"
            second = _service(env, log)
            await _until(lambda: _up(port), log=log)
            # What got no 200 is delivered again (the same MessageSid), as a provider retries.
            await post_all(client, [p for p in phones if p not in acknowledged])
        assert acknowledged == set(phones)

        def settled() -> bool:
            with session_scope(db.engine) as s:
                return s.exec(select(func.count()).select_from(Message).where(
                    Message.direction == "in", Message.status != "handled")).one() == 0
        await _until(settled, log=log)
        _kill(second)
    finally:
        await twilio.stop()
    with session_scope(db.engine) as s:
        inbound = s.exec(select(Message).where(Message.direction == "in")).all()
        states = Counter(s.exec(select(Obligation.state).join(Supervisee, Supervisee.id == Obligation.supervisee_id)
                                .where(Supervisee.case_number.like("K%"), Obligation.kind == "checkin",
                                       Obligation.prompted_at.is_not(None))).all())
        replies = Counter(a for a in s.exec(select(Message.address).where(Message.direction == "out",
                                                                          Message.kind == "reply")).all()
                          if a in set(phones))  # addresses are encrypted: compared once decrypted
    assert len(inbound) == people and len({m.provider_id for m in inbound}) == people  # stored once each
    assert states == {"done": people}  # every answer counted, once
    assert set(replies) == set(phones) and set(replies.values()) == {1}  # one answer each, none lost, none twice


def _up(port: str) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/livez", timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False
