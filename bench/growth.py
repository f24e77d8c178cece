"""The cost of growth: sweep, drain, inbound and memory at 1,297 to 700,000 enrolled.

    python bench/growth.py [--sizes 1297,10000,100000] [--postgres URL] [--pg-sizes 1297,10000,100000,700000]

For each size, in a process of its own on a fresh database: the roster and
three days of planned check-ins are written set-based (as bench/national.py;
not measured; half the people on Telegram, half on SMS, all under encryption at
rest). Then, as the service would meet them on a Monday morning:

- `idle sweep`: a sweep with nothing due (the cost of looking);
- `1% due sweep`: 1% of the people due at once, and at least 1,000 (that many
  prompts queued);
- `drain`: those prompts sent through a channel that accepts at once (our
  own cost per message: claiming, the adapter interface, recording);
- `inbound`: those people answering "1" at once, through the inbox (stored in
  groups, handled in its worker), until every answer is handled;
- `peak RSS`: the process's peak resident set after all of it (the roster
  itself was written by another process).

The question is how each cost grows with the roster: the sweeps walk indexes,
the drain and the inbound work per message, memory should not follow the roster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2027, 3, 1, 10, 0, tzinfo=SH).astimezone(UTC)
DUE = NOW + timedelta(minutes=1)


def setup(url: str, n: int) -> None:
    """The roster and its check-ins, written in bulk (another process: its memory is not counted)."""
    from sqlalchemy import func, select, text, update

    from storage import queries
    from storage.db import migrate, session_scope
    from storage.models import Obligation, Supervisee
    from tests.conftest import KEYRING, make_engine

    engine = make_engine(url)
    migrate(engine)
    with session_scope(engine) as s:
        officer = queries.add_officer(s, name="o", township="t", role="assistant", now=NOW).id
    horizon = NOW + timedelta(days=3)
    levels = ["strict", "ordinary", "ordinary", "lenient"]
    days = {"strict": 3, "ordinary": 2, "lenient": 1}  # three days: 9 check-ins per 4 people
    for start in range(1, n + 1, 20_000):
        ids = range(start, min(n, start + 19_999) + 1)
        people = [dict(case_number=f"N{i:08d}", name=f"p{i}", phone=f"+86139{i:08d}",
                       phone_index=KEYRING.blind(f"+86139{i:08d}"), language="en" if i % 10 == 0 else "zh-CN",
                       category="probation", level=levels[i % 4], township=f"t{i % 300}", officer_id=officer,
                       supervision_start=date(2026, 1, 1), supervision_end=date(2030, 1, 1), status="active",
                       preferred_channel="telegram" if i % 2 == 0 else "sms", planned_until=horizon,
                       telegram_chat_id=i + 1_000_000 if i % 2 == 0 else None,
                       created_at=NOW, updated_at=NOW) for i in ids]
        with engine.begin() as c:
            c.execute(Supervisee.__table__.insert(), people)
            first = c.execute(select(func.min(Supervisee.id)).where(
                Supervisee.case_number == f"N{ids[0]:08d}")).scalar_one()
            checkins = []
            for offset, i in enumerate(ids):
                for k in range(1, days[levels[i % 4]] + 1):
                    due = NOW + timedelta(days=k, hours=-1)
                    checkins.append(dict(supervisee_id=first + offset, kind="checkin", period_key=f"d{k}",
                                         due_at=due, window_end_at=due + timedelta(hours=4),
                                         remind_at=due + timedelta(hours=2), state="planned", next_check_at=due,
                                         created_at=NOW, location_required=False))
            c.execute(Obligation.__table__.insert(), checkins)
    # 1% of the people due at DUE: their first check-in moved to now.
    with engine.begin() as c:
        ids = c.execute(select(Obligation.id).where(Obligation.period_key == "d1")
                        .order_by(Obligation.id).limit(due_count(n))).scalars().all()
        for i in range(0, len(ids), 5000):
            c.execute(update(Obligation).where(Obligation.id.in_(ids[i:i + 5000])).values(
                due_at=DUE, next_check_at=DUE, remind_at=DUE + timedelta(hours=2),
                window_end_at=DUE + timedelta(hours=4)))
        c.execute(text("ANALYZE"))
    engine.dispose()


def due_count(n: int) -> int:
    """1% of the roster due at once, and at least 1,000 (so that small rosters still measure a burst)."""
    return min(n, max(1000, n // 100))


class NullChannel:
    """Accepts everything at once: what is left is our own cost."""

    rate = 1_000_000.0

    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, message):
        from scheduler.channels import SendResult

        return SendResult(provider_id=f"null-{message.id}")


async def measure(url: str, n: int) -> dict:
    """The service's work at this roster size; this process's peak memory at the end."""
    from sqlalchemy import func, select

    from bot.inbox import Inbox
    from bot.serve import fewer_malloc_arenas

    fewer_malloc_arenas()  # as the service does
    from content.areas import load_areas
    from content.policy import load_policy
    from handlers.contract import Inbound
    from handlers.router import default_router
    from scheduler.drain import Outbox
    from scheduler.sweep import SweepConfig, sweep
    from storage.crypto import Keyring
    from storage.db import make_engine, session_scope
    from storage.models import Message, Obligation, Supervisee

    engine = make_engine(url, Keyring.parse(os.environ["CHECKIN_DATA_KEYS"], os.environ["CHECKIN_INDEX_KEY"]))
    policy = load_policy()
    cfg = SweepConfig(policy, SH)
    out: dict = {"n": n}
    idle = []
    for _ in range(3):  # the first sweep of a process compiles its statements: the median of three
        t0 = time.perf_counter()
        sweep(engine, NOW, cfg)
        idle.append((time.perf_counter() - t0) * 1000)
    out["idle_ms"] = sorted(idle)[1]
    t0 = time.perf_counter()
    rep = sweep(engine, DUE, cfg)
    out["due_ms"], out["prompts"] = (time.perf_counter() - t0) * 1000, rep.prompted
    box = Outbox(engine, {"sms": NullChannel("sms"), "telegram": NullChannel("telegram")})
    t0 = time.perf_counter()
    drained = await box.drain(DUE)
    out["drain_s"], out["sent"] = time.perf_counter() - t0, drained.sent
    with session_scope(engine) as s:  # the people prompted, and where each answers from
        due = s.exec(select(Supervisee.phone, Supervisee.telegram_chat_id, Supervisee.preferred_channel)
                     .join(Obligation, Obligation.supervisee_id == Supervisee.id)
                     .where(Obligation.state == "prompted")).all()
    answers = [Inbound("telegram", str(chat), text="1", provider_id=f"u{secrets.token_hex(8)}") if pref == "telegram"
               else Inbound("sms", phone, text="1", provider_id="SM" + secrets.token_hex(16))
               for phone, chat, pref in due]
    router = default_router(policy=policy, areas=load_areas(geometry=False), zone=SH)
    inbox = Inbox(engine, router, lambda: DUE + timedelta(minutes=5), lambda handled: None)
    t0 = time.perf_counter()
    await asyncio.gather(*(inbox.submit(a) for a in answers))
    await inbox.join()
    out["inbound_s"] = time.perf_counter() - t0
    await inbox.stop()
    with session_scope(engine) as s:
        # Done, or (a strict check-in that also wants the location) answered and waiting for the point.
        out["answered"] = s.exec(select(func.count()).select_from(Obligation).where(
            (Obligation.state == "done") | Obligation.partial_at.is_not(None))).one()[0]
        out["handled"] = s.exec(select(func.count()).select_from(Message).where(
            Message.direction == "in", Message.status == "handled")).one()[0]
    out["answers"] = len(answers)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine.dispose()
    return out


def run(url: str, n: int) -> dict:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--setup", "--db", url, "--people", str(n)],
                   cwd=ROOT, check=True)
    setup_s = time.perf_counter() - t0
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", "--db", url,
                          "--people", str(n)], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "setup_s": setup_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1297,10000,100000")
    ap.add_argument("--postgres")
    ap.add_argument("--pg-sizes", default="1297,10000,100000,700000")
    ap.add_argument("--setup", action="store_true")
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--db")
    ap.add_argument("--people", type=int)
    args = ap.parse_args()
    if args.setup:
        setup(args.db, args.people)
        return
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.db, args.people))))
        return
    from storage.crypto import new_key

    os.environ.setdefault("CHECKIN_DATA_KEYS", new_key())  # one set of keys for setup and measure
    os.environ.setdefault("CHECKIN_INDEX_KEY", new_key())
    from tests.conftest import make_engine, pg_schema

    print("| db | people | setup | idle sweep | due sweep (1%, at least 1,000) | prompts | drain "
          "| inbound (all handled) | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|")
    targets = [("SQLite", n) for n in map(int, args.sizes.split(",") if args.sizes else [])]
    if args.postgres:
        targets += [("PostgreSQL", n) for n in map(int, args.pg_sizes.split(","))]
    for label, n in targets:
        if label == "SQLite":
            with tempfile.TemporaryDirectory() as tmp:
                r = run(f"sqlite:///{tmp}/growth.db", n)
        else:
            admin = make_engine(args.postgres)
            with pg_schema(admin, "checkin_bench") as url:
                r = run(url, n)
            admin.dispose()
        ok = r["answered"] == r["handled"] == r["answers"] == r["prompts"] == r["sent"]
        if not ok:
            print(f"LOST at {n}: {r}", file=sys.stderr)
        print(f"| {label} | {n:,} | {r['setup_s']:.0f} s | {r['idle_ms']:.1f} ms | {r['due_ms']:.0f} ms | "
              f"{r['prompts']:,} | {r['drain_s']:.2f} s = {r['sent'] / r['drain_s']:,.0f}/s | "
              f"{r['inbound_s']:.2f} s = {r['answers'] / r['inbound_s']:,.0f}/s{'' if ok else ' (LOST)'} | "
              f"{r['peak_mb']:.0f} MB |", flush=True)


if __name__ == "__main__":
    main()
