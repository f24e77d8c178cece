"""The outbox drain: our overhead per message, and the rate achieved through python-telegram-bot.

    python bench/drain.py null [--people 100000] [--postgres URL]
    python bench/drain.py telegram [--rate 30] [--seconds 60] [--paid] [--concurrency 8] [--postgres URL]

`null`: a holiday greeting queued for N people, drained through a channel that
does nothing (no limit): messages per second is what claiming, sending through
the adapter interface and recording costs us.

`telegram`: a greeting queued for rate x seconds people on Telegram, drained
through the real TelegramChannel (python-telegram-bot, AIORateLimiter, our
per-channel limiter) against the Bot API stand-in, which runs in a process of
its own (as Telegram is elsewhere): the achieved rate over the whole drain, as
a ratio to the limit. `--paid` sends with `allow_paid_broadcast`, the way
greetings go when CHECKIN_TELEGRAM_PAID_BROADCAST is on (limit up to 1,000/s).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, update  # noqa: E402

from bench.sweep import enrol  # noqa: E402
from handlers import greetings  # noqa: E402
from scheduler.channels import SendResult  # noqa: E402
from scheduler.drain import Outbox  # noqa: E402
from storage.db import migrate, session_scope  # noqa: E402
from storage.models import Message, Supervisee  # noqa: E402
from tests.conftest import make_engine, pg_schema  # noqa: E402

NOW = datetime(2027, 2, 6, 1, tzinfo=UTC)


class NullChannel:
    """Accepts everything at once: what is left is our own cost."""

    name = "sms"
    rate = 1_000_000.0

    async def send(self, message) -> SendResult:
        return SendResult(provider_id=f"null-{message.id}")


def queue_greeting(engine, n: int, telegram: bool) -> float:
    enrol(engine, n, NOW)
    if telegram:
        with session_scope(engine) as s:
            s.execute(update(Supervisee).values(telegram_chat_id=Supervisee.id + 100_000,
                                                preferred_channel="telegram"))
    holiday = greetings.find_holiday("CN", today=date(2027, 1, 1), name="spring_festival")
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        greetings.enqueue_bulk(s, key=greetings.greeting_key(holiday), kind="greeting", section="greeting",
                               template=holiday.slug, now=NOW, audience=greetings.Audience(), holiday=holiday)
    return time.perf_counter() - t0


def sent_count(engine) -> int:
    with session_scope(engine) as s:
        return s.execute(select(func.count()).select_from(Message).where(Message.status == "sent")).scalar_one()


async def null_drain(url: str, n: int) -> dict:
    engine = make_engine(url)
    migrate(engine)
    queue_greeting(engine, n, telegram=False)
    box = Outbox(engine, {"sms": NullChannel()})
    t0 = time.perf_counter()
    report = await box.drain(NOW)
    elapsed = time.perf_counter() - t0
    assert report.sent == n == sent_count(engine), (report, n)
    engine.dispose()
    return {"messages": n, "seconds": elapsed, "per_s": n / elapsed}


def _serve_fake(port: int, ready) -> None:
    from bot.sandbox.telegram_api import FakeTelegram

    async def main():
        fake = FakeTelegram(keep_sent=False)
        await fake.start(port=port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def telegram_drain(url: str, rate: float, seconds: float, paid: bool, concurrency: int) -> dict:
    from bot.channels.telegram import TelegramChannel
    from bot.sandbox.loopback import free_port

    n = int(rate * seconds)
    engine = make_engine(url)
    migrate(engine)
    queue_greeting(engine, n, telegram=True)
    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve_fake, args=(port, ready), daemon=True)
    server.start()
    ready.wait(30)

    async def nothing(_inbound) -> None:
        return None

    channel = TelegramChannel("123456:TEST-TOKEN", f"http://127.0.0.1:{port}/bot", nothing,
                              now=lambda: datetime.now(UTC), rate=rate,
                              paid_broadcast=paid, concurrency=concurrency)
    await channel.start(receive=False)
    box = Outbox(engine, {"telegram": channel})
    t0 = time.perf_counter()
    report = await box.drain(NOW)
    elapsed = time.perf_counter() - t0
    await channel.stop()
    import httpx
    async with httpx.AsyncClient() as client:
        stats = (await client.post(f"http://127.0.0.1:{port}/bot123456:TEST-TOKEN/sandboxStats")).json()["result"]
    server.terminate()
    assert report.sent == n == sent_count(engine) == stats["sent"], (report, n, stats)
    assert stats["paid"] == (n if paid else 0), stats
    engine.dispose()
    return {"messages": n, "seconds": elapsed, "per_s": n / elapsed, "ratio": n / elapsed / rate,
            "busiest": stats["busiest_second"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["null", "telegram"])
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--paid", action="store_true")
    ap.add_argument("--concurrency", type=int, default=8, help="sends in flight (CHECKIN_TELEGRAM_CONCURRENCY)")
    ap.add_argument("--postgres", help="also run on this PostgreSQL database (a schema of its own, dropped after)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("SQLite", f"sqlite:///{tmp}/bench.db")] + ([("PostgreSQL", None)] if args.postgres else [])
        for label, target in runs:
            if target is None:
                admin = make_engine(args.postgres)
                with pg_schema(admin, "checkin_bench") as pg_url:
                    result = _one(args, pg_url)
                admin.dispose()
            else:
                result = _one(args, target)
            extra = (f", {result['ratio']:.3f} of the limit; busiest second at the server: {result['busiest']}"
                     if "ratio" in result else "")
            how = f" paid, concurrency {args.concurrency}" if args.paid else (
                f", concurrency {args.concurrency}" if args.mode == "telegram" else "")
            print(f"{label:10} {args.mode}{how}: {result['messages']:,} messages in "
                  f"{result['seconds']:.1f} s = {result['per_s']:,.0f}/s{extra}", flush=True)


def _one(args, url: str) -> dict:
    if args.mode == "null":
        return asyncio.run(null_drain(url, args.people))
    return asyncio.run(telegram_drain(url, args.rate, args.seconds, args.paid, args.concurrency))


if __name__ == "__main__":
    main()
