"""`checkin tick`, `checkin run` and `checkin demo`: the service itself."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot import logs, sample
from bot.cli.base import app, fail, instant, office_language, out, runtime, say
from bot.cli.console_commands import console_as
from bot.report_view import month_status, print_report
from bot.runtime import Runtime, build
from bot.serve import PortInUse, serve
from bot.settings import SettingsError, load_settings, own_keys
from bot.stack import Stack
from handlers import compliance
from storage.db import migrate, session_scope


async def _tick(rt: Runtime, now: datetime):
    stack = Stack(rt)
    await stack.start(receive=False)
    try:
        return await stack.ticker.tick(now)
    finally:
        await stack.stop()


@app.command()
def tick(
    at: Annotated[str | None, typer.Option("--at", help="The instant (ISO-8601 with offset); default now")] = None,
) -> None:
    """One sweep and one outbox drain at that instant (catch-up, testing)."""
    rt = runtime()
    now = instant(at, "--at") or rt.clock.now()
    report = asyncio.run(_tick(rt, now))
    table = Table(say("tick.col_step"), say("tick.col_count"),
                  title=say("tick.title", at=now.astimezone(rt.settings.zone).isoformat()))
    for key, value in report.sweep.as_dict().items():
        if key != "skipped":
            table.add_row(key, str(value))
    table.add_row("sent", str(report.drain.sent))
    table.add_row("retried", str(report.drain.retried))
    table.add_row("failed", str(report.drain.failed))
    out.print(table)
    if report.sweep.skipped:
        out.print(say("tick.skipped"), markup=False)


@app.command()
def run(
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Serve the channels only; sweeps run elsewhere")
    ] = False,
    stop_at: Annotated[
        str | None, typer.Option("--stop-at", help="Stop when the clock reaches this instant (rehearsals)")
    ] = None,
) -> None:
    """The service: web routes, channels, the clock job (sweep and drain) and the outbox."""
    rt = runtime()
    until = instant(stop_at, "--stop-at")
    logs.configure(rt.settings.log_level, rt.settings.log_format, default=logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        ticker = asyncio.run(serve(rt, scheduler=not no_scheduler, stop_at=until))
    except PortInUse as exc:
        fail(str(exc), code=2)
    out.print(say("run.stopped", ticks=ticker.ticks, at=rt.clock.now().isoformat()), markup=False)


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo database lives")] = Path("checkin-demo"),
    console_only: Annotated[bool, typer.Option("--console", help="Only seed the county and open the console")] = False,
    as_: Annotated[
        str, typer.Option("--as", help="With --console: whom to talk as (CASE_NUMBER or officer:ID)")
    ] = "JZ2027001",
    days: Annotated[int, typer.Option("--days", help="Simulated days")] = 14,
    seconds: Annotated[float, typer.Option("--seconds", help="Real seconds the simulation should take")] = 120,
    serve: Annotated[bool, typer.Option("--serve", help="Then keep the web console up on the demo's database "
                                                        "until Ctrl-C")] = False,
    port: Annotated[int, typer.Option("--port", help="With --serve: the console's port")] = 8080,
    sms: Annotated[str, typer.Option("--sms", help="The SMS provider's stand-in: twilio, or tencent (mainland "
                                                   "China: approved templates)")] = "twilio",
) -> None:
    """The whole service offline on a sample county: two simulated weeks, then what happened and the report."""
    if sms not in ("twilio", "tencent"):
        fail(say("demo.bad_sms", value=repr(sms)), 2)
    url = f"sqlite:///{(directory / 'checkin.db').resolve()}"
    if console_only:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            rt = build(load_settings(database_url=url, **own_keys(directory / 'checkin.keys')))
        except SettingsError as exc:
            fail(str(exc), 2)
        migrate(rt.engine)
        if sample.seed(rt.engine, rt.clock.now()):
            out.print(say("demo.seeded", url=url), markup=False)
        out.print(say("demo.explore", keys=directory / "checkin.keys", url=url), markup=False)
        console_as(rt, as_)
        return
    from bot import demo as simulation

    out.print(say("demo.simulating", days=days, seconds=f"{seconds:g}",
                  provider="Tencent Cloud" if sms == "tencent" else "Twilio"), markup=False)
    outcome = asyncio.run(simulation.run(directory, days=days, seconds=seconds, console=out, sms=sms))
    rt, zone = outcome.rt, outcome.rt.settings.zone
    simulation.print_personas(simulation.persona_rates(outcome), out, office_language())
    months = outcome.months()
    first, last = outcome.start.astimezone(zone), outcome.end.astimezone(zone)
    out.print(say("demo.simulated", first=f"{first:%Y-%m-%d %H:%M}", last=f"{last:%Y-%m-%d %H:%M}", zone=zone,
                  months=", ".join(months)), markup=False)
    for month in months:
        with session_scope(rt.engine) as session:
            lines = compliance.report(session, month, zone=zone, policy=rt.policy, now=rt.clock.now())
        print_report(out, lines, month, None, rt.policy.report_figures.target_per_mille,
                     status=month_status(month, rt.clock.now(), zone), lang=office_language())
    out.print(say("demo.stays", directory=directory, keys=directory / "checkin.keys", url=url, month=months[0]),
              markup=False)
    from bot.office.demo import console_logins  # the web console's libraries only for the demo that uses them

    logins = console_logins(rt, directory)
    where = f"http://127.0.0.1:{port}/console/"
    out.print(say("demo.console" if serve else "demo.console_with_serve", url=where), markup=False)
    out.print(say("demo.officer_login", id=logins.officer_id, password=logins.officer_password), markup=False)
    out.print(say("demo.admin_login", id=logins.admin_id, password=logins.admin_password, qr=logins.qr,
                  secret=logins.totp_secret), markup=False)
    if serve:
        out.print(say("demo.serving"), markup=False)
        asyncio.run(_serve_until_interrupted(rt, port))


async def _serve_until_interrupted(rt, port: int) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from bot.office.demo import serve_console

    await serve_console(rt, port, stop)
