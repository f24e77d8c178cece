"""`checkin roster ...` and `checkin enroll-link`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import select

from bot.cli.base import app, err, fail, operator, out, person_or_officer, roster_app, runtime
from bot.tables import Column, fitted
from handlers import enrol
from handlers.roster import import_roster
from storage import audit
from storage.db import session_scope
from storage.models import Supervisee


@roster_app.command("import")
def roster_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="Roster: CSV (UTF-8, or GBK) or an Excel workbook")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing")] = False,
) -> None:
    """Import or update people from CSV: all rows or none."""
    rt = runtime()
    data = file.read_bytes()
    with session_scope(rt.engine) as session:
        result = import_roster(
            session, data, now=rt.clock.now(), region=rt.settings.phone_region,
            default_language=rt.settings.language, dry_run=dry_run, actor=operator(),
        )
        if dry_run or not result.ok:
            session.rollback()
        else:
            audit.append(session, actor=operator(), action="roster.import", now=rt.clock.now(),
                         details={"file": file.name, "created": result.created, "updated": result.updated,
                                  "unchanged": result.unchanged})
    if not result.ok:
        for e in result.errors:
            err.print(f"{file.name}: {e}", markup=False)
        fail(f"{len(result.errors)} problem(s) found; nothing was imported.")
    verb = "would be" if dry_run else "were"
    out.print(f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged "
              f"({result.created + result.updated} {verb} written).")


@roster_app.command("export")
def roster_export(
    file: Annotated[Path, typer.Argument(help="The file to write: .xlsx for a workbook, else CSV")],
    chinese: Annotated[bool, typer.Option("--chinese", help="Chinese headers and words (案号, 严管, 缓刑 ...)")]
    = False,
    township: Annotated[str | None, typer.Option("--township")] = None,
) -> None:
    """The people under supervision, in the columns `roster import` reads (importing it back changes nothing)."""
    from handlers.roster_export import as_csv, as_xlsx, roster_rows

    rt = runtime()
    with session_scope(rt.engine) as session:
        rows = roster_rows(session, chinese=chinese, township=township)
        audit.append(session, actor=operator(), action="roster.export", now=rt.clock.now(),
                     details={"file": file.name, "people": len(rows) - 1})
    file.write_bytes(as_xlsx(rows) if file.suffix.lower() == ".xlsx" else as_csv(rows))
    out.print(f"wrote {len(rows) - 1} people to {file} (personal data: keep it as the roster is kept)")


@roster_app.command("list")
def roster_list(
    township: Annotated[str | None, typer.Option("--township")] = None,
    officer: Annotated[int | None, typer.Option("--officer")] = None,
) -> None:
    """Table of people under supervision."""
    rt = runtime()
    query = select(Supervisee).order_by(Supervisee.township, Supervisee.case_number)
    if township:
        query = query.where(Supervisee.township == township)
    if officer is not None:
        query = query.where(Supervisee.officer_id == officer)
    with session_scope(rt.engine) as session:
        people = session.exec(query).all()
    columns = [Column("case", key=True), Column("name", key=True), Column("township"), Column("level"),
               Column("status"), Column("officer", justify="right"), Column("channel"), Column("category"),
               Column("start"), Column("end")]
    rows = [[p.case_number, p.name, p.township, p.level, p.status, str(p.officer_id),
             p.preferred_channel, p.category,
             p.supervision_start.isoformat(), p.supervision_end.isoformat()] for p in people]
    out.print(fitted(columns, rows, width=out.width, title=f"{len(people)} people",
                     note_more=" (a wider terminal, or `checkin roster export`, shows them)"))


def _bot_username(s) -> str | None:
    """The bot's username: the setting, else asked of the Bot API with the token."""
    if s.telegram_bot_username or not s.telegram_enabled:
        return s.telegram_bot_username
    from telegram import Bot

    async def ask() -> str | None:
        async with Bot(s.telegram_bot_token, base_url=s.telegram_base_url) as bot:
            return bot.username

    try:
        return asyncio.run(ask())
    except Exception as exc:  # no network, bad token: print the code without a link
        err.print(f"could not ask Telegram for the bot's name ({type(exc).__name__}); set TELEGRAM_BOT_USERNAME")
        return None



@app.command("enroll-link")
def enroll_link(case_number: Annotated[str, typer.Argument(help="The person's case number, or officer:ID")]) -> None:
    """Print the Telegram deep link and the SMS instructions for one person (or officer:ID)."""
    rt = runtime()
    s = rt.settings
    with session_scope(rt.engine) as session:
        who = person_or_officer(session, case_number)
        if who is None:
            fail(f"no person or officer {case_number!r}", 2)
        code = enrol.issue_code(session, who, rt.clock.now(), s.enrol_code_days)
    expires = code.expires_at.astimezone(s.zone).strftime("%Y-%m-%d %H:%M")
    out.print(f"Enrolment code for {case_number}: [bold]{code.code}[/] (single use, expires {expires})", markup=True)
    username = _bot_username(s)
    if username:
        out.print(f"Telegram: https://t.me/{username}?start={code.code.replace('-', '')}")
    else:
        out.print(f"Telegram: open the bot and send  /start {code.code}")
    if isinstance(who, Supervisee):
        sender = s.twilio_from_number or "the service's SMS number"
        out.print(f"SMS: no code needed. From {who.phone}, text HELP (or 帮助) to {sender}.")
