"""The `checkin` command line (typer + rich)."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlmodel import select
from typer.core import TyperGroup

from bot import sample
from bot.channels.console import ConsoleChannel
from bot.runtime import NotInitialised, Runtime, build
from bot.serve import serve
from bot.settings import (
    LANGUAGES,
    SettingsError,
    load_settings,
    new_key_text,
    own_keys,
    read_key_file,
    write_key_file,
)
from bot.stack import Stack
from content.areas import AreaError, load_areas
from content.catalog import catalogue
from handlers import community_service, compliance, enrol, formal_warnings, greetings, leave, purge
from handlers.addressing import console_address
from handlers.contract import Inbound, Location
from handlers.delivery import deliver
from handlers.roster import import_roster, normalise_phone
from scheduler.drain import Outbox
from storage import audit, queries, rekey
from storage.crypto import DecryptError, Keyring, KeyringError, key_id, new_key
from storage.db import current_revision, has_schema, make_engine, migrate, session_scope
from storage.models import Leave, LeaveState, Officer, Role, ServiceAttendance, ServiceSession, Supervisee


class _Commands(TyperGroup):
    """Every command: a value the keys cannot open ends the command with what to check, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DecryptError as exc:
            err.print(f"[red]stored data cannot be decrypted with these keys ({exc}): check CHECKIN_KEY_FILE, "
                      "or CHECKIN_DATA_KEYS and CHECKIN_INDEX_KEY, which take precedence[/]", markup=True)
            raise typer.Exit(2) from None


