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
from bot.cli.base import app, fail, instant, out, runtime
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
    table = Table("step", "count", title=f"tick at {now.astimezone(rt.settings.zone).isoformat()}")
    for key, value in report.sweep.as_dict().items():
        if key != "skipped":
            table.add_row(key, str(value))
    table.add_row("sent", str(report.drain.sent))
    table.add_row("retried", str(report.drain.retried))
    table.add_row("failed", str(report.drain.failed))
    out.print(table)
    if report.sweep.skipped:
        out.print("another worker holds the sweep lock; this tick only drained")


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
    out.print(f"stopped after {ticker.ticks} ticks at {rt.clock.now().isoformat()}")


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
        fail(f"--sms {sms!r}: twilio or tencent", 2)
    url = f"sqlite:///{(directory / 'checkin.db').resolve()}"
    if console_only:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            rt = build(load_settings(database_url=url, **own_keys(directory / 'checkin.keys')))
        except SettingsError as exc:
            fail(str(exc), 2)
        migrate(rt.engine)
        if sample.seed(rt.engine, rt.clock.now()):
            out.print(f"Seeded the sample county (3 townships, 6 officers and an administrator, 40 people) in {url}")
        out.print(f"Explore it with CHECKIN_KEY_FILE={directory / 'checkin.keys'} CHECKIN_DATABASE_URL={url} "
                  "checkin roster list")
        console_as(rt, as_)
        return
    from bot import demo as simulation

    out.print(f"Simulating {days} days of the sample county in about {seconds:g} s: Telegram, SMS "
              f"({'Tencent Cloud' if sms == 'tencent' else 'Twilio'}) and call stand-ins on loopback, the real stack, "
              "the fast clock.")
    outcome = asyncio.run(simulation.run(directory, days=days, seconds=seconds, console=out, sms=sms))
    rt, zone = outcome.rt, outcome.rt.settings.zone
    simulation.print_personas(simulation.persona_rates(outcome), out)
    months = outcome.months()
    first, last = outcome.start.astimezone(zone), outcome.end.astimezone(zone)
    out.print(f"Simulated {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} ({zone}): "
              f"the compliance report for {' and '.join(months)}.")
    for month in months:
        with session_scope(rt.engine) as session:
            lines = compliance.report(session, month, zone=zone, policy=rt.policy, now=rt.clock.now())
        print_report(out, lines, month, None, rt.policy.report_figures.target_per_mille,
                     status=month_status(month, rt.clock.now(), zone))
    out.print(f"The database stays in {directory}: CHECKIN_KEY_FILE={directory / 'checkin.keys'} "
              f"CHECKIN_DATABASE_URL={url} checkin report --month {months[0]} "
              "(or roster list, officer list, warning list, console --as ...)")
    from bot.office.demo import console_logins  # the web console's libraries only for the demo that uses them

    logins = console_logins(rt, directory)
    where = f"http://127.0.0.1:{port}/console/"
    out.print(f"The web console{'' if serve else ' (with --serve)'}: {where}\n"
              f"  an assistant officer: sign in as {logins.officer_id}, password {logins.officer_password}\n"
              f"  the administrator: sign in as {logins.admin_id}, password {logins.admin_password}, and the code "
              f"of an authenticator app that scanned {logins.qr} (secret {logins.totp_secret})")
    if serve:
        out.print("Serving the console on the demo's database; Ctrl-C stops it.")
        asyncio.run(_serve_until_interrupted(rt, port))


async def _serve_until_interrupted(rt, port: int) -> None:
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from bot.office.demo import serve_console

    await serve_console(rt, port, stop)
