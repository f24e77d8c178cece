"""`checkin greet` and `checkin broadcast`: messages to many people, with a progress bar."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.base import app, fail, out, runtime, say
from bot.progress import drain_with_progress
from bot.runtime import Runtime
from bot.settings import LANGUAGES
from content.catalog import catalogue
from handlers import greetings
from storage.db import session_scope


def _bulk(rt: Runtime, *, key: str, kind: str, section: str, template: str, audience: greetings.Audience,
          holiday: greetings.Holiday | None, dry_run: bool, title: str, expires_at: datetime | None = None) -> None:
    """Queue a bulk send (or, dry run, say what it would do), then drain it with a progress bar."""
    now = rt.clock.now()
    with session_scope(rt.engine) as session:
        by_channel = greetings.audience_by_channel(session, audience)
        before = greetings.progress(session, key)
    total = sum(by_channel.values())
    if dry_run:
        table = Table(say("bulk.col_channel"), say("bulk.col_people"), say("bulk.col_time"),
                      title=say("bulk.dry_run", title=title))
        rates = {"telegram": 30.0, "sms": rt.settings.sms_rate}
        for channel, n in sorted(by_channel.items()):
            rate = rates.get(channel)
            eta = say("bulk.seconds", seconds=f"{n / rate:.0f}") if rate else say("bulk.mailbox")
            table.add_row(channel, str(n), eta)
        out.print(table)
        for line in _unconfigured(rt, by_channel, expires_at):
            out.print(say("bulk.warning", line=line), style="yellow", markup=False)
        if before:
            out.print(say("bulk.earlier", count=sum(before.values())), markup=False)
        for language in LANGUAGES:
            out.print(f"[bold]{language}[/]: {greetings.sample(section, template, language, holiday)}", markup=True)
        return
    with session_scope(rt.engine) as session:
        result = greetings.enqueue_bulk(session, key=key, kind=kind, section=section, template=template, now=now,
                                        audience=audience, holiday=holiday, expires_at=expires_at)
    out.print(say("bulk.queued", title=title, total=total, queued=result.queued, already=result.already),
              markup=False)
    configured = asyncio.run(drain_with_progress(rt, key, total, out))
    with session_scope(rt.engine) as session:
        done, failed = greetings.progress(session, key), greetings.failures(session, key)
    sent = done.get("sent", 0) + done.get("delivered", 0)
    idle = {c: n for c, n in by_channel.items() if c not in configured and c != "console"}
    waiting = done.get("queued", 0) + done.get("sending", 0) - sum(idle.values()) - by_channel.get("console", 0)
    why = f" ({', '.join(f'{c}: {n}' for c, n in sorted(failed.items()))})" if failed else ""
    out.print(say("bulk.sent", sent=sent, failed=done.get("failed", 0), why=why, waiting=max(0, waiting)),
              markup=False)
    until = f"{expires_at.astimezone(rt.settings.zone):%Y-%m-%d %H:%M}" if expires_at else ""
    skipped = [say("bulk.idle_until", count=n, channel=c, until=until) if until
               else say("bulk.idle", count=n, channel=c) for c, n in sorted(idle.items())]
    if by_channel.get("console"):
        skipped.append(say("bulk.unreachable", count=by_channel["console"]))
    if skipped:
        out.print(say("bulk.skipped", what="; ".join(skipped)), markup=False)



def _unconfigured(rt: Runtime, by_channel: dict[str, int], expires_at: datetime | None) -> list[str]:
    """What a bulk send would leave waiting: people on channels this service has no settings for."""
    configured = {"telegram": rt.settings.telegram_enabled, "sms": rt.settings.sms_enabled}
    at = f"{expires_at.astimezone(rt.settings.zone):%Y-%m-%d %H:%M}" if expires_at else ""
    return [say("bulk.unconfigured_until", count=n, channel=channel, at=at) if at
            else say("bulk.unconfigured", count=n, channel=channel)
            for channel, n in sorted(by_channel.items()) if channel in configured and not configured[channel] and n]


@app.command()
def greet(
    holiday: Annotated[
        str | None, typer.Option("--holiday", help="Holiday key or name: spring_festival, 春节 ...")
    ] = None,
    on: Annotated[str | None, typer.Option("--date", help="The holiday's date, YYYY-MM-DD")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Counts, samples and timing; write nothing")] = False,
) -> None:
    """Send the holiday greeting to every active person (resumable: re-running sends nothing twice)."""
    rt = runtime()
    today = rt.clock.now().astimezone(rt.settings.zone).date()
    day = None
    if on:
        try:
            day = date.fromisoformat(on)
        except ValueError:
            fail(say("base.not_a_date", option="--date", value=repr(on)), 2)
    if not holiday and day is None:
        day = today
    found = greetings.find_holiday(rt.settings.holiday_country, today=today, name=holiday, day=day)
    if found is None:
        names = ", ".join(f"{h.slug} ({h.day})" for h in greetings.holidays_in(rt.settings.holiday_country, today.year))
        fail(say("bulk.no_holiday_on" if day else "bulk.no_holiday", day=day, name=repr(holiday),
                 country=rt.settings.holiday_country, names=names), 2)
    title = f"{found.name(rt.settings.language)} {found.day}"
    _bulk(rt, key=greetings.greeting_key(found), kind="greeting", section="greeting", template=found.slug,
          audience=greetings.Audience(), holiday=found, dry_run=dry_run, title=title,
          expires_at=found.ends_at(rt.settings.zone))


@app.command()
def broadcast(
    template: Annotated[str, typer.Option("--template", help="A key of the [broadcast] texts in content/")],
    township: Annotated[str | None, typer.Option("--township")] = None,
    level: Annotated[str | None, typer.Option("--level")] = None,
    category: Annotated[str | None, typer.Option("--category")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Send an administrator's announcement to everyone matching the filters (once per day and filters)."""
    rt = runtime()
    keys = {k.split(".", 1)[1] for k in catalogue(rt.settings.language) if k.startswith("broadcast.")}
    if template not in keys:
        fail(say("bulk.no_template", value=repr(template), names=", ".join(sorted(keys))), 2)
    audience = greetings.Audience(township, level, category)
    today = rt.clock.now().astimezone(rt.settings.zone).date()
    digest = ",".join(f"{k}={v}" for k, v in sorted(audience.as_dict().items())) or "all"
    key = f"broadcast:{template}:{today}:{digest}"
    _bulk(rt, key=key, kind="broadcast", section="broadcast", template=template, audience=audience,
          holiday=None, dry_run=dry_run, title=say("bulk.broadcast", template=template, audience=digest))
