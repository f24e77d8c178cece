"""Inbound burst: 1,297 check-in answers arriving at once, through the router and through the Twilio webhook.

    python bench/inbound.py [--people 1297] [--postgres URL]

Everyone is prompted at 09:00; at 09:30 every person answers "1" at once.

`router`: all answers handed to the router together (asyncio.gather), as the
channel adapters hand them over: throughput, and each update's own handling
time (store, deduplicate, resolve, answer the check-in, queue the reply), p50
and p99.

`webhook`: the same answers as Twilio would POST them (form, signed with
twilio's RequestValidator algorithm) to the service's Starlette app (uvicorn on
loopback, the real stack behind it, replies drained meanwhile to the Twilio
stand-in in a process of its own), 64 requests in flight at once: throughput, and each request's
time from sending to the 200, p50 and p99.

Either way, none may be lost: every answer is stored once and every check-in is done.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench.sweep import enrol  # noqa: E402
from content.areas import load_areas  # noqa: E402
from content.policy import load_policy  # noqa: E402
from handlers.contract import Inbound  # noqa: E402
from handlers.router import default_router  # noqa: E402
from scheduler.sweep import SweepConfig, sweep  # noqa: E402
from storage.db import migrate, session_scope  # noqa: E402
from storage.models import Message, Obligation, Supervisee  # noqa: E402
from tests.conftest import make_engine, pg_schema  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
PROMPT_AT = datetime(2027, 3, 1, 9, 0, tzinfo=SH).astimezone(UTC)
ANSWER_AT = PROMPT_AT + timedelta(minutes=30)


def prepare(url: str, n: int):
    engine = make_engine(url)
    migrate(engine)
    enrol(engine, n, PROMPT_AT - timedelta(days=1))
    policy = load_policy()
    policy = policy.model_copy(update={"planning": policy.planning.model_copy(update={"people_per_sweep": n})})
    sweep(engine, PROMPT_AT, SweepConfig(policy, SH))
    with session_scope(engine) as s:
        phones = list(s.exec(select(Supervisee.phone).order_by(Supervisee.id)).scalars())
    return engine, policy, phones


def outcome(engine) -> tuple[int, int]:
    with session_scope(engine) as s:
        stored = s.exec(select(func.count()).select_from(Message).where(Message.direction == "in")).one()[0]
        done = s.exec(select(func.count()).select_from(Obligation).where(
            Obligation.kind == "checkin", Obligation.state == "done")).one()[0]
    return stored, done


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def through_router(url: str, n: int) -> dict:
    engine, policy, phones = prepare(url, n)
    router = default_router(policy=policy, areas=load_areas(), zone=SH)
    times: list[float] = []

    async def one(phone: str) -> None:
        t0 = time.perf_counter()
        await router.handle(engine, Inbound("sms", phone, text="1", provider_id="SM" + secrets.token_hex(16)),
                            ANSWER_AT)
        times.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in phones))
    elapsed = time.perf_counter() - t0
    stored, done = outcome(engine)
    engine.dispose()
    return dict(n=n, seconds=elapsed, p50=pct(times, 50), p99=pct(times, 99), stored=stored, done=done)


def _serve_twilio(port: int, ready) -> None:
    from bot.sandbox.twilio_api import FakeTwilio

    async def main():
        await FakeTwilio().start(port=port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def through_webhook(url: str, n: int) -> dict:
    from bot.runtime import Runtime
    from bot.sandbox.loopback import LoopbackServer, free_port
    from bot.sandbox.twilio_api import FakeTwilio
    from bot.settings import load_settings
    from bot.stack import Stack
    from bot.web import make_app
    from scheduler.clock import FixedClock

    engine, policy, phones = prepare(url, n)
    twilio = FakeTwilio()  # for its credentials and signing; it serves the replies from a process of its own
    tw_port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve_twilio, args=(tw_port, ready), daemon=True)
    server.start()
    ready.wait(30)
    port = free_port()
    settings = load_settings(
        database_url=url,
        public_url=f"http://127.0.0.1:{port}",
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_from_number=twilio.number,
        twilio_api_base_url=f"http://127.0.0.1:{tw_port}",
        sms_rate=1000,
    )
    clock = FixedClock(ANSWER_AT)
    rt = Runtime(settings, engine, clock)
    stack = Stack(rt)
    web = LoopbackServer(make_app(clock, {}, stack.routes()))
    await web.start(port=port)
    await stack.start()
    target = f"{settings.public_url}/twilio/sms"
    gate = asyncio.Semaphore(64)
    times: list[float] = []
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
        async def one(phone: str) -> None:
            params = twilio.inbound_params(phone, "1")
            params["SmsSid"] = params["MessageSid"]
            headers = {"X-Twilio-Signature": twilio.sign(target, params)}
            async with gate:
                t0 = time.perf_counter()
                resp = await client.post(target, data=params, headers=headers)
                times.append(time.perf_counter() - t0)
                statuses.append(resp.status_code)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(p) for p in phones))
        elapsed = time.perf_counter() - t0
    await stack.idle()
    await stack.stop()
    await web.stop()
    server.terminate()
    stored, done = outcome(engine)
    engine.dispose()
    assert statuses.count(200) == n, {s: statuses.count(s) for s in set(statuses)}
    return dict(n=n, seconds=elapsed, p50=pct(times, 50), p99=pct(times, 99), stored=stored, done=done)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=1297)
    ap.add_argument("--postgres")
    args = ap.parse_args()
    for path in ("router", "webhook"):
        with tempfile.TemporaryDirectory() as tmp:
            targets = [("SQLite", f"sqlite:///{tmp}/bench.db")]
            if args.postgres:
                targets.append(("PostgreSQL", None))
            for label, url in targets:
                run = through_router if path == "router" else through_webhook
                if url is None:
                    admin = make_engine(args.postgres)
                    with pg_schema(admin, "checkin_bench") as pg_url:
                        r = asyncio.run(run(pg_url, args.people))
                    admin.dispose()
                else:
                    r = asyncio.run(run(url, args.people))
                lost = (
                    "none lost"
                    if r["stored"] == r["done"] == r["n"]
                    else f"LOST: stored {r['stored']}, done {r['done']}"
                )
                print(
                    f"{label:10} {path:7}: {r['n']:,} answers in {r['seconds']:.2f} s = "
                    f"{r['n'] / r['seconds']:,.0f}/s; "
                    f"p50 {r['p50'] * 1000:.1f} ms, p99 {r['p99'] * 1000:.1f} ms; {lost}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