app = typer.Typer(help="checkin: keeps people under community supervision in touch with their officers.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=_Commands)
officer_app = typer.Typer(help="Officers: assistant officers, township supervisors, administrators.",
                          no_args_is_help=True)
roster_app = typer.Typer(help="The roster of people under supervision.", no_args_is_help=True)
app.add_typer(officer_app, name="officer")
app.add_typer(roster_app, name="roster")
warning_app = typer.Typer(help="The warnings ledger (append-only).", no_args_is_help=True)
app.add_typer(warning_app, name="warning")
service_app = typer.Typer(help="Community-service sessions and attendance.", no_args_is_help=True)
app.add_typer(service_app, name="service")
leave_app = typer.Typer(help="Leave to travel: requests and decisions.", no_args_is_help=True)
app.add_typer(leave_app, name="leave")
audit_app = typer.Typer(help="The audit trail of officers' and administrators' actions (hash-chained).",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")
areas_app = typer.Typer(help="The county, township and destination areas for location check-ins.",
                        no_args_is_help=True)
app.add_typer(areas_app, name="areas")
keys_app = typer.Typer(help="Encryption keys: make them, rotate them (re-encrypting what is stored).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _runtime(schema: bool = True) -> Runtime:
    try:
        rt = build(load_settings())
        if schema:
            rt.require_schema()
    except (SettingsError, NotInitialised, KeyringError) as exc:
        err.print(f"[red]{exc}[/]", markup=True)
        raise typer.Exit(2) from None
    return rt


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]{message}[/]", markup=True)
    raise typer.Exit(code)


@app.command()
def init() -> None:
    """Create or migrate the database (and, for a new one without keys, make the key file)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail(str(exc), 2)
    if not settings.data_keys and not Path(settings.key_file).exists():
        engine = make_engine(settings.database_url)
        fresh = not has_schema(engine)
        engine.dispose()
        if not fresh:
            _fail(f"the database has data but there are no keys to read it: set CHECKIN_DATA_KEYS and "
                  f"CHECKIN_INDEX_KEY, or CHECKIN_KEY_FILE (not found: {settings.key_file})", 2)
        write_key_file(Path(settings.key_file), new_key_text())
        out.print(f"[yellow]made new encryption keys in {settings.key_file} (readable by you only): keep a copy "
                  "apart from the database; without them its personal data cannot be read[/]")
    rt = _runtime(schema=False)
    before = current_revision(rt.engine)
    migrate(rt.engine)
    after = current_revision(rt.engine)
    where = rt.engine.url.render_as_string(hide_password=True)
    if before == after:
        out.print(f"database {where} is up to date (revision {after})")
    else:
        out.print(f"database {where} migrated from {before or 'empty'} to revision {after}")


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
    rt = _runtime()
    if language not in LANGUAGES:
        _fail(f"--language={language!r}: must be one of {', '.join(LANGUAGES)}", 2)
    if phone is not None:
        try:
            phone = normalise_phone(phone, rt.settings.phone_region)
        except ValueError as exc:
            _fail(f"--phone={phone!r}: {exc}", 2)
    with session_scope(rt.engine) as session:
        if supervisor is not None:
            boss = session.get(Officer, supervisor)
            if boss is None or boss.role not in (Role.supervisor, Role.admin):
                _fail(f"--supervisor={supervisor}: no supervisor with this id", 2)
        if telegram_id is not None and queries.officer_by_telegram(session, telegram_id):
            _fail(f"--telegram-id={telegram_id}: already used by another officer", 2)
        if phone is not None and queries.officer_by_phone(session, phone):
            _fail(f"--phone={phone}: already used by another officer", 2)
        officer = queries.add_officer(
            session, name=name.strip(), township=township.strip(), role=role, now=rt.clock.now(),
            supervisor_id=supervisor, telegram_id=telegram_id, phone=phone, language=language,
        )
        out.print(officer.id)


@officer_app.command("list")
def officer_list() -> None:
    """Table of officers."""
    rt = _runtime()
    with session_scope(rt.engine) as session:
        officers = session.exec(select(Officer).order_by(Officer.township, Officer.id)).all()
        load = queries.caseload_counts(session)
    table = Table("id", "name", "township", "role", "supervisor", "telegram", "phone", "lang", "caseload")
    for o in officers:
        table.add_row(str(o.id), o.name, o.township, o.role, str(o.supervisor_id or ""),
                      "yes" if o.telegram_id else "", "yes" if o.phone else "", o.language, str(load.get(o.id, 0)))
    out.print(table)


@roster_app.command("import")
def roster_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Roster CSV (UTF-8)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing")] = False,
) -> None:
    """Import or update people from CSV: all rows or none."""
    rt = _runtime()
    data = file.read_bytes()
    with session_scope(rt.engine) as session:
        result = import_roster(
            session, data, now=rt.clock.now(), region=rt.settings.phone_region,
            default_language=rt.settings.language, dry_run=dry_run,
        )
        if dry_run or not result.ok:
            session.rollback()
        else:
            audit.append(session, actor="cli", action="roster.import", now=rt.clock.now(),
                         details={"file": file.name, "created": result.created, "updated": result.updated,
                                  "unchanged": result.unchanged})
    if not result.ok:
        for e in result.errors:
            err.print(f"{file.name}: {e}", markup=False)
        _fail(f"{len(result.errors)} problem(s) found; nothing was imported.")
    verb = "would be" if dry_run else "were"
    out.print(f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged "
              f"({result.created + result.updated} {verb} written).")


@roster_app.command("list")
def roster_list(
    township: Annotated[str | None, typer.Option("--township")] = None,
    officer: Annotated[int | None, typer.Option("--officer")] = None,
) -> None:
    """Table of people under supervision."""
    rt = _runtime()
    query = select(Supervisee).order_by(Supervisee.township, Supervisee.case_number)
    if township:
        query = query.where(Supervisee.township == township)
    if officer is not None:
        query = query.where(Supervisee.officer_id == officer)
    with session_scope(rt.engine) as session:
        people = session.exec(query).all()
    table = Table("case", "name", "category", "level", "township", "officer", "start", "end",
                  "status", "channel", title=f"{len(people)} people")
    for p in people:
        channel = "telegram" if p.telegram_chat_id else "sms"
        table.add_row(p.case_number, p.name, p.category, p.level, p.township, str(p.officer_id),
                      p.supervision_start.isoformat(), p.supervision_end.isoformat(), p.status, channel)
    out.print(table)


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


def _officer(session, officer_id: int) -> Officer:
    officer = session.get(Officer, officer_id)
    if officer is None:
        _fail(f"--officer={officer_id}: no officer with this id", 2)
    return officer


@warning_app.command("add")
def warning_add(
    case_number: Annotated[str, typer.Argument(help="The person's case number")],
    officer: Annotated[int, typer.Option("--officer", help="Id of the officer giving the warning")],
    reason: Annotated[str, typer.Option("--reason", help="Why; the person is told")],
) -> None:
    """Record a warning; the person is told in their language, with the reason."""
    rt = _runtime()
    with session_scope(rt.engine) as session:
        person = queries.supervisee_by_case(session, case_number)
        if person is None:
            _fail(f"no person with case number {case_number!r}", 2)
        try:
            entry = formal_warnings.record(session, _officer(session, officer), person, reason, rt.clock.now(),
                                    rt.settings.zone)
        except formal_warnings.WarningError as exc:
            _fail(str(exc), 2)
        out.print(f"warning {entry.id} recorded for {case_number}")


@warning_app.command("correct")
def warning_correct(
    warning_id: Annotated[int, typer.Argument(help="The warning to amend")],
    officer: Annotated[int, typer.Option("--officer")],
    reason: Annotated[str, typer.Option("--reason", help="The corrected reason, or why it is withdrawn")],
    withdraw: Annotated[bool, typer.Option("--withdraw", help="Withdraw the warning instead of correcting it")] = False,
) -> None:
    """Correct or withdraw a warning, by a new entry that refers to it (nothing is deleted)."""
    rt = _runtime()
    with session_scope(rt.engine) as session:
        try:
            entry = formal_warnings.amend(session, _officer(session, officer), warning_id, reason, rt.clock.now(),
                                   rt.settings.zone, withdraw=withdraw)
        except formal_warnings.WarningError as exc:
            _fail(str(exc), 2)
        out.print(f"entry {entry.id} ({entry.kind}) amends warning {warning_id}")


@warning_app.command("list")
def warning_list(case_number: Annotated[str, typer.Argument(help="The person's case number")]) -> None:
    """A person's warnings, with corrections and withdrawals."""
    rt = _runtime()
    with session_scope(rt.engine) as session:
        person = queries.supervisee_by_case(session, case_number)
        if person is None:
            _fail(f"no person with case number {case_number!r}", 2)
        lines = formal_warnings.ledger(session, person.id)
        table = Table("id", "given", "by", "state", "reason", "amendments", title=f"warnings of {case_number}")
        for line in lines:
            table.add_row(str(line.entry.id), line.entry.created_at.astimezone(rt.settings.zone).strftime("%Y-%m-%d %H:%M"),
                          str(line.entry.officer_id), "withdrawn" if line.withdrawn else "standing", line.reason,
                          ", ".join(f"{a.kind} #{a.id}" for a in line.amended))
    out.print(table)


@service_app.command("add")
def service_add(
    place: Annotated[str, typer.Option("--place")],
    start: Annotated[str, typer.Option("--start", help="ISO-8601, e.g. 2027-03-05T09:00+08:00")],
    end: Annotated[str, typer.Option("--end", help="ISO-8601")],
    hours: Annotated[float, typer.Option("--hours", help="Hours credited")],
    officer: Annotated[int, typer.Option("--officer", help="The officer in charge")],
    case: Annotated[list[str], typer.Option("--case", help="A person who attends (repeat)")],
) -> None:
    """Set a session; people are told the day before and reminded two hours before. Prints the attendance code."""
    rt = _runtime()
    starts, ends = _instant(start, "--start"), _instant(end, "--end")
    with session_scope(rt.engine) as session:
        try:
            svc = community_service.create(session, _officer(session, officer), rt.policy, place=place, starts_at=starts, ends_at=ends,
                                 hours=hours, case_numbers=case, now=rt.clock.now())
        except community_service.ServiceError as exc:
            _fail(str(exc), 2)
        out.print(f"session {svc.id}: {len(case)} people; attendance code [bold]{svc.code}[/]", markup=True)


@service_app.command("list")
def service_list() -> None:
    """Sessions with their attendance."""
    rt = _runtime()
    z = rt.settings.zone
    with session_scope(rt.engine) as session:
        rows = session.exec(select(ServiceSession).order_by(ServiceSession.starts_at)).all()
        table = Table("id", "place", "start", "end", "hours", "code", "attendance (id case state hours)")
        for svc in rows:
            people = session.exec(select(ServiceAttendance, Supervisee).join(
                Supervisee, Supervisee.id == ServiceAttendance.supervisee_id).where(
                ServiceAttendance.session_id == svc.id)).all()
            table.add_row(str(svc.id), svc.place, svc.starts_at.astimezone(z).strftime("%Y-%m-%d %H:%M"),
                          svc.ends_at.astimezone(z).strftime("%H:%M"), f"{svc.hours:g}", svc.code,
                          "; ".join(f"{a.id} {p.case_number} {a.state} {a.hours:g}" for a, p in people))
    out.print(table)


@service_app.command("verify")
def service_verify(
    attendance: Annotated[int, typer.Argument(help="Attendance id (see `checkin service list`)")],
    officer: Annotated[int, typer.Option("--officer")],
    hours: Annotated[float | None, typer.Option("--hours", help="Correct the hours credited")] = None,
    absent: Annotated[bool, typer.Option("--absent", help="Mark the person absent")] = False,
) -> None:
    """Verify an attendance (crediting the session's hours or corrected ones), or mark it absent."""
    rt = _runtime()
    with session_scope(rt.engine) as session:
        try:
            a = community_service.verify(session, _officer(session, officer), attendance, rt.clock.now(), hours=hours,
                               absent=absent)
        except community_service.ServiceError as exc:
            _fail(str(exc), 2)
        out.print(f"attendance {a.id}: {a.state}, {a.hours:g} hours")


@leave_app.command("list")
def leave_list(
    state: Annotated[str, typer.Option("--state", help="requested, approved, refused, returned, cancelled, or all")]
    = "open",
    township: Annotated[str | None, typer.Option("--township")] = None,
) -> None:
    """Leave requests: by default those waiting for a decision and those under way."""
    states = {"open": [LeaveState.requested, LeaveState.approved], "all": list(LeaveState)}.get(state)
    if states is None:
        if state not in set(LeaveState):
            _fail(f"--state={state!r}: expected open, all, or one of {', '.join(LeaveState)}", 2)
        states = [state]
    rt = _runtime()
    with session_scope(rt.engine) as session:
        q = (select(Leave, Supervisee).join(Supervisee, Supervisee.id == Leave.supervisee_id)
             .where(Leave.state.in_(states)).order_by(Leave.starts_on, Leave.id))
        if township:
            q = q.where(Supervisee.township == township)
        table = Table("id", "case", "name", "destination", "area", "from", "to", "reason", "state", "mode", "back")
        for lv, p in session.exec(q).all():
            area = rt.areas.get(lv.destination_area)
            table.add_row(str(lv.id), p.case_number, p.name, lv.destination, area.name_en if area else "-",
                          lv.starts_on.isoformat(), lv.ends_on.isoformat(), lv.reason, lv.state, lv.mode or "-",
                          lv.returned_at.astimezone(rt.settings.zone).strftime("%Y-%m-%d %H:%M")
                          if lv.returned_at else "-")
    out.print(table)


def _decide(leave_id: int, officer_id: int, decision: str, note: str = "") -> None:
    rt = _runtime()
    now = rt.clock.now()
    with session_scope(rt.engine) as session:
        row = session.get(Leave, leave_id)
        if row is None:
            _fail(f"no leave request {leave_id}", 2)
        try:
            replies = leave.decide(session, row, _officer(session, officer_id), decision, now, rt.areas, note)
        except leave.LeaveError as exc:
            _fail(f"leave {leave_id}: {exc.render('en')}", 2)
        for i, reply in enumerate(replies):
            deliver(session, reply, now=now, dedupe_key=f"leave:{leave_id}:decision:{i}")
        out.print(f"leave {leave_id}: {row.state}{' (' + row.mode + ')' if row.mode else ''}; the person is told")


@leave_app.command("approve")
def leave_approve(
    leave_id: Annotated[int, typer.Argument(metavar="ID", help="Leave id (see `checkin leave list`)")],
    officer: Annotated[int, typer.Option("--officer", help="The deciding officer (the person's, their supervisor, "
                                                           "or an administrator)")],
    mode: Annotated[str | None, typer.Option("--mode", help="move: the allowed area becomes the destination; "
                                                               "suspend: no area check for those dates")] = None,
) -> None:
    """Approve a leave request; by default the area moves to the destination when it is a known area."""
    if mode is not None and mode not in leave.MODES:
        _fail(f"--mode={mode!r}: expected move or suspend", 2)
    rt = _runtime()
    with session_scope(rt.engine) as session:
        row = session.get(Leave, leave_id)
        default = "move" if row is not None and rt.areas.get(row.destination_area) else "suspend"
    _decide(leave_id, officer, mode or default)


@leave_app.command("refuse")
def leave_refuse(
    leave_id: Annotated[int, typer.Argument(metavar="ID")],
    officer: Annotated[int, typer.Option("--officer")],
    reason: Annotated[str, typer.Option("--reason", help="Told to the person")] = "",
) -> None:
    """Refuse a leave request."""
    _decide(leave_id, officer, "refuse", reason)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole chain: any changed, deleted or reordered entry is found, and the first one named."""
    rt = _runtime()
    with session_scope(rt.engine) as session:
        verdict = audit.verify(session)
    if not verdict.ok:
        _fail(f"audit trail broken at entry {verdict.first_bad}: {verdict.reason} "
              f"({verdict.entries} entries before it are intact)", 1)
    purged = f" ({verdict.purged} with details removed by a purge)" if verdict.purged else ""
    out.print(f"audit trail intact: {verdict.entries} entries{purged}")


@audit_app.command("show")
def audit_show(case: Annotated[str, typer.Option("--case", help="Case number")]) -> None:
    """One person's history: every officer's and administrator's action on them, oldest first."""
    rt = _runtime()
    z = rt.settings.zone
    with session_scope(rt.engine) as session:
        person = queries.supervisee_by_case(session, case)
        if person is None:
            _fail(f"--case={case!r}: no such case number", 2)
        table = Table("#", "when", "who", "action", "on", "details")
        for e in audit.history(session, person.id):
            who = e.actor
            if e.actor.startswith("officer:"):
                officer = session.get(Officer, int(e.actor.split(":")[1]))
                who = f"{officer.name} ({e.actor})" if officer else e.actor
            table.add_row(str(e.id), e.at.astimezone(z).strftime("%Y-%m-%d %H:%M"), who, e.action, e.subject or "",
                          "(purged)" if e.details is None else e.details if e.details != "{}" else "")
    out.print(table)


@keys_app.command("generate")
def keys_generate(
    file: Annotated[Path | None, typer.Option("--file", help="Where to write (default CHECKIN_KEY_FILE)")] = None,
    print_: Annotated[bool, typer.Option("--print", help="Print the two settings instead of writing a file")] = False,
) -> None:
    """Make new keys: a key file readable by you only, or the two lines for your environment."""
    keys = new_key_text()
    if print_:
        for name, value in keys.items():
            out.print(f"{name}={value}", markup=False, soft_wrap=True)
        return
    try:
        path = file or Path(load_settings().key_file)
    except SettingsError as exc:
        _fail(str(exc), 2)
    if path.exists():
        _fail(f"{path} exists: keys are never overwritten (to change them, `checkin keys rotate`)", 2)
    write_key_file(path, keys)
    out.print(f"wrote new keys to {path} (mode 600); keep a copy apart from the database")


def _key_file_only(settings, what: str) -> Path:
    if settings.data_keys:
        _fail(f"the keys come from CHECKIN_DATA_KEYS/CHECKIN_INDEX_KEY: {what} there (a new data key goes first, "
              "the old ones stay until `checkin keys rotate` says they are unused)", 2)
    return Path(settings.key_file)


@keys_app.command("add")
def keys_add() -> None:
    """Put a new data key first in the key file; new values are written with it once the service restarts."""
    rt = _runtime()
    path = _key_file_only(rt.settings, "add the new key")
    values = read_key_file(path)
    values["CHECKIN_DATA_KEYS"] = ",".join([new_key(), values["CHECKIN_DATA_KEYS"]])
    write_key_file(path, values)
    ring = Keyring.parse(values["CHECKIN_DATA_KEYS"], values["CHECKIN_INDEX_KEY"])
    out.print(f"{path}: new data key {ring.primary} first, {len(ring.data_keys) - 1} older kept. Restart the service "
              "(so that it reads values under the new key), then run `checkin keys rotate`.")


@keys_app.command("rotate")
def keys_rotate(
    new_index_key: Annotated[bool, typer.Option(
        "--new-index-key", help="Replace the blind-index key in the key file and recompute the phone indexes "
                                "(stop the service first)")] = False,
    reindex: Annotated[bool, typer.Option(
        "--reindex", help="Recompute the phone indexes with the current index key (after changing it)")] = False,
) -> None:
    """Re-encrypt every stored value under the newest data key (resumable; safe while the service runs).

    First put the new data key first (`checkin keys add`, or in CHECKIN_DATA_KEYS keeping the old ones)
    and restart the service; then this re-encrypts and says which old keys are no longer used (and
    removes them from the key file). Changing the index key needs the service stopped: conversations
    in progress are reset.
    """
    rt = _runtime()
    settings = rt.settings
    from_file = not settings.data_keys
    keyring, path = rt.engine.dialect.checkin_keyring, Path(settings.key_file)
    if new_index_key:
        path = _key_file_only(settings, "set the new CHECKIN_INDEX_KEY, then run `checkin keys rotate --reindex`")
        values = read_key_file(path)
        values["CHECKIN_INDEX_KEY"] = new_key()
        keyring = Keyring.parse(values["CHECKIN_DATA_KEYS"], values["CHECKIN_INDEX_KEY"])
        write_key_file(path, values)  # first: a reindex cut short is finished by `--reindex`
        out.print(f"{path}: new index key")
        reindex = True
    engine = make_engine(settings.database_url, keyring)
    report = rekey.reencrypt(engine)
    for column, n in sorted(report.rewritten.items()):
        out.print(f"  {column}: {n} re-encrypted")
    out.print(f"re-encrypted {sum(report.rewritten.values())} values under key {keyring.primary}")
    if reindex:
        idx = rekey.reindex(engine)
        out.print(f"recomputed {idx.reindexed} phone indexes; reset {idx.conversations_reset} conversations")
    stale = sorted(k for k in report.keys_in_use if k != keyring.primary)
    if stale:
        _fail(f"values under keys {', '.join(stale)} remain (written meanwhile by a service holding old keys?): "
              "run this again", 1)
    with session_scope(engine) as session:
        audit.append(session, actor="cli", action="keys.rotate", now=rt.clock.now(), subject=f"key:{keyring.primary}",
                     details={"reencrypted": sum(report.rewritten.values()), "reindexed": reindex})
    unused = [key_id(k) for k in keyring.data_keys[1:]]
    if unused and from_file:
        values = read_key_file(path)
        values["CHECKIN_DATA_KEYS"] = values["CHECKIN_DATA_KEYS"].split(",")[0]
        write_key_file(path, values)
        out.print(f"old keys {', '.join(unused)} no longer used: removed from {path}")
    elif unused:
        out.print(f"old keys {', '.join(unused)} no longer used: remove them from CHECKIN_DATA_KEYS")
    engine.dispose()


@app.command("purge")
def purge_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed")] = False,
    years: Annotated[int | None, typer.Option(
        "--years", min=1, help="Retention in years (default: the policy's [retention] personal_data_years)")] = None,
) -> None:
    """Remove the personal data of people whose supervision ended more than the retention period ago."""
    rt = _runtime()
    years = years or rt.policy.retention.personal_data_years
    with session_scope(rt.engine) as session:
        result = purge.purge(session, now=rt.clock.now(), years=years, zone=rt.settings.zone, dry_run=dry_run)
        if dry_run:
            session.rollback()
    verb = "would remove" if dry_run else "removed"
    out.print(f"supervision ended before {result.cutoff} ({years} years): {len(result.people)} people; "
              f"{result.notified} still reachable {'would be' if dry_run else 'were'} sent a last message")
    table = Table("personal data", verb)
    for name, n in result.removed.items():
        table.add_row(name.replace("_", " "), str(n))
    out.print(table)
    if not dry_run and result.people:
        out.print("kept for the monthly report: obligations, escalations, study, service and warning counts; "
                  "every purge is in the audit trail (checkin audit verify)")


@areas_app.command("list")
def areas_list(
    file: Annotated[Path | None, typer.Option("--file", help="Check this file instead of CHECKIN_AREAS_FILE")]
    = None,
) -> None:
    """The areas in use (or in FILE), checked: ids, kinds, names, size."""
    if file is not None:
        try:
            found = load_areas(str(file))
        except AreaError as exc:
            _fail(str(exc), 2)
    else:
        found = _runtime(schema=False).areas
    table = Table("id", "kind", "name (zh)", "name (en)", "aliases", "km²")
    for a in found:
        table.add_row(a.key, a.kind, a.name_zh, a.name_en, ", ".join(a.aliases), f"{a.geometry.area / 1e6:,.0f}")
    out.print(table)
    out.print(f"{len(list(found))} areas from {found.source}")


@areas_app.command("where")
def areas_where(
    lat: Annotated[float, typer.Argument(help="Latitude")],
    lon: Annotated[float, typer.Argument(help="Longitude")],
    accuracy: Annotated[float | None, typer.Option("--accuracy", help="Metres")] = None,
) -> None:
    """Where a point falls, and whether it is inside the home area (as a location check-in would be judged)."""
    rt = _runtime(schema=False)
    home = rt.areas.home(rt.policy.location.home_area)
    fix = home.check(lat, lon, accuracy, rt.policy.location.accuracy_credit_m)
    where = rt.areas.where(lat, lon)
    verdict = "inside" if fix.inside and not fix.within_accuracy else (
        f"inside (within accuracy, {fix.distance_m:.0f} m out)" if fix.inside else f"outside by {fix.distance_m:,.0f} m")
    out.print(f"{home.key}: {verdict}; in {where.key if where else 'no known area'}")


REPORT_COLUMNS = [
    ("township", "township"), ("active", "active"), ("due", "check-ins due"), ("on_time", "on time"),
    ("late", "late"), ("partial", "no location"), ("missed", "missed"), ("response_rate", "response rate"),
    ("escalations", "escalations"),
    ("acknowledged_in_sla", "ack in SLA"), ("to_supervisor", "to supervisor"), ("lost_contact", "lost contact"),
    ("lost_per_mille", "lost ‰"), ("study_hours", "study h"), ("under_study", "< 8 h study"),
    ("service_hours", "service h"), ("under_service", "< 8 h service"), ("warnings", "warnings"),
]


def _cell(key: str, value) -> str:
    if value is None:
        return "—"
    if key == "response_rate":
        return f"{value:.1%}"
    if key in ("lost_per_mille", "study_hours", "service_hours"):
        return f"{value:.1f}"
    return str(value)


@app.command()
def report(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM")],
    township: Annotated[str | None, typer.Option("--township")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Also write the figures to this CSV file")] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Also draw the rates per township to this PNG")] = None,
) -> None:
    """Monthly compliance report, per township and for the county."""
    rt = _runtime()
    try:
        with session_scope(rt.engine) as session:
            lines = compliance.report(session, month, zone=rt.settings.zone, policy=rt.policy,
                                      now=rt.clock.now(), township=township)
    except ValueError as exc:
        _fail(f"--month={month!r}: {exc}", 2)
    target = rt.policy.report_figures.target_per_mille
    print_report(lines, month, township, target)
    if csv_file is not None:
        import csv as csv_module

        with csv_file.open("w", newline="", encoding="utf-8") as fh:
            writer = csv_module.writer(fh)
            writer.writerow(["month"] + [k for k, _ in REPORT_COLUMNS])
            for line in lines:
                row = line.as_row()
                writer.writerow([month] + ["" if row[k] is None else (round(row[k], 4) if isinstance(row[k], float)
                                                                       else row[k]) for k, _ in REPORT_COLUMNS])
        out.print(f"wrote {csv_file}")
    if chart is not None:
        draw_chart(lines, month, target, chart)
        key = ", ".join(f"T{i + 1} = {line.township}" for i, line in enumerate(lines[:-1]))
        out.print(f"wrote {chart} ({key})")


