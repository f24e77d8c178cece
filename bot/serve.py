"""`checkin run`: the web routes, the channels, and the clock job (sweep and drain) in one process."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import datetime

import uvicorn

from bot.runtime import Runtime
from bot.stack import Stack
from bot.web import make_app
from scheduler.ticker import Ticker, make_scheduler

log = logging.getLogger(__name__)


async def serve(rt: Runtime, *, scheduler: bool = True, stop_at: datetime | None = None) -> Ticker:
    """Run until a signal, or until the clock passes `stop_at`; return the ticker for its counts."""
    stack = Stack(rt, sweeps=scheduler)
    ticker = stack.ticker
    status: dict = {"sweeps": scheduler, "channels": sorted(stack.channels), "ticks": 0}
    stop = asyncio.Event()

    async def job() -> None:
        try:
            report = await ticker.tick()
        except Exception:  # a failed tick is retried by the next one; the state is in the database
            log.exception("tick failed")
            return
        status["ticks"], status["last_tick"] = ticker.ticks, report.at.isoformat()
        if stop_at is not None and report.at >= stop_at:
            stop.set()

    clock_job = make_scheduler(job, rt.clock)
    from bot.office.app import office_routes  # the console's templates and libraries: for the service only

    console, console_errors = office_routes(rt, stack.kick)  # the office's web console under /console
    server = uvicorn.Server(uvicorn.Config(
        make_app(rt.clock, status, stack.routes() + console, console_errors), host=rt.settings.http_host,
        port=rt.settings.http_port,
        log_level="warning", lifespan="off",
    ))
    server.install_signal_handlers = lambda: None  # ours below stop everything together
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    web = asyncio.create_task(server.serve())
    await stack.start()
    clock_job.start()
    log.info("checkin running: sweeps=%s channels=%s http=%s:%s",
             scheduler, sorted(stack.channels), rt.settings.http_host, rt.settings.http_port)
    try:
        await stop.wait()
    finally:
        clock_job.shutdown(wait=False)
        await stack.stop()
        server.should_exit = True
        await web
    return ticker
