"""`checkin case ...`: the life of one case, as an officer would change it from the chat (handlers.case_life)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated

import typer

from bot.cli.base import acting_for, case_app, fail, office_language, officer_row, operator, out, runtime, say
from handlers import case_life
from handlers.case_life import Actor, CaseError
from handlers.delivery import deliver
from storage import queries
from storage.db import session_scope
from storage.models import Officer, Supervisee

CaseArg = Annotated[str, typer.Argument(metavar="CASE", help="The case number")]
OfficerOpt = Annotated[int | None, typer.Option("--officer", help="Act for this officer (audited as the operator "
                                                                   "acting for them)")]


def _change(case_number: str, officer: int | None, what: str,
            apply: Callable[[object, Supervisee, Actor, object], list], **params: object) -> None:
    """Load the case, apply the change in one transaction, deliver what it owes people, say what was done (the
    office's text `case.WHAT`, with `params`)."""
    rt = runtime()
    now = rt.clock.now()
    with session_scope(rt.engine) as session:
        person = queries.supervisee_by_case(session, case_number)
        if person is None:
            fail(say("case.no_such", case=case_number), 2)
        actor = Actor(acting_for(officer), officer_row(session, officer)) if officer is not None \
            else Actor(operator())
        try:
            replies = apply(session, person, actor, rt)
        except CaseError as exc:
            fail(say("case.refused", case=case_number, why=exc.render(office_language())), 2)
        for i, reply in enumerate(replies):
            deliver(session, reply, now=now, dedupe_key=f"case:{person.id}:{what}:{now.isoformat()}:{i}")
        told = sum(1 for r in replies if r.to is not None)
        done = say(f"case.{what}", **params)
        out.print(say("case.done_told", case=case_number, done=done, count=told) if told
                  else say("case.done", case=case_number, done=done), markup=False)


def _date(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(say("base.not_a_date", option=option, value=repr(value)), 2)


@case_app.command("pause")
def case_pause(
    case_number: CaseArg,
    start: Annotated[str, typer.Option("--from", help="First day of the pause (YYYY-MM-DD)")],
    end: Annotated[str, typer.Option("--to", help="Last day of the pause (YYYY-MM-DD)")],
    reason: Annotated[str, typer.Option("--reason", help="Why: hospital, detention, court ...")],
    officer: OfficerOpt = None,
) -> None:
    """Pause check-ins and every obligation from --from to --to: nothing prompted, nothing missed."""
    first, last = _date(start, "--from"), _date(end, "--to")
    _change(case_number, officer, "paused",
            lambda s, p, a, rt: case_life.pause(s, p, first, last, reason, actor=a, now=rt.clock.now(),
                                                zone=rt.settings.zone), start=first, end=last)


@case_app.command("resume")
def case_resume(case_number: CaseArg, officer: OfficerOpt = None) -> None:
    """End a pause now (or call off one not yet begun)."""
    _change(case_number, officer, "resumed",
            lambda s, p, a, rt: case_life.resume(s, p, actor=a, now=rt.clock.now(), zone=rt.settings.zone))


@case_app.command("level")
def case_level(case_number: CaseArg, level: Annotated[str, typer.Argument(help="strict, ordinary or lenient")],
               officer: OfficerOpt = None) -> None:
    """Change the supervision level; obligations are planned anew."""
    _change(case_number, officer, "level",
            lambda s, p, a, rt: case_life.set_level(s, p, level, actor=a, now=rt.clock.now()), level=level)


@case_app.command("language")
def case_language(case_number: CaseArg, language: Annotated[str, typer.Argument(help="zh-CN or en")],
                  officer: OfficerOpt = None) -> None:
    """Change the language the person is written to in."""
    _change(case_number, officer, "language",
            lambda s, p, a, rt: case_life.set_language(s, p, language, actor=a, now=rt.clock.now()), language=language)


@case_app.command("timezone")
def case_timezone(case_number: CaseArg,
                  zone: Annotated[str, typer.Argument(help="An IANA time zone (Asia/Urumqi), or 'county'")],
                  officer: OfficerOpt = None) -> None:
    """Give the person a time zone of their own ('county': the county's again); times are planned anew."""
    _change(case_number, officer, "timezone",
            lambda s, p, a, rt: case_life.set_timezone(s, p, None if zone == "county" else zone, actor=a,
                                                       now=rt.clock.now()), zone=zone)


@case_app.command("channel")
def case_channel(case_number: CaseArg, channel: Annotated[str, typer.Argument(help="telegram, sms or voice")],
                 officer: OfficerOpt = None) -> None:
    """Change the channel messages to the person prefer."""
    _change(case_number, officer, "channel",
            lambda s, p, a, rt: case_life.set_channel(s, p, channel, actor=a, now=rt.clock.now()), channel=channel)


@case_app.command("transfer")
def case_transfer(case_number: CaseArg,
                  to: Annotated[int, typer.Option("--to", help="The officer who takes the case (their township "
                                                               "becomes the person's)")],
                  officer: OfficerOpt = None) -> None:
    """Move the case to another officer; open alerts and leave go along; both officers and the person are told."""
    def apply(s, p, a, rt):
        target = s.get(Officer, to)
        if target is None:
            fail(say("base.no_officer", option="--to", id=to), 2)
        return case_life.transfer(s, p, target, actor=a, now=rt.clock.now())
    _change(case_number, officer, "transferred", apply, to=to)


@case_app.command("end")
def case_end(case_number: CaseArg,
             reason: Annotated[str, typer.Option("--reason", help="ended, revoked, moved_out or died")],
             note: Annotated[str, typer.Option("--note", help="A note for the audit trail")] = "",
             officer: OfficerOpt = None) -> None:
    """End the supervision today: open obligations excused, alerts closed, leave cancelled."""
    _change(case_number, officer, "ended",
            lambda s, p, a, rt: case_life.end(s, p, reason, note, actor=a, now=rt.clock.now(),
                                              zone=rt.settings.zone), reason=reason)
