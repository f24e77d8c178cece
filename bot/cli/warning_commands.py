"""`checkin warning ...`: the warnings ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.base import acting_for, fail, office_language, officer_row, out, runtime, say, warning_app
from bot.tables import Column, fitted
from handlers import formal_warnings
from storage import queries
from storage.db import session_scope


@warning_app.command("add")
def warning_add(
    case_number: Annotated[str, typer.Argument(help="The person's case number")],
    officer: Annotated[int, typer.Option("--officer", help="Id of the officer giving the warning")],
    reason: Annotated[str, typer.Option("--reason", help="Why; the person is told")],
) -> None:
    """Record a warning; the person is told in their language, with the reason."""
    rt = runtime()
    with session_scope(rt.engine) as session:
        person = queries.supervisee_by_case(session, case_number)
        if person is None:
            fail(say("warning.no_person", case=repr(case_number)), 2)
        try:
            entry = formal_warnings.record(session, officer_row(session, officer), person, reason, rt.clock.now(),
                                           rt.settings.zone, actor=acting_for(officer))
        except formal_warnings.WarningError as exc:
            fail(exc.render(office_language()), 2)
        out.print(say("warning.recorded", id=entry.id, case=case_number), markup=False)


@warning_app.command("correct")
def warning_correct(
    warning_id: Annotated[int, typer.Argument(help="The warning to amend")],
    officer: Annotated[int, typer.Option("--officer")],
    reason: Annotated[str, typer.Option("--reason", help="The corrected reason, or why it is withdrawn")],
    withdraw: Annotated[bool, typer.Option("--withdraw", help="Withdraw the warning instead of correcting it")] = False,
) -> None:
    """Correct or withdraw a warning, by a new entry that refers to it (nothing is deleted)."""
    rt = runtime()
    with session_scope(rt.engine) as session:
        try:
            entry = formal_warnings.amend(session, officer_row(session, officer), warning_id, reason, rt.clock.now(),
                                          rt.settings.zone, withdraw=withdraw, actor=acting_for(officer))
        except formal_warnings.WarningError as exc:
            fail(exc.render(office_language()), 2)
        out.print(say("warning.amended", entry=entry.id, kind=entry.kind, id=warning_id), markup=False)


@warning_app.command("list")
def warning_list(case_number: Annotated[str, typer.Argument(help="The person's case number")]) -> None:
    """A person's warnings, with corrections and withdrawals."""
    rt = runtime()
    with session_scope(rt.engine) as session:
        person = queries.supervisee_by_case(session, case_number)
        if person is None:
            fail(say("warning.no_person", case=repr(case_number)), 2)
        lines = formal_warnings.ledger(session, person.id)
        rows = [[str(line.entry.id), line.entry.created_at.astimezone(rt.settings.zone).strftime("%Y-%m-%d %H:%M"),
                 str(line.entry.officer_id), say("warning.withdrawn") if line.withdrawn else say("warning.standing"),
                 line.reason,
                 ", ".join(f"{a.kind} #{a.id}" for a in line.amended)] for line in lines]
    columns = [Column(say("warning.col_id"), key=True, justify="right"), Column(say("warning.col_given"), key=True),
               Column(say("warning.col_state"), key=True), Column(say("warning.col_reason"), key=True, wrap=True),
               Column(say("warning.col_by"), justify="right"), Column(say("warning.col_amendments"))]
    out.print(fitted(columns, [[r[0], r[1], r[3], r[4], r[2], r[5]] for r in rows], width=out.width,
                     lang=office_language(), title=say("warning.listed", case=case_number)))
