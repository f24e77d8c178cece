"""APScheduler as the clock: one job that sweeps and drains at the injected clock's `now`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from scheduler.clock import Clock, FastClock
from scheduler.drain import DrainReport, Outbox
from scheduler.sweep import SweepConfig, SweepReport, sweep

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    """One tick: the sweep (None when this process does not sweep) and the drain."""

    at: datetime
    sweep: SweepReport | None
    drain: DrainReport


class Ticker:
    """Runs `sweep(now)` and `drain(now)`; the database holds all state, so any tick may be skipped."""

    def __init__(self, engine: Engine, outbox: Outbox, cfg: SweepConfig, clock: Clock, sweeps: bool = True) -> None:
        self.engine, self.outbox, self.cfg, self.clock, self.sweeps = engine, outbox, cfg, clock, sweeps
        self.ticks = 0

    async def tick(self, now: datetime | None = None) -> TickReport:
        """One sweep (in a worker thread: the database calls block) and one drain."""
        now = now or self.clock.now()
        rep = await asyncio.to_thread(sweep, self.engine, now, self.cfg) if self.sweeps else None
        drained = await self.outbox.drain(now)
        self.ticks += 1
        return TickReport(now, rep, drained)


def tick_interval(clock: Clock) -> float:
    """Real seconds between clock jobs: one simulated minute."""
    return 60.0 / clock.speed if isinstance(clock, FastClock) else 60.0


def make_scheduler(job, clock: Clock, *, interval: float | None = None) -> AsyncIOScheduler:
    """An AsyncIOScheduler with the one clock job (every `interval` real seconds, by default one simulated
    minute): coalescing, never two at once."""
    if isinstance(clock, FastClock):
        # A tick that overruns a simulated minute makes APScheduler skip the next ones, by design
        # (coalesce, one instance): the following tick catches up. Do not log each skip.
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        job, IntervalTrigger(seconds=interval or tick_interval(clock)), id="clock", name="sweep and drain",
        coalesce=True, max_instances=1, misfire_grace_time=None, next_run_time=datetime.now(UTC),
    )
    return scheduler