def print_report(lines, month: str, township: str | None, target: float) -> None:
    """The report as a rich table, with what the county's lines say."""
    county = lines[-1]
    if county.active == 0:
        out.print(f"No one was under supervision in {month}{' in ' + township if township else ''}: nothing to report.")
    table = Table(*(label for _, label in REPORT_COLUMNS), title=f"compliance {month} (lost-contact target ≤ {target:g}‰)")
    for line in lines:
        cells = [_cell(k, getattr(line, k)) for k, _ in REPORT_COLUMNS]
        if line.township == compliance.COUNTY:
            cells[0] = "county" if not township else township + " (total)"
        table.add_row(*cells, style="bold" if line.township == compliance.COUNTY else None)
    out.print(table)
    if county.active and county.due == 0:
        out.print(f"No check-ins were due in {month}: no response rate.")
    if county.lost_per_mille is not None:
        verdict = "within" if county.lost_per_mille <= target else "ABOVE"
        out.print(f"Lost contact: {county.lost_contact} of {county.active} = {county.lost_per_mille:.1f}‰, "
                  f"{verdict} the {target:g}‰ target.")


def draw_chart(lines, month: str, target: float, path: Path) -> None:
    """Response rate and lost contact per township, with the target line (matplotlib, no screen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    towns = [line for line in lines if line.township != compliance.COUNTY]
    names = [line.township for line in towns] or ["(none)"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    left.bar(range(len(towns)), [100 * (line.response_rate or 0) for line in towns], color="#4a7ab5")
    left.set_title(f"Check-in response rate, {month}")
    left.set_ylabel("%")
    left.set_ylim(0, 100)
    right.bar(range(len(towns)), [line.lost_per_mille or 0 for line in towns], color="#c0504d")
    right.axhline(target, color="black", linestyle="--", label=f"target {target:g}‰")
    right.set_title("Lost contact (per mille)")
    right.legend()
    for axis in (left, right):
        axis.set_xticks(range(len(names)), [f"T{i + 1}" for i in range(len(names))])
    # Township names are often Chinese and the machine may have no CJK font: label T1, T2 ...,
    # and the command prints the key.
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _person_or_officer(session, ref: str) -> Supervisee | Officer | None:
    """`officer:ID` names an officer; anything else is a case number."""
    if ref.startswith("officer:"):
        ident = ref.split(":", 1)[1]
        return session.get(Officer, int(ident)) if ident.isdigit() else None
    return queries.supervisee_by_case(session, ref)


@app.command("enroll-link")
def enroll_link(case_number: Annotated[str, typer.Argument(help="The person's case number, or officer:ID")]) -> None:
    """Print the Telegram deep link and the SMS instructions for one person (or officer:ID)."""
    rt = _runtime()
    s = rt.settings
    with session_scope(rt.engine) as session:
        who = _person_or_officer(session, case_number)
        if who is None:
            _fail(f"no person or officer {case_number!r}", 2)
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


@app.command()
def console(
    as_: Annotated[str, typer.Option("--as", help="CASE_NUMBER, or officer:ID")],
) -> None:
    """Talk to the service as that person from the terminal."""
    console_as(_runtime(), as_)


def console_as(rt: Runtime, as_: str) -> None:
    """Open the console as a supervisee (case number) or `officer:ID`."""
    with session_scope(rt.engine) as session:
        who = _person_or_officer(session, as_)
        if who is None:
            _fail(f"--as={as_!r}: no such person or officer", 2)
        address = console_address(who)
        recipient = ("officer" if isinstance(who, Officer) else "supervisee", who.id)
    asyncio.run(_console_loop(rt, address, recipient, who.name))


async def _console_loop(rt: Runtime, address: str, recipient: tuple[str, int], name: str) -> None:
    channel = ConsoleChannel(out)
    outbox = Outbox(rt.engine, {"console": channel})
    interactive = sys.stdin.isatty()
    out.print(f"[dim]Talking as {name} ({address}). Type /help; a digit presses a button; "
              "@LAT,LON shares a location; Ctrl-D ends.[/]", markup=True)
    await outbox.drain(rt.clock.now(), recipient=recipient)
    while True:
        try:
            line = input("you › " if interactive else "")
        except EOFError:
            break
        line = line.strip()
        if not line:
            continue
        if not interactive:
            out.print(f"you › {line}", markup=False)
        inbound = _console_inbound(address, line, channel)
        await rt.router.handle(rt.engine, inbound, rt.clock.now())
        await outbox.drain(rt.clock.now(), recipient=recipient)


def _console_inbound(address: str, line: str, channel: ConsoleChannel) -> Inbound:
    button = channel.button_for(line)
    if button is not None:
        return Inbound("console", address, text=line, button=button)
    if line.startswith("@") and "," in line:
        try:
            lat, lon = (float(x) for x in line[1:].split(",", 1))
            return Inbound("console", address, location=Location(lat, lon))
        except ValueError:
            pass
    return Inbound("console", address, text=line)


def _bulk(rt: Runtime, *, key: str, kind: str, section: str, template: str, audience: greetings.Audience,
          holiday: greetings.Holiday | None, dry_run: bool, title: str) -> None:
    """Queue a bulk send (or, dry run, say what it would do), then drain it with a progress bar."""
    now = rt.clock.now()
    with session_scope(rt.engine) as session:
        by_channel = greetings.audience_by_channel(session, audience)
        before = greetings.progress(session, key)
    total = sum(by_channel.values())
    if dry_run:
        table = Table("channel", "people", "time at the configured rate", title=f"{title} (dry run: nothing written)")
        rates = {"telegram": 30.0, "sms": rt.settings.sms_rate}
        for channel, n in sorted(by_channel.items()):
            rate = rates.get(channel)
            eta = f"{n / rate:.0f} s" if rate else "waits in the console mailbox"
            table.add_row(channel, str(n), eta)
        out.print(table)
        if before:
            out.print(f"already queued or sent earlier under this key: {sum(before.values())}")
        for language in LANGUAGES:
            out.print(f"[bold]{language}[/]: {greetings.sample(section, template, language, holiday)}", markup=True)
        return
    with session_scope(rt.engine) as session:
        result = greetings.enqueue_bulk(session, key=key, kind=kind, section=section, template=template, now=now,
                                        audience=audience, holiday=holiday)
    out.print(f"{title}: {total} people, {result.queued} queued now, {result.already} from an earlier run")
    configured = asyncio.run(_drain_with_progress(rt, key, total))
    with session_scope(rt.engine) as session:
        done, failed = greetings.progress(session, key), greetings.failures(session, key)
    sent = done.get("sent", 0) + done.get("delivered", 0)
    idle = {c: n for c, n in by_channel.items() if c not in configured and c != "console"}
    waiting = done.get("queued", 0) + done.get("sending", 0) - sum(idle.values()) - by_channel.get("console", 0)
    out.print(f"sent {sent}, failed {done.get('failed', 0)}"
              + (f" ({', '.join(f'{c}: {n}' for c, n in sorted(failed.items()))})" if failed else "")
              + f", waiting to retry {max(0, waiting)}")
    skipped = [f"{n} by {c}, which is not configured (they wait in the outbox)" for c, n in sorted(idle.items())]
    if by_channel.get("console"):
        skipped.append(f"{by_channel['console']} with no Telegram and no phone (console mailbox)")
    if skipped:
        out.print("skipped: " + "; ".join(skipped))


async def _drain_with_progress(rt: Runtime, key: str, total: int) -> set[str]:
    """Drain until nothing is due, showing this send's progress; the channels that were configured."""
    stack = Stack(rt)
    await stack.start(receive=False)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=out, transient=False) as bar:
            task = bar.add_task("sending", total=total)
            while True:
                report = await stack.outbox.drain(rt.clock.now(), max_batches=1)
                with session_scope(rt.engine) as session:
                    counts = greetings.progress(session, key)
                bar.update(task, completed=sum(n for s, n in counts.items() if s not in ("queued", "sending")))
                if report.claimed == 0:
                    break
    finally:
        await stack.stop()
    return set(stack.channels)


