"""`checkin run`: the web routes, the channels, and the clock job (sweep and drain) in one process."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import socket
from datetime import datetime

import uvicorn

from bot.doctor import readiness
from bot.metrics import exposition
from bot.runtime import Runtime
from bot.stack import Stack
from bot.web import make_app
from scheduler.ticker import Ticker, make_scheduler

log = logging.getLogger(__name__)


class PortInUse(RuntimeError):
    """The service's port is taken (another process listens there without CHECKIN_HTTP_REUSE_PORT)."""


async def serve(rt: Runtime, *, scheduler: bool = True, stop_at: datetime | None = None) -> Ticker:
    """Run until a signal, or until the clock passes `stop_at`; return the ticker for its counts.

    The port is bound first: a port in use stops the start with PortInUse, before anything runs.
    """
    fewer_malloc_arenas(rt.settings.malloc_arena_max)
    listening = listen(rt.settings.http_host, rt.settings.http_port, shared=rt.settings.http_reuse_port)
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
        make_app(rt.clock, status, stack.routes() + console, console_errors,
                 ready=lambda: readiness(rt.engine, rt.clock.now()),
                 metrics=exposition(rt.engine, rt.clock.now)), host=rt.settings.http_host,
        port=rt.settings.http_port,
        log_level="warning", lifespan="off",
    ))
    server.install_signal_handlers = lambda: None  # ours below stop everything together
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    web = asyncio.create_task(server.serve(sockets=[listening]))
    web.add_done_callback(lambda _: stop.set())  # the web server ended on its own: the service stops too
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


def fewer_malloc_arenas(configured: int | None = None, arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas, as MALLOC_ARENA_MAX=2 would, unless `configured` (MALLOC_ARENA_MAX); True if capped.

    glibc gives threads that allocate their own arenas (up to eight per core)
    and keeps what is freed in each: with the database work in worker threads
    (inbox, drain, status callbacks) that held tens of megabytes for nothing
    (docs/benchmarks.md, "Memory"). Called before the service starts threads.
    Elsewhere than glibc (musl, macOS) it does nothing.
    """
    if configured is not None:  # glibc read it at start: the operator's choice stands
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return libc.mallopt(-8, arenas) == 1  # -8: M_ARENA_MAX in glibc's malloc.h


def listen(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """The listening socket; `shared` binds it with SO_REUSEPORT, so that several processes take a share each."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = "" if shared else " (to share it between processes, set CHECKIN_HTTP_REUSE_PORT=1 in each)"
        raise PortInUse(f"cannot listen on {host}:{port} (CHECKIN_HTTP_HOST, CHECKIN_HTTP_PORT): "
                        f"{exc.strerror}{hint}") from None
    sock.listen(2048)
    return sock
