"""`checkin officer ...`: add and list officers."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import select

from bot.cli.base import fail, officer_app, out, runtime
from bot.settings import LANGUAGES
from bot.tables import Column, fitted
from handlers.roster import normalise_phone
from storage import queries
from storage.db import session_scope
from storage.models import Officer, Role


@officer_app.command("add")
def officer_add(
    name: Annotated[str, typer.Option("--name", help="Full name")],
    township: Annotated[str, typer.Option("--township", help="Township")],
    role: Annotated[Role, typer.Option("--role")] = Role.assistant,
    supervisor: Annotated[int | None, typer.Option("--supervisor", help="Id of the township supervisor")] = None,
    telegram_id: Annotated[int | None, typer.Option("--telegram-id", help="Telegram user id")] = None,
    phone: Annotated[str | None, typer.Option("--phone", help="Mobile number")] = None,
    language: Annotated[str, typer.Option("--language", help="zh-CN or en")] = "zh-CN",
) -> None:
    """Add an officer and print its id."""
    rt = runtime()
    if language not in LANGUAGES:
        fail(f"--language={language!r}: must be one of {', '.join(LANGUAGES)}", 2)
    if phone is not None:
        try:
            phone = normalise_phone(phone, rt.settings.phone_region)
        except ValueError as exc:
            fail(f"--phone={phone!r}: {exc}", 2)
    with session_scope(rt.engine) as session:
        if supervisor is not None:
            boss = session.get(Officer, supervisor)
            if boss is None or boss.role not in (Role.supervisor, Role.admin):
                fail(f"--supervisor={supervisor}: no supervisor with this id", 2)
        if telegram_id is not None and queries.officer_by_telegram(session, telegram_id):
            fail(f"--telegram-id={telegram_id}: already used by another officer", 2)
        if phone is not None and queries.officer_by_phone(session, phone):
            fail(f"--phone={phone}: already used by another officer", 2)
        officer = queries.add_officer(
            session, name=name.strip(), township=township.strip(), role=role, now=rt.clock.now(),
            supervisor_id=supervisor, telegram_id=telegram_id, phone=phone, language=language,
        )
        out.print(officer.id)


@officer_app.command("list")
def officer_list() -> None:
    """Table of officers."""
    rt = runtime()
    with session_scope(rt.engine) as session:
        officers = session.exec(select(Officer).order_by(Officer.township, Officer.id)).all()
        load = queries.caseload_counts(session)
    columns = [Column("id", key=True, justify="right"), Column("name", key=True), Column("role", key=True),
               Column("township"), Column("caseload", justify="right"), Column("supervisor", justify="right"),
               Column("telegram"), Column("phone"), Column("lang")]
    rows = [[str(o.id), o.name, o.role, o.township, str(load.get(o.id, 0)), str(o.supervisor_id or ""),
             "yes" if o.telegram_id else "", "yes" if o.phone else "", o.language] for o in officers]
    out.print(fitted(columns, rows, width=out.width, title=f"{len(officers)} officers"))