@app.command()
def greet(
    holiday: Annotated[str | None, typer.Option("--holiday", help="Holiday key or name: spring_festival, 春节 ...")] = None,
    on: Annotated[str | None, typer.Option("--date", help="The holiday's date, YYYY-MM-DD")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Counts, samples and timing; write nothing")] = False,
) -> None:
    """Send the holiday greeting to every active person (resumable: re-running sends nothing twice)."""
    rt = _runtime()
    today = rt.clock.now().astimezone(rt.settings.zone).date()
    day = None
    if on:
        try:
            day = date.fromisoformat(on)
        except ValueError:
            _fail(f"--date={on!r}: not a date as YYYY-MM-DD", 2)
    if not holiday and day is None:
        day = today
    found = greetings.find_holiday(rt.settings.holiday_country, today=today, name=holiday, day=day)
    if found is None:
        names = ", ".join(f"{h.slug} ({h.day})" for h in greetings.holidays_in(rt.settings.holiday_country, today.year))
        _fail(f"no holiday {'on ' + str(day) if day else repr(holiday)} in {rt.settings.holiday_country}; "
              f"this year: {names}", 2)
    title = f"{found.name(rt.settings.language)} {found.day}"
    _bulk(rt, key=greetings.greeting_key(found), kind="greeting", section="greeting", template=found.slug,
          audience=greetings.Audience(), holiday=found, dry_run=dry_run, title=title)


@app.command()
def broadcast(
    template: Annotated[str, typer.Option("--template", help="A key of the [broadcast] texts in content/")],
    township: Annotated[str | None, typer.Option("--township")] = None,
    level: Annotated[str | None, typer.Option("--level")] = None,
    category: Annotated[str | None, typer.Option("--category")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Send an administrator's announcement to everyone matching the filters (once per day and filters)."""
    rt = _runtime()
    keys = {k.split(".", 1)[1] for k in catalogue(rt.settings.language) if k.startswith("broadcast.")}
    if template not in keys:
        _fail(f"--template={template!r}: no such text; there are {', '.join(sorted(keys))}", 2)
    audience = greetings.Audience(township, level, category)
    today = rt.clock.now().astimezone(rt.settings.zone).date()
    digest = ",".join(f"{k}={v}" for k, v in sorted(audience.as_dict().items())) or "all"
    key = f"broadcast:{template}:{today}:{digest}"
    _bulk(rt, key=key, kind="broadcast", section="broadcast", template=template, audience=audience,
          holiday=None, dry_run=dry_run, title=f"broadcast {template} to {digest}")


def _instant(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{option}={value!r}: not an ISO-8601 date-time (e.g. 2027-03-01T09:00+08:00)", 2)
    if at.tzinfo is None:
        _fail(f"{option}={value!r}: give a UTC offset, e.g. +08:00", 2)
    return at


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
    rt = _runtime()
    now = _instant(at, "--at") or rt.clock.now()
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
    no_scheduler: Annotated[bool, typer.Option("--no-scheduler", help="Serve the channels only; sweeps run elsewhere")] = False,
    stop_at: Annotated[str | None, typer.Option("--stop-at", help="Stop when the clock reaches this instant (rehearsals)")] = None,
) -> None:
    """The service: web routes, channels, the clock job (sweep and drain) and the outbox."""
    rt = _runtime()
    until = _instant(stop_at, "--stop-at")
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    ticker = asyncio.run(serve(rt, scheduler=not no_scheduler, stop_at=until))
    out.print(f"stopped after {ticker.ticks} ticks at {rt.clock.now().isoformat()}")


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo database lives")] = Path("checkin-demo"),
    console_only: Annotated[bool, typer.Option("--console", help="Only seed the county and open the console")] = False,
    as_: Annotated[str, typer.Option("--as", help="With --console: whom to talk as (CASE_NUMBER or officer:ID)")] = "JZ2027001",
    days: Annotated[int, typer.Option("--days", help="Simulated days")] = 14,
    seconds: Annotated[float, typer.Option("--seconds", help="Real seconds the simulation should take")] = 120,
) -> None:
    """The whole service offline on a sample county: two simulated weeks, then what happened and the report."""
    url = f"sqlite:///{(directory / 'checkin.db').resolve()}"
    if console_only:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            rt = build(load_settings(database_url=url, **own_keys(directory / 'checkin.keys')))
        except SettingsError as exc:
            _fail(str(exc), 2)
        migrate(rt.engine)
        if sample.seed(rt.engine, rt.clock.now()):
            out.print(f"Seeded the sample county (3 townships, 6 officers, 40 people) in {url}")
        out.print(f"Explore it with CHECKIN_KEY_FILE={directory / 'checkin.keys'} CHECKIN_DATABASE_URL={url} "
                  "checkin roster list")
        console_as(rt, as_)
        return
    from bot import demo as simulation

    out.print(f"Simulating {days} days of the sample county in about {seconds:g} s: Telegram and SMS stand-ins on "
              "loopback, the real stack, the fast clock.")
    rt = asyncio.run(simulation.run(directory, days=days, seconds=seconds, console=out))
    month = rt.clock.now().astimezone(rt.settings.zone).strftime("%Y-%m")
    with session_scope(rt.engine) as session:
        lines = compliance.report(session, month, zone=rt.settings.zone, policy=rt.policy, now=rt.clock.now())
    print_report(lines, month, None, rt.policy.report_figures.target_per_mille)
    out.print(f"The database stays in {directory}: CHECKIN_KEY_FILE={directory / 'checkin.keys'} "
              f"CHECKIN_DATABASE_URL={url} checkin report --month {month} "
              "(or roster list, officer list, warning list, console --as ...)")


def main() -> None:
    """Entry point of the `checkin` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
