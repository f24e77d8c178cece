"""Inbound off the event loop: stored at once in groups by one worker thread, handled by another.

The channels' web handlers and update handlers run on the service's event loop,
beside the clock job and the sends. Database work there would stall all of them
(one slow transaction, and every request, send and tick waits), so the loop
only hands each message to the inbox and awaits its row id:

1. *Store first* (thread `checkin-store`): every message waiting is stored in
   one transaction, one multi-row INSERT (`Router.store_many`); each caller
   gets its row's id and the webhook answers 200. From here the message cannot
   be lost: `Router.recover` handles what a dead process left unhandled.
2. *Handle* (thread `checkin-handle`): stored messages are handled in batches
   of one transaction (`Router.handle_batch`), each sized to take about
   BATCH_SECONDS at the pace measured so far. Handlers are coroutines: this
   thread runs them on an event loop of its own. While a burst arrives
   (messages closer together than QUIET_SECONDS) handling does one batch each
   DEFER_SECONDS: a process has one interpreter lock (and SQLite one writer),
   and during a burst they go to acknowledging; the backlog is handled as the
   burst thins. A burst so long that a stored message has waited
   STARVE_SECONDS is handled without waiting (handling never starves).
3. *Notify*: after each batch the service's loop is told (`on_handled`), which
   drains the outbox at once.

A slow handler delays only the messages behind it in the handling thread: the
loop, the clock job, the sends and (on PostgreSQL) the storing go on. SQLite
has one writer, so there an open handling transaction also holds up other
writes until it ends; the loop still runs. One inbox per process; PostgreSQL
scales by running several processes behind one port (`checkin run --no-scheduler`
with CHECKIN_HTTP_REUSE_PORT), deduplicated by the provider's message id.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime

from sqlalchemy.engine import Engine

from handlers.contract import Inbound
from handlers.router import Handled, Router, cleaned
from scheduler.metrics import INBOUND
from storage.db import session_scope

log = logging.getLogger(__name__)

STORE_AT_ONCE = 256  # messages stored in one transaction at most
BATCH_SECONDS = 0.03  # a handling batch is sized to take about this long
BATCH_MESSAGES = 64  # and holds at most this many messages
QUIET_SECONDS = 0.02  # handling waits while messages arrive closer together than this ...
DEFER_SECONDS = 0.5  # ... but one batch at least this often
STARVE_SECONDS = 5.0  # ... and no waiting at all once a stored message has waited this long
_STOP = object()


class Inbox:
    """Store-first and handling of inbound messages in two worker threads; `submit` from the event loop."""

    def __init__(self, engine: Engine, router: Router, now: Callable[[], datetime],
                 on_handled: Callable[[list[tuple[Inbound, Handled]]], None]) -> None:
        self.engine, self.router, self.now, self.on_handled = engine, router, now, on_handled
        self._arrivals: queue.SimpleQueue = queue.SimpleQueue()  # (inbound, future) or _STOP
        self._stored: queue.SimpleQueue = queue.SimpleQueue()  # (inbound, id, when stored) or _STOP
        self._threads: list[threading.Thread] = []
        # SQLite has one writer: the two threads take turns here rather than in SQLite's busy handler,
        # which sleeps in steps of milliseconds and left acknowledgements waiting a second and more.
        self._writing = threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        self._loop: asyncio.AbstractEventLoop | None = None  # the service's loop (callers and on_handled)
        self._idle: asyncio.Event | None = None
        self._last_arrival = self._last_batch = 0.0  # time.monotonic() of the last store and the last batch
        self._pace = BATCH_SECONDS  # seconds per message handled, a moving average (starts at one per batch)
        self._commit = 0.0  # seconds per commit, a moving average
        self.pending = 0  # submitted and not yet handled (read on the service's loop)
        self.batches = 0  # handling transactions committed (for the benchmark)

    def start(self) -> None:
        if not self._threads:
            self._loop = asyncio.get_running_loop()
            self._idle = asyncio.Event()
            self._idle.set()
            self._threads = [threading.Thread(target=self._storing, name="checkin-store", daemon=True),
                             threading.Thread(target=self._handling, name="checkin-handle", daemon=True)]
            for thread in self._threads:
                thread.start()

    async def submit(self, inbound: Inbound) -> int | None:
        """Store `inbound`; returns its row id once committed (None: a provider's repeat, ignored)."""
        self.start()
        future = self._loop.create_future()
        self.pending += 1
        self._idle.clear()
        self._arrivals.put((cleaned(inbound), future))
        stored = await future
        if stored is not None:  # a provider's repeat is not a message received
            INBOUND.labels(inbound.channel).inc()
        return stored

    async def join(self) -> None:
        """Wait until everything submitted is handled."""
        if self._idle is not None:
            await self._idle.wait()

    async def stop(self) -> None:
        """Store and handle what has arrived, then end the workers."""
        if self._threads:
            self._arrivals.put(_STOP)
            for thread in self._threads:
                await asyncio.get_running_loop().run_in_executor(None, thread.join)
            self._threads = []

    # -- on the service's loop, called from the workers --

    def _done(self, n: int, handled: list[tuple[Inbound, Handled]]) -> None:
        self.pending -= n
        if self.pending == 0:
            self._idle.set()
        if handled:
            self.on_handled(handled)

    # -- the storing thread --

    def _storing(self) -> None:
        while True:
            waiting, stop = [], False
            item = self._arrivals.get()
            try:
                while True:
                    if item is _STOP:
                        stop = True
                        break
                    waiting.append(item)
                    if len(waiting) >= STORE_AT_ONCE:
                        break
                    item = self._arrivals.get_nowait()
            except queue.Empty:
                pass
            if waiting:
                self._last_arrival = time.monotonic()
                self._store_group(waiting)
            if stop:
                self._stored.put(_STOP)
                return

    def _store_group(self, waiting: list) -> None:
        now = self.now()
        try:
            with self._writing, session_scope(self.engine) as session:
                ids = self.router.store_many(session, [inbound for inbound, _ in waiting], now)
        except Exception:  # one bad message must not fail the others: each alone
            ids = []
            for inbound, _ in waiting:
                try:
                    with self._writing, session_scope(self.engine) as session:
                        ids.append(self.router.store(session, inbound, now))
                except Exception as error:
                    log.exception("could not store an inbound %s message", inbound.channel)
                    ids.append(error)
        repeats = 0
        for (inbound, future), mid in zip(waiting, ids, strict=True):
            if isinstance(mid, Exception):
                self._loop.call_soon_threadsafe(_fail, future, mid)
                repeats += 1
                continue
            self._loop.call_soon_threadsafe(_resolve, future, mid)
            if mid is None:
                log.info("duplicate inbound %s/%s ignored", inbound.channel, inbound.provider_id)
                repeats += 1
            else:
                self._stored.put((inbound, mid, time.monotonic()))
        if repeats:
            self._loop.call_soon_threadsafe(self._done, repeats, [])

    # -- the handling thread --

    def _handling(self) -> None:
        loop = asyncio.new_event_loop()  # the handlers' coroutines run here, never on the service's loop
        try:
            while True:
                first = self._stored.get()
                if first is _STOP:
                    return
                self._defer(stored_at=first[2])
                batch, stop = [first[:2]], False
                size = max(1, min(BATCH_MESSAGES, int(max(0.0, BATCH_SECONDS - self._commit) / self._pace)))
                try:
                    while len(batch) < size:
                        item = self._stored.get_nowait()
                        if item is _STOP:
                            stop = True
                            break
                        batch.append(item[:2])
                except queue.Empty:
                    pass
                loop.run_until_complete(self._handle(batch))
                if stop:
                    return  # the storing thread puts _STOP last: nothing is stored after it
        finally:
            loop.close()

    def _defer(self, stored_at: float) -> None:
        """While a burst arrives, let the storing have the interpreter (see the module's notes)."""
        while True:
            now = time.monotonic()
            quiet = now - self._last_arrival
            if quiet >= QUIET_SECONDS or now - self._last_batch >= DEFER_SECONDS or now - stored_at >= STARVE_SECONDS:
                return
            time.sleep(min(QUIET_SECONDS - quiet, DEFER_SECONDS - (now - self._last_batch)))

    async def _handle(self, batch: list[tuple[Inbound, int]]) -> None:
        """One handling transaction; the pace is measured for the next batch's size."""
        started, timing = time.perf_counter(), {}
        try:
            with self._writing:
                handled = await self.router.handle_batch(self.engine, batch, self.now(), timing)
        except Exception:  # the database itself failed: the rows stay received, the next start recovers them
            log.exception("could not handle %s stored inbound messages", len(batch))
            handled = []
        if "commit" in timing:  # the commit is paid once per batch, the rest once per message
            spent = time.perf_counter() - started
            self._commit = 0.8 * self._commit + 0.2 * timing["commit"]
            self._pace = max(1e-4, 0.8 * self._pace + 0.2 * (spent - timing["commit"]) / len(batch))
        self._last_batch = time.monotonic()
        self.batches += 1
        results = [(inbound, h) for (inbound, _), h in zip(batch, handled, strict=False)]
        self._loop.call_soon_threadsafe(self._done, len(batch), results)


def _resolve(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future, error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
