"""The command tree (groups and their help), the consoles, and helpers every command group uses."""

from __future__ import annotations

import getpass
from datetime import datetime

import typer
from rich.console import Console
from typer.core import TyperGroup

from bot.runtime import NotInitialised, Runtime, build
from bot.settings import SettingsError, load_settings
from storage import queries
from storage.crypto import DecryptError, KeyringError
from storage.models import Officer, Supervisee


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


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"checkin {version('checkin-bot')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            print("checkin (not installed)")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit")) -> None:
    """checkin: keeps people under community supervision in touch with their officers."""
officer_app = typer.Typer(help="Officers: assistant officers, township supervisors, administrators.",
                          no_args_is_help=True)
roster_app = typer.Typer(help="The roster of people under supervision.", no_args_is_help=True)
app.add_typer(officer_app, name="officer")
app.add_typer(roster_app, name="roster")
warning_app = typer.Typer(help="The warnings ledger (append-only).", no_args_is_help=True)
app.add_typer(warning_app, name="warning")
service_app = typer.Typer(help="Community-service sessions and attendance.", no_args_is_help=True)
app.add_typer(service_app, name="service")
case_app = typer.Typer(help="The life of one case: pause, resume, level, language, time zone, channel, transfer, "
                            "end.", no_args_is_help=True)
app.add_typer(case_app, name="case")
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
sms_app = typer.Typer(help="SMS providers: the approved templates a provider like Tencent Cloud needs.",
                      no_args_is_help=True)
app.add_typer(sms_app, name="sms")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def runtime(schema: bool = True) -> Runtime:
    try:
        rt = build(load_settings())
        if schema:
            rt.require_schema()
    except (SettingsError, NotInitialised, KeyringError) as exc:
        err.print(f"[red]{exc}[/]", markup=True)
        raise typer.Exit(2) from None
    return rt


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]{message}[/]", markup=True)
    raise typer.Exit(code)


def operator() -> str:
    """The audit actor of a CLI action of the operator's own (an administrator at the server)."""
    return f"cli:{getpass.getuser()}"


def acting_for(officer_id: int) -> str:
    """The audit actor of a CLI action taken with `--officer N`: the operator, acting for that officer."""
    return f"cli:{getpass.getuser()} for officer:{officer_id}"


def officer_row(session, officer_id: int) -> Officer:
    officer = session.get(Officer, officer_id)
    if officer is None:
        fail(f"--officer={officer_id}: no officer with this id", 2)
    return officer


def person_or_officer(session, ref: str) -> Supervisee | Officer | None:
    """`officer:ID` names an officer; anything else is a case number."""
    if ref.startswith("officer:"):
        ident = ref.split(":", 1)[1]
        return session.get(Officer, int(ident)) if ident.isdigit() else None
    return queries.supervisee_by_case(session, ref)


def instant(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}={value!r}: not an ISO-8601 date-time (e.g. 2027-03-01T09:00+08:00)", 2)
    if at.tzinfo is None:
        fail(f"{option}={value!r}: give a UTC offset, e.g. +08:00", 2)
    return at
