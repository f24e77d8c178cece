"""Drain the outbox: claim due rows, send under each channel's rate limit, record results."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiolimiter import AsyncLimiter
from sqlalchemy.engine import Engine
from sqlmodel import Session

from handlers import greetings
from scheduler import metrics
from scheduler.channels import Channel, PermanentSendError, SendError, SendResult, TransientSendError
from storage import outbox
from storage.db import session_scope

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
MAX_ATTEMPTS = 10
RECORD_EVERY = 50  # outcomes recorded per transaction


def smooth_limiter(rate: float) -> AsyncLimiter:
    """`rate` per second, with a burst of at most a fiftieth of a second's worth (and at least one message).

    A one-second bucket would let a full second's worth go at once on top of
    the steady rate (twice the limit in the first second); providers count
    per second and answer that with 429.
    """
    burst = max(2.0, rate / 50)
    return AsyncLimiter(burst, burst / rate)


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """Delay before the next try: exponential from 30 s, capped at 1 h; a provider's retry_after wins when longer."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, attempts - 1)))
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=min(retry_after, BACKOFF_CAP.total_seconds())))
    return delay


@dataclass
class DrainReport:
    """What one drain did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    by_channel: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: DrainReport) -> None:
        self.sent, self.retried, self.failed = (self.sent + other.sent, self.retried + other.retried,
                                                self.failed + other.failed)
        for name, n in other.by_channel.items():
            self.by_channel[name] += n

    @property
    def claimed(self) -> int:
        return self.sent + self.retried + self.failed


class Outbox:
    """Sends queued rows through channel adapters, each under its own rate limiter."""

    def __init__(self, engine: Engine, channels: Mapping[str, Channel], batch: int = 500,
                 on_failure: Callable[[Session, outbox.Outgoing, SendError, datetime], None] | None = None,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC),
                 lease: timedelta = outbox.CLAIM_LEASE) -> None:
        self.lease = lease
        self.engine = engine
        self.wall = wall  # real time, for claim leases (the drain's `now` may be simulated)
        self.on_failure = on_failure
        self.channels = dict(channels)
        self.batch = batch
        # Limiters live as long as the Outbox so the rate holds across drains.
        self._limiters = {name: smooth_limiter(ch.rate) for name, ch in self.channels.items()}

    async def drain(self, now: datetime, recipient: tuple[str, int] | None = None,
                    max_batches: int | None = None) -> DrainReport:
        """Send every row due at `now` until none is left (optionally only to `recipient`: (kind, id))."""
        report = DrainReport()
        batches = 0
        # Database work runs in a worker thread, and when a batch was full the next is claimed while it is being
        # sent: the event loop keeps sending (and taking inbound messages) instead of waiting on queries. A batch
        # that was not full was all there was: no claim beside it (during a burst of answers each handled batch
        # kicks a drain, and the claims that found nothing kept PostgreSQL busy beside the handling).
        rows = await asyncio.to_thread(self._claim, now, recipient)
        while rows:
            batches += 1
            more = max_batches is None or batches < max_batches
            upcoming = (asyncio.create_task(asyncio.to_thread(self._claim, now, recipient))
                        if more and len(rows) == self.batch else None)
            by_channel: dict[str, list[outbox.Outgoing]] = defaultdict(list)
            for row in rows:
                by_channel[row.channel].append(row)
            await asyncio.gather(
                *(self._send_all(name, items, now, report) for name, items in by_channel.items())
            )
            if not more:
                break
            rows = await upcoming if upcoming is not None else []
            if not rows:  # what recording this batch queued (an alert after a failure), or what came meanwhile
                rows = await asyncio.to_thread(self._claim, now, recipient)
        return report

    def _claim(self, now: datetime, recipient: tuple[str, int] | None) -> list[outbox.Outgoing]:
        with session_scope(self.engine) as session:
            rows = outbox.claim(session, now, list(self.channels), self.batch, recipient, lease_now=self.wall(),
                                lease=self.lease)
            # Bulk messages (greetings, announcements) are queued without their text and address, which
            # are written here, in the claim's transaction, before they go.
            return greetings.render_claimed(session, rows, now)

    def _record_group(self, outcomes: list, now: datetime) -> DrainReport:
        """Record outcomes (in a worker thread); the counts come back to be added on the event loop."""
        counts = DrainReport()
        with session_scope(self.engine) as session:
            self._record_many(session, outcomes, now, counts)
        return counts

    async def _send_all(self, name: str, rows: list[outbox.Outgoing], now: datetime, report: DrainReport) -> None:
        """Send one channel's rows: in order for each address, several addresses at once, under the limiter.

        Outcomes are recorded in groups of RECORD_EVERY (and at the end): a
        crash between a send and its record re-sends at most the rows in flight
        (the channel's concurrency plus one unrecorded group), never more.
        """
        channel, limiter = self.channels[name], self._limiters[name]
        by_address: dict[str, list[outbox.Outgoing]] = defaultdict(list)
        for row in rows:
            by_address[row.address].append(row)
        gate = asyncio.Semaphore(max(1, int(getattr(channel, "concurrency", 1))))
        done: list[tuple[outbox.Outgoing, SendResult | Exception]] = []

        async def flush() -> None:
            if done:
                batch = done[:]
                done.clear()
                report.add(await asyncio.to_thread(self._record_group, batch, now))

        async def one_address(items: list[outbox.Outgoing]) -> None:
            async with gate:
                for row in items:
                    await limiter.acquire()
                    done.append((row, await self._send_one(channel, row)))
                    if len(done) >= RECORD_EVERY:
                        await flush()

        await asyncio.gather(*(one_address(items) for items in by_address.values()))
        await flush()

    @staticmethod
    async def _send_one(channel: Channel, row: outbox.Outgoing) -> SendResult | Exception:
        try:
            return await channel.send(row)
        except (TransientSendError, PermanentSendError) as exc:
            return exc
        except Exception as exc:  # an adapter bug must not lose the row: retry later
            log.exception("channel %s raised on message %s", channel.name, row.id)
            return TransientSendError(f"{type(exc).__name__}: {exc}")

    def _record_many(self, session, outcomes: list, now: datetime, report: DrainReport) -> None:
        sent = [(row.id, out.provider_id) for row, out in outcomes if isinstance(out, SendResult)]
        outbox.record_sent_many(session, sent, now)
        for row, out in outcomes:
            if isinstance(out, SendResult):
                report.sent += 1
                report.by_channel[row.channel] += 1
                metrics.SENDS.labels(row.channel).inc()
            else:
                self._record(session, row, out, now, report)

    def _record(self, session, row: outbox.Outgoing, outcome: SendError, now: datetime, report: DrainReport) -> None:
        """A failed send: given up (permanent, or out of attempts) or back in the queue with backoff."""
        if isinstance(outcome, PermanentSendError) or row.attempts >= MAX_ATTEMPTS:
            outbox.record_failed(session, row.id, outcome.code, outcome.detail, now)
            report.failed += 1
            metrics.failed_send(row.channel, "failed", outcome.code)
            if self.on_failure is not None:
                self.on_failure(session, row, outcome, now)
            log.warning("message %s failed on %s: code=%s", row.id, row.channel, outcome.code)
        else:
            retry_at = now + backoff(row.attempts, outcome.retry_after)
            outbox.record_retry(session, row.id, outcome.code, outcome.detail, retry_at, now)
            report.retried += 1
            metrics.failed_send(row.channel, "retry", outcome.code)
            log.info("message %s retry at %s (attempt %s)", row.id, retry_at.isoformat(), row.attempts)

