"""The command tree (groups and their help), the consoles, and helpers every command group uses."""

from __future__ import annotations

import getpass
from datetime import datetime

import typer
from rich.console import Console
from typer.core import TyperGroup

from bot.runtime import NotInitialised, Runtime, build
from bot.settings import Settings, SettingsError, load_settings
from content.catalog import DEFAULT_LANGUAGE, text
from storage import queries
from storage.crypto import DecryptError, KeyringError
from storage.models import Officer, Supervisee


class _Commands(TyperGroup):
    """Every command: a value the keys cannot open ends the command with what to check, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DecryptError as exc:
            fail(say("base.undecryptable", error=exc), 2)


# This command's settings, read once by the callback that runs before every command (None: not valid; the command
# says why when it reads them).
_invocation: dict[str, Settings | None] = {"settings": None}


def settings() -> Settings:
    """This command's settings (SettingsError, naming each bad one, when they are not valid)."""
    return _invocation["settings"] or load_settings()


def office_language() -> str:
    """The language of the command line's words: CHECKIN_LANGUAGE (the default language of people too)."""
    found = _invocation["settings"]
    return found.language if found else DEFAULT_LANGUAGE


def say(key: str, /, **params: object) -> str:
    """A text of the office's (content/locales/office/), in `office_language()`."""
    return text(office_language(), f"office.{key}", **params)


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
    try:  # the settings' errors are the command's to report, in the default language
        _invocation["settings"] = load_settings()
    except SettingsError:
        _invocation["settings"] = None


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
        rt = build(settings())
        if schema:
            rt.require_schema()
    except NotInitialised as exc:
        fail(say("base.not_initialised", where=exc.where), 2)
    except (SettingsError, KeyringError) as exc:
        fail(str(exc), 2)
    return rt


def fail(message: str, code: int = 1) -> None:
    err.print(message, style="red", markup=False)
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
        fail(say("base.no_officer", option="--officer", id=officer_id), 2)
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
        fail(say("base.not_instant", option=option, value=repr(value)), 2)
    if at.tzinfo is None:
        fail(say("base.no_offset", option=option, value=repr(value)), 2)
    return at
