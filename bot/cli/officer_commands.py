"""`checkin officer ...`: add, list, edit and deactivate officers; their web console password."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import select

from bot.cli.base import fail, office_language, officer_app, operator, out, runtime, say
from bot.tables import Column, fitted
from handlers import officer_accounts
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
    with session_scope(rt.engine) as session:
        try:
            officer = officer_accounts.add(
                session, name=name, township=township, role=role, now=rt.clock.now(), actor=operator(),
                region=rt.settings.phone_region, supervisor_id=supervisor, telegram_id=telegram_id, phone=phone,
                language=language)
        except officer_accounts.AccountError as exc:
            fail(_as_option(exc), 2)
        out.print(officer.id)


def _officer(session, officer_id: int) -> Officer:
    officer = session.get(Officer, officer_id)
    if officer is None:
        fail(say("officer.no_such", id=officer_id), 2)
    return officer


def _as_option(exc: officer_accounts.AccountError) -> str:
    """The refusal in the office's language, its field as the command line's option: `--phone='1': ...`."""
    if "field" in exc.params:
        exc.params["field"] = "--" + exc.params["field"].replace("_", "-")
    return exc.render(office_language())


@officer_app.command("list")
def officer_list() -> None:
    """Table of officers."""
    rt = runtime()
    with session_scope(rt.engine) as session:
        officers = session.exec(select(Officer).order_by(Officer.township, Officer.id)).all()
        load = queries.caseload_counts(session)
    columns = [Column(say("officer.col_id"), key=True, justify="right"), Column(say("officer.col_name"), key=True),
               Column(say("officer.col_role"), key=True), Column(say("officer.col_township")),
               Column(say("officer.col_caseload"), justify="right"),
               Column(say("officer.col_supervisor"), justify="right"), Column(say("officer.col_telegram")),
               Column(say("officer.col_phone")), Column(say("officer.col_language")), Column(say("officer.col_active"))]
    yes, no = say("base.yes"), say("base.no")
    rows = [[str(o.id), o.name, o.role, o.township, str(load.get(o.id, 0)), str(o.supervisor_id or ""),
             yes if o.telegram_id else "", yes if o.phone else "", o.language,
             yes if o.active else no] for o in officers]
    out.print(fitted(columns, rows, width=out.width, lang=office_language(),
                     title=say("officer.listed", count=len(officers))))


@officer_app.command("edit")
def officer_edit(
    officer_id: Annotated[int, typer.Argument(help="The officer's id")],
    name: Annotated[str | None, typer.Option("--name")] = None,
    township: Annotated[str | None, typer.Option("--township")] = None,
    role: Annotated[Role | None, typer.Option("--role")] = None,
    supervisor: Annotated[int | None, typer.Option("--supervisor", help="Id of the township supervisor")] = None,
    telegram_id: Annotated[int | None, typer.Option("--telegram-id")] = None,
    phone: Annotated[str | None, typer.Option("--phone")] = None,
    language: Annotated[str | None, typer.Option("--language", help="zh-CN or en")] = None,
) -> None:
    """Change an officer: only the options given; every change is audited (which fields, not their values)."""
    rt = runtime()
    with session_scope(rt.engine) as session:
        officer = _officer(session, officer_id)
        raw = dict(name=name, township=township, role=role, language=language, phone=phone,
                   supervisor_id=supervisor, telegram_id=telegram_id)
        try:
            changes = officer_accounts.checked_changes(session, officer, raw, rt.settings.phone_region)
            changed = officer_accounts.edit(session, officer, changes, rt.clock.now(), actor=operator())
        except officer_accounts.AccountError as exc:
            fail(_as_option(exc), 2)
    out.print(say("officer.changed", id=officer_id, fields=", ".join(changed)) if changed
              else say("officer.unchanged", id=officer_id))


@officer_app.command("deactivate")
def officer_deactivate(
    officer_id: Annotated[int, typer.Argument(help="The officer's id")],
    reassign_to: Annotated[int | None, typer.Option("--reassign-to", help="The officer who takes over")] = None,
) -> None:
    """End an officer's access at once; their people, open alerts and leave move to --reassign-to."""
    rt = runtime()
    with session_scope(rt.engine) as session:
        officer = _officer(session, officer_id)
        successor = session.get(Officer, reassign_to) if reassign_to is not None else None
        if reassign_to is not None and successor is None:
            fail(say("base.no_officer", option="--reassign-to", id=reassign_to), 2)
        try:
            moved = officer_accounts.deactivate(session, officer, successor, rt.clock.now(), actor=operator())
        except officer_accounts.AccountError as exc:
            fail(_as_option(exc), 2)
    out.print(say("officer.handed_over", id=officer_id, to=reassign_to, people=moved.people, alerts=moved.alerts,
                  leave=moved.leave, officers=moved.officers) if successor else say("officer.deactivated",
                                                                                   id=officer_id))


@officer_app.command("passwd")
def officer_passwd(
    officer_id: Annotated[int, typer.Argument(help="The officer's id")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input "
                                                                        "(for scripts) instead of asking")] = False,
    qr: Annotated[Path | None, typer.Option("--qr", help="Administrators: where to write the TOTP QR code (PNG)")]
    = None,
    new_totp: Annotated[bool, typer.Option("--new-totp", help="Administrators: a new TOTP secret even when one "
                                                              "is set (a lost phone)")] = False,
) -> None:
    """Set an officer's password for the web console; administrators also get a TOTP secret and its QR code."""
    from bot.office import auth  # pyotp and segno: loaded by this command only
    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        say("officer.new_password"), hide_input=True, confirmation_prompt=True)
    rt = runtime()
    now = rt.clock.now()
    with session_scope(rt.engine) as session:
        officer = _officer(session, officer_id)
        secret = None
        if auth.needs_totp(officer) and (new_totp or not officer.totp_secret):
            secret = auth.new_totp_secret()
        try:
            officer_accounts.set_password(session, officer, password, now, actor=operator(), totp_secret=secret)
        except officer_accounts.PasswordError as exc:
            fail(say("officer.refused", id=officer_id, why=exc.render(office_language())), 2)
        uri = auth.totp_uri(officer, secret) if secret else None
    out.print(say("officer.password_set", id=officer_id))
    if uri:
        path = qr or Path(f"officer-{officer_id}-totp.png")
        auth.qr_png(uri, str(path))
        out.print(say("officer.totp", path=path, uri=uri), markup=False)
