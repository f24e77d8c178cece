"""Peak memory of the service at 100,000 enrolled.

    python bench/memory.py [--people 100000] [--postgres URL]

This process is the service: the runtime, the real stack (Telegram adapter on
python-telegram-bot polling the Bot API stand-in, SMS adapter on the twilio
Client, the outbox), half the people on Telegram and half on SMS. The
stand-ins run in a process of their own, so that what they keep is not counted.
The service plans everyone's obligations, sends Monday's 09:00 check-in
prompts (three quarters of the roster) and then the holiday greeting to
everyone, all through the adapters; the figure is the process's peak resident
set (ru_maxrss), after each stage.

The service runs in a child process that imports only what the service
imports (not this harness's test helpers, not pytest): the "imports" stage is
the service's own. `--before REV` also measures REV's code (a git worktree) in
the same run, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
TREE = sys.argv[sys.argv.index("--tree") + 1] if "--tree" in sys.argv else str(ROOT)
sys.path.insert(0, TREE)

SH = ZoneInfo("Asia/Shanghai")
MONDAY = datetime(2027, 3, 1, 8, 0, tzinfo=SH).astimezone(UTC)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_roster(url: str, n: int) -> None:
    from sqlalchemy import update

    from bench.sweep import enrol
    from storage.db import migrate, session_scope
    from storage.models import Supervisee
    from tests.conftest import make_engine

    engine = make_engine(url)
    migrate(engine)
    enrol(engine, n, MONDAY - timedelta(days=1))
    with session_scope(engine) as s:
        s.execute(update(Supervisee).where(Supervisee.id % 2 == 0)
                  .values(telegram_chat_id=Supervisee.id + 1_000_000, preferred_channel="telegram"))
    engine.dispose()


def _stand_ins(tg_port: int, tw_port: int, ready) -> None:
    from bot.sandbox.telegram_api import FakeTelegram
    from bot.sandbox.twilio_api import FakeTwilio

    async def main():
        tg = FakeTelegram(keep_sent=False)
        tw = FakeTwilio()
        await tg.start(port=tg_port)
        await tw.start(port=tw_port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def service(url: str, n: int) -> list[tuple[str, float, float, int]]:
    try:
        from bot.serve import fewer_malloc_arenas
    except ImportError:  # a tree from before it
        pass
    else:
        fewer_malloc_arenas()  # as `checkin run` does first
    from sqlalchemy import func, select

    from bot.runtime import Runtime
    from bot.sandbox.loopback import free_port
    from bot.settings import load_settings
    from bot.stack import Stack
    from handlers import greetings
    from scheduler.clock import FixedClock
    from storage.crypto import Keyring
    from storage.db import make_engine, session_scope
    from storage.models import Message

    stages = [("imports", 0.0, peak_mb(), 0)]
    t0 = time.perf_counter()
    # The roster is loaded by another process (as `checkin roster import` would be): its memory is not the service's.
    loader = multiprocessing.Process(target=_load_roster, args=(url, n))
    loader.start()
    loader.join()
    engine = make_engine(url, Keyring.parse(os.environ["CHECKIN_DATA_KEYS"], os.environ["CHECKIN_INDEX_KEY"]))
    stages.append(("enrolled (elsewhere)", time.perf_counter() - t0, peak_mb(), 0))
    tg_port, tw_port = free_port(), free_port()
    ready = multiprocessing.Event()
    fakes = multiprocessing.Process(target=_stand_ins, args=(tg_port, tw_port, ready), daemon=True)
    fakes.start()
    ready.wait(30)
    settings = load_settings(
        database_url=url, telegram_bot_token="123456:TEST-TOKEN", telegram_base_url=f"http://127.0.0.1:{tg_port}/bot",
        twilio_account_sid="AC" + "0" * 32, twilio_auth_token="test-auth-token", twilio_from_number="+15005550006",
        twilio_api_base_url=f"http://127.0.0.1:{tw_port}", telegram_rate=1000, telegram_chat_rate=100, sms_rate=1000)
    clock = FixedClock(MONDAY)
    rt = Runtime(settings, engine, clock)
    stack = Stack(rt, poll_timeout=1.0)
    await stack.start()
    t0 = time.perf_counter()
    at = MONDAY
    while True:  # planning is bounded per sweep: tick until everyone is planned
        clock.set(at)
        report = await stack.ticker.tick(at)
        if report.sweep.planned_people == 0:
            break
        at += timedelta(seconds=1)
    stages.append(("planned", time.perf_counter() - t0, peak_mb(), 0))
    t0 = time.perf_counter()
    nine = datetime(2027, 3, 1, 9, 0, tzinfo=SH).astimezone(UTC)
    clock.set(nine)
    report = await stack.ticker.tick(nine)
    stages.append(("09:00 prompts sent", time.perf_counter() - t0, peak_mb(), report.drain.sent))
    holiday = greetings.find_holiday("CN", today=date(2027, 1, 1), name="spring_festival")
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        greetings.enqueue_bulk(s, key=greetings.greeting_key(holiday), kind="greeting", section="greeting",
                               template=holiday.slug, now=nine, audience=greetings.Audience(), holiday=holiday)
    drained = await stack.outbox.drain(nine)
    stages.append(("greeting sent to all", time.perf_counter() - t0, peak_mb(), drained.sent))
    await stack.stop()
    fakes.terminate()
    with session_scope(engine) as s:
        sent = s.exec(select(func.count()).select_from(Message).where(Message.status == "sent")).one()[0]
    engine.dispose()
    stages.append(("all messages sent", 0.0, peak_mb(), sent))
    return stages


def measure(tree: str, url: str, n: int) -> list:
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", "--tree", tree, "--db", url,
                          "--people", str(n)], cwd=tree, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=tree))
    if out.returncode != 0:
        raise RuntimeError(f"the service on {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--postgres")
    ap.add_argument("--before", help="a git revision to measure too, side by side")
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--tree")
    ap.add_argument("--db")
    args = ap.parse_args()
    if args.measure:  # the child: the service itself
        print(json.dumps(asyncio.run(service(args.db, args.people))))
        return
    from storage.crypto import new_key

    os.environ.setdefault("CHECKIN_DATA_KEYS", new_key())  # one set of keys for the loader and the service
    os.environ.setdefault("CHECKIN_INDEX_KEY", new_key())
    from bench.inbound import worktree
    from tests.conftest import make_engine, pg_schema

    with ExitStack() as stack:
        trees = [("after", str(ROOT))]
        if args.before:
            trees.insert(0, ("before", stack.enter_context(worktree(args.before))))
        for name, tree in trees:
            if args.postgres:
                admin = make_engine(args.postgres)
                with pg_schema(admin, "checkin_bench") as url:
                    stages = measure(tree, url, args.people)
                admin.dispose()
                label = "PostgreSQL"
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    stages = measure(tree, f"sqlite:///{tmp}/bench.db", args.people)
                label = "SQLite"
            for stage, seconds, mb, count in stages:
                print(f"{label:10} {name:6} {args.people:,} people | {stage:22} {seconds:6.1f} s | "
                      f"peak RSS {mb:6.1f} MB{f' | {count:,} messages' if count else ''}", flush=True)


if __name__ == "__main__":
    main()
