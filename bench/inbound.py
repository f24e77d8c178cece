"""Inbound burst: 1,297 check-in answers at once, against a bare reference, through the router and the webhook.

    python bench/inbound.py [--people 1297] [--postgres URL] [--before REV] [--processes 1,2,4]

Everyone is prompted at 09:00; at 09:30 every person answers "1" at once. Each
measurement runs in a process of its own on a fresh database.

`bare`: the same database work per answer in plain SQLModel, one answer after
the other: store the message (one transaction); find the person by the phone's
blind index, close the check-in, mark the message handled, queue one reply (a
second transaction). The machine's speed varies from day to day; the other
rates are also printed as a fraction of this one, measured in the same run.

`router`: every answer handed over at once, as the channel adapters do: on
this tree through the inbox (bot/inbox.py: stored in groups, handled in its
worker thread), on a tree without one through `Router.handle` (asyncio.gather).
The rate is until the last answer is handled. p50 and p99: through the inbox,
each answer's time from handing it over to stored (when a webhook may answer
200); through `Router.handle`, each answer's own handling.

`webhook`: `checkin run --no-scheduler` in 1..N processes on one port (N > 1:
SO_REUSEPORT), the answers POSTed as Twilio would (form, signed with twilio's
RequestValidator algorithm) from this process (aiohttp), 64 requests in flight, after 20 answers
one by one to warm the service (a running service is warm at 09:30); the
Twilio stand-in, which receives the replies (at most 100 a second, a short
code's pace), in a process of its own. Rate and p50/p99 from sending a request
to its 200; then how long until every answer was handled and every reply sent.
With 64 in flight the latency is set by the rate (64 / rate on average), so
`webhook @400/s` also sends the answers open loop, one every 1/400 s whatever
the answers before them are doing, and times each from its planned sending: the
latency a burst arriving at 400 a second sees.

Nothing may be lost: every answer stored once and every check-in closed
(checked after each run); the webhook run also checks that no answer was handled
twice (one reply per answer).

`--before REV` measures REV's code too (a git worktree), in the same run, so
that before and after are side by side on the same machine on the same day.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if "--tree" in sys.argv:  # a measurement of another tree's code: that tree first on the path
    sys.path.insert(0, sys.argv[sys.argv.index("--tree") + 1])
else:
    sys.path.insert(0, str(ROOT))

SH = ZoneInfo("Asia/Shanghai")
PROMPT_AT = datetime(2027, 3, 1, 9, 0, tzinfo=SH).astimezone(UTC)
ANSWER_AT = PROMPT_AT + timedelta(minutes=30)
IN_FLIGHT = 64
WARM = 20  # webhook: answers sent one by one before the burst, not measured


def prepare(url: str, n: int):
    from sqlalchemy import select, update

    from bench.sweep import enrol
    from content.policy import load_policy
    from scheduler.sweep import SweepConfig, sweep
    from storage.db import migrate, session_scope
    from storage.models import Supervisee
    from tests.conftest import make_engine

    engine = make_engine(url)
    migrate(engine)
    enrol(engine, n, PROMPT_AT - timedelta(days=1))
    policy = load_policy()
    policy = policy.model_copy(update={"planning": policy.planning.model_copy(update={"people_per_sweep": n})})
    sweep(engine, PROMPT_AT, SweepConfig(policy, SH))
    from storage.models import Message

    with session_scope(engine) as s:  # the 09:00 prompts went out at 09:00: only the replies are left to send
        s.execute(update(Message).where(Message.direction == "out").values(status="sent"))
        phones = list(s.exec(select(Supervisee.phone).order_by(Supervisee.id)).scalars())
    return engine, policy, phones


def counts(engine) -> dict:
    from sqlalchemy import func, select

    from storage.db import session_scope
    from storage.models import Message, Obligation

    def n(*where, table=Message):
        return s.exec(select(func.count()).select_from(table).where(*where)).one()[0]

    with session_scope(engine) as s:
        return dict(
            stored=n(Message.direction == "in"),
            handled=n(Message.direction == "in", Message.status == "handled"),
            done=n(Obligation.kind == "checkin", Obligation.state == "done", table=Obligation),
            replies=n(Message.direction == "out", Message.dedupe_key.like("reply:%")),
            sent=n(Message.direction == "out", Message.dedupe_key.like("reply:%"), Message.status == "sent"),
        )


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def latencies(times: list[float]) -> dict:
    return dict(p50=pct(times, 50) * 1000, p99=pct(times, 99) * 1000)


# ---- the three measurements, each in a process of its own ------------------------------------------


def bare(url: str, n: int) -> dict:
    """Plain SQLModel, one answer after the other, two transactions each."""
    from sqlalchemy import update
    from sqlmodel import Session, select

    from storage.models import Message, Obligation, Supervisee
    from tests.conftest import KEYRING

    engine, _, phones = prepare(url, n)
    times = []
    t0 = time.perf_counter()
    for phone in phones:
        t1 = time.perf_counter()
        with Session(engine) as s:
            msg = Message(direction="in", channel="sms", address=phone, kind="text", body="1", status="received",
                          provider_id="SM" + secrets.token_hex(16), attempts=0, created_at=ANSWER_AT,
                          updated_at=ANSWER_AT)
            s.add(msg)
            s.commit()
            mid = msg.id
        with Session(engine) as s:
            person = s.exec(select(Supervisee).where(Supervisee.phone_index == KEYRING.blind(phone))).one()
            ob = s.exec(select(Obligation).where(Obligation.supervisee_id == person.id, Obligation.kind == "checkin",
                                                 Obligation.state == "prompted")).first()
            ob.state, ob.answered_at, ob.next_check_at = "done", ANSWER_AT, None
            s.add(ob)
            s.execute(update(Message).where(Message.id == mid).values(status="handled", supervisee_id=person.id))
            s.add(Message(direction="out", channel="sms", address=phone, kind="reply", body="Received.",
                          status="queued", attempts=0, next_attempt_at=ANSWER_AT, dedupe_key=f"reply:{mid}:0",
                          supervisee_id=person.id, created_at=ANSWER_AT, updated_at=ANSWER_AT))
            s.commit()
        times.append(time.perf_counter() - t1)
    elapsed = time.perf_counter() - t0
    return dict(n=n, seconds=elapsed, **latencies(times), **counts(engine))


async def router(url: str, n: int) -> dict:
    """Every answer handed over at once: to the inbox where there is one, else to Router.handle."""
    from content.areas import load_areas
    from handlers.contract import Inbound
    from handlers.router import default_router

    engine, policy, phones = prepare(url, n)
    route = default_router(policy=policy, areas=load_areas(), zone=SH)
    times: list[float] = []  # through the inbox: handing over to stored (the acknowledgement); else the handling
    answers = [Inbound("sms", p, text="1", provider_id="SM" + secrets.token_hex(16)) for p in phones]
    try:
        from bot.inbox import Inbox
    except ImportError:  # a tree from before the inbox
        Inbox = None
    t0 = time.perf_counter()
    batches = None
    if Inbox is not None:
        inbox = Inbox(engine, route, lambda: ANSWER_AT, lambda done: None)

        async def one(inbound) -> None:
            t1 = time.perf_counter()
            await inbox.submit(inbound)
            times.append(time.perf_counter() - t1)

        await asyncio.gather(*(one(a) for a in answers))
        await inbox.join()
        await inbox.stop()
        batches = inbox.batches
    else:
        async def one(inbound) -> None:
            t1 = time.perf_counter()
            await route.handle(engine, inbound, ANSWER_AT)
            times.append(time.perf_counter() - t1)

        await asyncio.gather(*(one(a) for a in answers))
    elapsed = time.perf_counter() - t0
    return dict(n=n, seconds=elapsed, batches=batches, **latencies(times), **counts(engine))


def _serve_twilio(port: int, ready) -> None:
    from bot.sandbox.twilio_api import FakeTwilio

    async def main():
        await FakeTwilio().start(port=port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


@contextmanager
def services(tree: str, url: str, processes: int, port: int, twilio, tw_port: int, logs: Path):
    """`checkin run --no-scheduler` from `tree`, `processes` of them on `port`; stopped on exit."""
    env = dict(os.environ, CHECKIN_DATABASE_URL=url, CHECKIN_PUBLIC_URL=f"http://127.0.0.1:{port}",
               CHECKIN_HTTP_PORT=str(port), CHECKIN_CLOCK=f"{ANSWER_AT.isoformat()}@1",
               TWILIO_ACCOUNT_SID=twilio.account_sid, TWILIO_AUTH_TOKEN=twilio.auth_token,
               TWILIO_FROM_NUMBER=twilio.number, TWILIO_API_BASE_URL=f"http://127.0.0.1:{tw_port}",
               CHECKIN_SMS_RATE="100", PYTHONPATH=tree)
    if processes > 1:
        env["CHECKIN_HTTP_REUSE_PORT"] = "1"
    for name in ("TELEGRAM_BOT_TOKEN", "CHECKIN_TELEGRAM_BOT_TOKEN"):
        env.pop(name, None)
    procs = []
    try:
        for i in range(processes):
            log = logs / f"service{i}.log"
            procs.append((subprocess.Popen(
                [sys.executable, "-c", "from bot.cli import main; main()", "run", "--no-scheduler"],
                cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w")), log))
        deadline = time.monotonic() + 120
        while not all("checkin running" in log.read_text() for _, log in procs):
            if time.monotonic() > deadline or any(p.poll() is not None for p, _ in procs):
                raise RuntimeError("a service did not start: " + " | ".join(log.read_text()[-800:] for _, log in procs))
            time.sleep(0.1)
        while True:  # the log line comes when the channels start; the port may open a moment later
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield
    finally:
        for p, _ in procs:
            p.send_signal(signal.SIGTERM)
        for p, _ in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


async def webhook(url: str, n: int, tree: str, processes: int, rate: float | None = None) -> dict:
    import aiohttp

    from bot.sandbox.loopback import free_port
    from bot.sandbox.twilio_api import FakeTwilio

    engine, _, phones = prepare(url, n + WARM)
    twilio = FakeTwilio()  # for its credentials and signing; it serves the replies from a process of its own
    tw_port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve_twilio, args=(tw_port, ready), daemon=True)
    server.start()
    ready.wait(30)
    port = free_port()
    target = f"http://127.0.0.1:{port}/twilio/sms"
    requests = []
    for phone in phones:
        params = twilio.inbound_params(phone, "1")
        params["SmsSid"] = params["MessageSid"]
        requests.append((params, {"X-Twilio-Signature": twilio.sign(target, params)}))
    gate = asyncio.Semaphore(IN_FLIGHT)
    times: list[float] = []
    statuses: list[int] = []
    with tempfile.TemporaryDirectory() as logs, services(tree, url, processes, port, twilio, tw_port, Path(logs)):
        # aiohttp as the load: httpx's pool tops out near 200 requests/s on this machine with 64 in flight,
        # with seconds-long tails even against an empty handler; aiohttp sends thousands a second.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT if rate is None else 512)) \
                as client:
            async def one(params, headers, at: float | None = None) -> None:
                if at is not None:  # open loop: sent at its time, timed from then (waiting for a connection counts)
                    await asyncio.sleep(max(0.0, at - time.perf_counter()))
                    t1 = at
                else:
                    await gate.acquire()
                    t1 = time.perf_counter()
                try:
                    async with client.post(target, data=params, headers=headers) as resp:
                        await resp.read()
                finally:
                    if at is None:
                        gate.release()
                times.append(time.perf_counter() - t1)
                statuses.append(resp.status)

            # A running service has handled messages before the 09:30 burst: warm it with a few, unmeasured.
            for r in requests[:WARM]:
                await one(*r)
            while counts(engine)["handled"] < WARM:
                await asyncio.sleep(0.05)
            times.clear()
            t0 = time.perf_counter()
            if rate is None:
                await asyncio.gather(*(one(*r) for r in requests[WARM:]))
            else:
                await asyncio.gather(*(one(*r, t0 + i / rate) for i, r in enumerate(requests[WARM:])))
            elapsed = time.perf_counter() - t0
        handled_s = replied_s = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            c = counts(engine)
            if handled_s is None and c["handled"] >= n + WARM:
                handled_s = time.perf_counter() - t0
            if c["sent"] >= n + WARM:
                replied_s = time.perf_counter() - t0
                break
            await asyncio.sleep(0.05)
    server.terminate()
    assert statuses.count(200) == n + WARM, {s: statuses.count(s) for s in set(statuses)}
    c = {k: v - WARM for k, v in counts(engine).items()}  # the burst's own
    return dict(n=n, seconds=elapsed, handled_s=handled_s, replied_s=replied_s, **latencies(times), **c)


# ---- the run: each measurement in a child process, for each tree and database ----------------------


def measure(kind: str, tree: str, url: str, n: int, processes: int = 1, rate: float | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", kind, "--tree", tree, "--db", url,
           "--people", str(n), "--processes", str(processes)] + (["--rate", str(rate)] if rate else [])
    out = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=tree))
    if out.returncode != 0:
        raise RuntimeError(f"{kind} on {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextmanager
def database(tmp: str, postgres: str | None, name: str):
    if postgres is None:
        yield f"sqlite:///{tmp}/{name}.db"
        return
    from tests.conftest import make_engine, pg_schema

    admin = make_engine(postgres)
    try:
        with pg_schema(admin, "checkin_bench") as url:
            yield url
    finally:
        admin.dispose()


@contextmanager
def worktree(rev: str):
    path = tempfile.mkdtemp(prefix="checkin-before-")
    subprocess.run(["git", "worktree", "add", "--detach", "-q", path, rev], cwd=ROOT, check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", path], cwd=ROOT, check=False)


def line(label: str, tree: str, kind: str, r: dict, ref: float | None) -> str:
    rate = r["n"] / r["seconds"]
    ok = r["stored"] == r["done"] == r["handled"] == r["n"] and r["replies"] == r["n"]
    lost = "none lost, one reply each" if ok else (
        f"LOST OR DOUBLED: stored {r['stored']}, handled {r['handled']}, done {r['done']}, replies {r['replies']}")
    extra = ""
    if r.get("handled_s") is not None:
        extra = f"; all handled at {r['handled_s']:.2f} s, all replies sent at {r['replied_s'] or float('nan'):.2f} s"
    if r.get("batches"):
        extra += f"; {r['batches']} handling transactions"
    frac = f" = {rate / ref:.2f} of bare" if ref else ""
    return (f"{label:10} {tree:6} {kind:19}: {r['n']:,} in {r['seconds']:.2f} s = {rate:,.0f}/s{frac}; "
            f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms{extra}; {lost}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=1297)
    ap.add_argument("--postgres")
    ap.add_argument("--before", help="a git revision to measure too, side by side")
    ap.add_argument("--processes", default="1", help="webhook processes to try, e.g. 1,2,4 (more than 1: PostgreSQL)")
    ap.add_argument("--only", default="bare,router,webhook")
    ap.add_argument("--rate", type=float, help="webhook: also an open-loop run at this rate (400 a second; 0: none)")
    ap.add_argument("--measure")
    ap.add_argument("--tree")
    ap.add_argument("--db")
    args = ap.parse_args()
    if args.measure:  # a child: one measurement, its figures as one JSON line
        if args.measure == "bare":
            r = bare(args.db, args.people)
        elif args.measure == "router":
            r = asyncio.run(router(args.db, args.people))
        else:
            r = asyncio.run(webhook(args.db, args.people, args.tree, int(args.processes), args.rate))
        print(json.dumps(r))
        return
    only = args.only.split(",")
    processes = [int(p) for p in args.processes.split(",")]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        trees = [("after", str(ROOT))]
        if args.before:
            trees.insert(0, ("before", stack.enter_context(worktree(args.before))))
        targets = [("SQLite", None)] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
        for label, pg in targets:
            ref = None
            if "bare" in only:
                with database(tmp, pg, "bare") as url:
                    r = measure("bare", str(ROOT), url, args.people)
                ref = r["n"] / r["seconds"]
                print(line(label, "", "bare", r, None), flush=True)
            open_rate = 400.0 if args.rate is None else args.rate
            for kind, rate in (("router", None), ("webhook", None), ("webhook", open_rate)):
                if kind not in only or rate == 0:
                    continue
                for name, tree in trees:
                    for p in (processes if kind == "webhook" and name == "after" else [1]):
                        if p > 1 and pg is None:
                            continue  # one SQLite file has one writer: more processes only wait for it
                        with database(tmp, pg, f"{kind}{name}{p}{rate or ''}") as url:
                            r = measure(kind, tree, url, args.people, p, rate)
                        title = kind + (f" x{p}" if p > 1 else "") + (f" @{rate:.0f}/s" if rate else "")
                        print(line(label, name, title, r, ref), flush=True)

if __name__ == "__main__":
    main()
