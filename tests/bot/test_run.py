"""`checkin run` under CHECKIN_CLOCK, `checkin tick`, and two workers at once on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.sandbox.loopback import free_port
from scheduler.clock import FastClock, FixedClock
from scheduler.drain import Outbox
from scheduler.ticker import Ticker, tick_interval
from storage.db import migrate
from tests.conftest import make_engine
from tests.scheduler.test_outbox import RecordingChannel
from tests.sim import SH, County, local, steps


def _summary(c: County) -> Counter:
    return Counter((m.kind, m.address) for m in c.out())


@pytest.mark.slow
def test_run_under_the_fast_clock_matches_minute_ticks(db, tmp_path):
    start, stop = local(2027, 3, 1, 7, 55), local(2027, 3, 1, 18, 0)
    fast = County(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHECKIN_", "TELEGRAM_", "TWILIO_"))}
    env.update(CHECKIN_DATABASE_URL=db.url, CHECKIN_HTTP_PORT=str(free_port()),
               CHECKIN_DATA_KEYS=os.environ["CHECKIN_DATA_KEYS"], CHECKIN_INDEX_KEY=os.environ["CHECKIN_INDEX_KEY"],
               CHECKIN_CLOCK=f"{start.astimezone(SH).isoformat()}@3600")  # 10 s; a simulated minute is 17 ms
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--stop-at", stop.isoformat()],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "已停止：共 " in proc.stdout  # the office's default language, Chinese

    # The same county on a second database, swept every simulated minute in-process.
    class Other:
        kind, url = "sqlite", f"sqlite:///{tmp_path / 'ref.db'}"
        engine = make_engine(url)

    migrate(Other.engine)
    ref = County(Other)
    for now in steps(start, stop, minutes=1):
        ref.sweep(now)

    assert _summary(fast) == _summary(ref)
    assert _summary(fast)[("checkin_prompt", fast.strict.phone)] == 1
    assert _summary(fast)[("escalation", "9000")] == 3  # all three went on to the supervisor at 17:00
    for kind, due in (("checkin_prompt", local(2027, 3, 1, 9)), ("checkin_reminder", local(2027, 3, 1, 11)),
                      ("escalation", local(2027, 3, 1, 13))):
        for m in fast.out(kind=kind, address=[fast.strict.phone, "5001"]):
            # within 10 simulated minutes (167 ms here): this machine's speed varies several-fold from day to day
            assert timedelta(0) <= m.created_at - due < timedelta(minutes=10), (kind, m.created_at)
    assert [o.state for o in fast.obligations(fast.strict)] == [o.state for o in ref.obligations(ref.strict)]
    Other.engine.dispose()


def test_fast_clock_job_fires_every_simulated_minute():
    assert tick_interval(FastClock(local(2027, 3, 1), 720)) == pytest.approx(60 / 720)
    assert tick_interval(FixedClock(local(2027, 3, 1))) == 60


def test_tick_command_catches_up(env):
    c = County(env)
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})
    result = runner.invoke(app, ["tick", "--at", "2027-03-01T10:00+08:00"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "prompted" in result.output
    assert len(c.out(kind="checkin_prompt")) == 3
    result = runner.invoke(app, ["tick", "--at", "2027-03-01T10:00"])
    assert result.exit_code == 2 and "UTC offset" in result.output


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_two_workers_at_once_create_and_send_nothing_twice(db):
    c = County(db)
    channels = {"sms": RecordingChannel("sms"), "telegram": RecordingChannel("telegram")}
    # Each worker's Outbox gets its own limiters (one event loop each); the channels record for both.
    instants = list(steps(local(2027, 3, 1, 8), local(2027, 3, 1, 18), minutes=10))
    barrier = threading.Barrier(2, timeout=60)
    errors = []

    def worker():
        try:
            ticker = Ticker(c.engine, Outbox(c.engine, channels), c.cfg, FixedClock(instants[0]))
            barrier.wait()

            async def ticks():
                for now in instants:
                    # Both workers tick each instant together, as two processes on one clock would.
                    await asyncio.to_thread(barrier.wait)
                    await ticker.tick(now)

            asyncio.run(ticks())
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    sent = Counter(channels["sms"].sent + channels["telegram"].sent)
    assert sent and max(sent.values()) == 1
    rows = c.out()
    assert len(rows) == len({m.dedupe_key for m in rows})
    assert Counter(m.kind for m in rows) == {"checkin_prompt": 3, "checkin_reminder": 3, "escalation": 6}
    assert {m.status for m in rows if m.channel != "console"} == {"sent"}


async def test_a_channels_only_worker_drains_without_sweeping(db):
    c = County(db)
    c.sweep(local(2027, 3, 1, 9))
    channel = RecordingChannel("sms")
    ticker = Ticker(c.engine, Outbox(c.engine, {"sms": channel}), c.cfg, FixedClock(local(2027, 3, 1, 9)),
                    sweeps=False)
    report = await ticker.tick(local(2027, 3, 1, 14))
    assert report.sweep is None and report.drain.sent == 2  # the two SMS prompts, nothing swept at 14:00
    assert c.escalations() == []


def test_run_on_a_port_in_use_says_so_and_stops(env, monkeypatch):
    """A second service on a taken port stops at once with the reason (it did go on, without a web server)."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    monkeypatch.setenv("CHECKIN_HTTP_PORT", str(port))
    try:
        result = CliRunner(env={"CHECKIN_LANGUAGE": "en"}).invoke(app, ["run", "--no-scheduler"])
    finally:
        taken.close()
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output and "CHECKIN_HTTP_REUSE_PORT" in result.output
