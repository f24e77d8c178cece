"""Sweep cost at 1,000 / 10,000 / 100,000 enrolled with 1% due, against one APScheduler job per person.

    python bench/sweep.py [--sizes 1000,10000,100000] [--postgres URL]

For each size: enrol that many people, plan their obligations (planning
throughput), then make 1% of the planned check-ins due and time one sweep
(prompts for 1% of people), and one sweep with nothing due. The naive
baseline registers one APScheduler interval job per person in a memory job
store, the way a per-person scheduler would, and reports its start-up time and
memory. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # noqa: E402
from apscheduler.triggers.cron import CronTrigger  # noqa: E402
from sqlalchemy import func, insert, select, text, update  # noqa: E402

from content.policy import load_policy  # noqa: E402
from scheduler.sweep import SweepConfig, sweep  # noqa: E402
from storage import queries  # noqa: E402
from storage.db import migrate, session_scope  # noqa: E402
from storage.models import Obligation, Supervisee  # noqa: E402
from tests.conftest import KEYRING, make_engine, pg_schema  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
LEVELS = ("strict", "ordinary", "ordinary", "lenient")


def enrol(engine, n: int, now: datetime) -> None:
    with session_scope(engine) as s:
        officer = queries.add_officer(s, name="o", township="t", role="assistant", now=now).id
        rows = [dict(case_number=f"B{i:07d}", name=f"p{i}", phone=f"+86139{i:08d}", language="zh-CN",
                     category="probation", level=LEVELS[i % 4], township="t", officer_id=officer,
                     supervision_start=date(2026, 1, 1), supervision_end=date(2030, 1, 1), status="active",
                     preferred_channel="sms", created_at=now, updated_at=now,
                     phone_index=KEYRING.blind(f"+86139{i:08d}"))  # a bulk insert runs no mapper events
                for i in range(n)]
        for i in range(0, n, 5000):
            s.execute(insert(Supervisee), rows[i:i + 5000])


def run_size(url: str, n: int) -> dict:
    engine = make_engine(url)
    migrate(engine)
    policy = load_policy()
    policy = policy.model_copy(update={"planning": policy.planning.model_copy(update={"people_per_sweep": 5000})})
    cfg = SweepConfig(policy, SH)
    start = datetime(2027, 3, 1, 9, 30, tzinfo=SH).astimezone(UTC)
    enrol(engine, n, start)
    t0 = time.perf_counter()
    sweeps = 0
    while True:
        rep = sweep(engine, start, cfg)
        sweeps += 1
        if rep.planned_people == 0:
            break
    plan_s = time.perf_counter() - t0
    with session_scope(engine) as s:
        planned = s.exec(select(func.count()).select_from(Obligation)).one()[0]
    # Nothing new due at 10:00 (the 09:00 prompts went out while planning): an idle sweep.
    idle_at = start + timedelta(minutes=30)
    t0 = time.perf_counter()
    sweep(engine, idle_at, cfg)
    idle_ms = (time.perf_counter() - t0) * 1000
    # 1% of people due at 10:01, 10:02, ...: pull that many planned check-ins forward each minute.
    # The first four sweeps are timed (the first pays for compiling the prompt path's statements, once
    # per process; the figure is the median of the other three); the last runs under tracemalloc.
    due_ms, first_ms, peak_mb, prompted = 0.0, 0.0, 0.0, 0
    timings = []
    for minute, measure in ((1, "time"), (2, "time"), (3, "time"), (4, "time"), (5, "memory")):
        due_at = idle_at + timedelta(minutes=minute)
        with session_scope(engine) as s:
            ids = s.exec(select(Obligation.id).where(Obligation.kind == "checkin", Obligation.state == "planned")
                         .order_by(Obligation.id).limit(max(1, n // 100))).scalars().all()
            s.execute(update(Obligation).where(Obligation.id.in_(ids))
                      .values(due_at=due_at, next_check_at=due_at, remind_at=due_at + timedelta(hours=2),
                              window_end_at=due_at + timedelta(hours=4)))
        if engine.dialect.name == "postgresql":
            with engine.begin() as c:
                c.execute(text("ANALYZE"))
        if measure == "time":
            t0 = time.perf_counter()
            prompted = sweep(engine, due_at, cfg).prompted
            timings.append((time.perf_counter() - t0) * 1000)
            first_ms, due_ms = timings[0], sorted(timings[1:])[len(timings[1:]) // 2] if len(timings) > 1 else 0
        else:
            tracemalloc.start()
            sweep(engine, due_at, cfg)
            peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    engine.dispose()
    return dict(n=n, planning_s=plan_s, sweeps=sweeps, planned=planned, idle_ms=idle_ms, due_ms=due_ms,
                first_ms=first_ms,
                prompted=prompted, sweep_peak_mb=peak_mb)


def remind(person_id: int) -> None:
    """What a per-person job would call."""


def naive(n: int) -> dict:
    """One APScheduler job per person (memory job store, scheduler started): registration time, then memory."""

    async def register(trace: bool) -> float:
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        sched = AsyncIOScheduler(timezone=SH)
        sched.start(paused=True)
        for i in range(n):
            # Staggered times: with one shared time (everyone at 09:00) the memory job store
            # searches linearly among equal times on every insert, so this is the baseline's best case.
            trigger = CronTrigger(hour=8 + i % 12, minute=(i // 12) % 60, second=(i // 720) % 60,
                                  day_of_week="mon,thu", timezone=SH)
            sched.add_job(remind, trigger, id=f"p{i}", args=[i])
        result = time.perf_counter() - t0
        if trace:
            result = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        sched.shutdown(wait=False)
        return result

    return dict(naive_s=asyncio.run(register(False)), naive_mb=asyncio.run(register(True)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--postgres")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print(
        f"{'db':10s} {'people':>8s} {'plan s':>7s} {'obligations':>11s} {'idle ms':>8s} {'first':>6s} "
        f"{'1% due ms':>9s} "
        f"{'prompts':>7s} {'sweep MB':>8s} | {'naive s':>7s} {'naive MB':>8s} | time x  mem x"
    )
    for n in sizes:
        base = naive(n)
        results = [("sqlite", run_size(f"sqlite:///{tempfile.mkdtemp()}/b.db", n))]
        if args.postgres:
            admin = make_engine(args.postgres)
            with pg_schema(admin, "bench") as url:
                results.append(("postgresql", run_size(url, n)))
            admin.dispose()
        for name, r in results:
            print(f"{name:10s} {n:8d} {r['planning_s']:7.1f} {r['planned']:11d} {r['idle_ms']:8.1f} "
                  f"{r['first_ms']:6.0f} {r['due_ms']:9.1f} {r['prompted']:7d} {r['sweep_peak_mb']:8.1f} | "
                  f"{base['naive_s']:7.2f} "
                  f"{base['naive_mb']:8.1f} | {base['naive_s'] * 1000 / r['due_ms']:6.1f} "
                  f"{base['naive_mb'] / max(r['sweep_peak_mb'], 0.01):6.1f}")


if __name__ == "__main__":
    main()
