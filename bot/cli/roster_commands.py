"""`checkin roster ...` and `checkin enroll-link`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import select

from bot.cli.base import app, err, fail, office_language, operator, out, person_or_officer, roster_app, runtime, say
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
            err.print(say("roster.in_file", file=file.name, error=e.render(office_language())), markup=False)
        fail(say("roster.refused", count=len(result.errors)))
    out.print(say("roster.checked" if dry_run else "roster.imported", created=result.created, updated=result.updated,
                  unchanged=result.unchanged, written=result.created + result.updated))


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
    out.print(say("roster.exported", count=len(rows) - 1, path=file), markup=False)


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
    columns = [Column(say("roster.col_case"), key=True), Column(say("roster.col_name"), key=True),
               Column(say("roster.col_township")), Column(say("roster.col_level")), Column(say("roster.col_status")),
               Column(say("roster.col_officer"), justify="right"), Column(say("roster.col_channel")),
               Column(say("roster.col_category")), Column(say("roster.col_start")), Column(say("roster.col_end"))]
    rows = [[p.case_number, p.name, p.township, p.level, p.status, str(p.officer_id),
             p.preferred_channel, p.category,
             p.supervision_start.isoformat(), p.supervision_end.isoformat()] for p in people]
    out.print(fitted(columns, rows, width=out.width, lang=office_language(),
                     title=say("roster.listed", count=len(people)),
                     note_more=say("roster.more")))


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
        err.print(say("enrol.no_bot_name", error=type(exc).__name__), markup=False)
        return None



@app.command("enroll-link")
def enroll_link(case_number: Annotated[str, typer.Argument(help="The person's case number, or officer:ID")]) -> None:
    """Print the Telegram deep link and the SMS instructions for one person (or officer:ID)."""
    rt = runtime()
    s = rt.settings
    with session_scope(rt.engine) as session:
        who = person_or_officer(session, case_number)
        if who is None:
            fail(say("enrol.no_such", ref=repr(case_number)), 2)
        code = enrol.issue_code(session, who, rt.clock.now(), s.enrol_code_days)
    expires = code.expires_at.astimezone(s.zone).strftime("%Y-%m-%d %H:%M")
    out.print(say("enrol.code", ref=case_number, code=code.code, expires=expires), markup=False)
    username = _bot_username(s)
    if username:
        out.print(say("enrol.telegram_link", link=f"https://t.me/{username}?start={code.code.replace('-', '')}"),
                  markup=False)
    else:
        out.print(say("enrol.telegram_start", code=code.code), markup=False)
    if isinstance(who, Supervisee):
        sender = s.twilio_from_number or say("enrol.sms_number")
        out.print(say("enrol.sms", phone=who.phone, number=sender), markup=False)
