"""`checkin warning ...`: the warnings ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.base import acting_for, fail, officer_row, out, runtime, warning_app
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
            fail(f"no person with case number {case_number!r}", 2)
        try:
            entry = formal_warnings.record(session, officer_row(session, officer), person, reason, rt.clock.now(),
                                           rt.settings.zone, actor=acting_for(officer))
        except formal_warnings.WarningError as exc:
            fail(str(exc), 2)
        out.print(f"warning {entry.id} recorded for {case_number}")


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
            fail(str(exc), 2)
        out.print(f"entry {entry.id} ({entry.kind}) amends warning {warning_id}")


@warning_app.command("list")
def warning_list(case_number: Annotated[str, typer.Argument(help="The person's case number")]) -> None:
    """A person's warnings, with corrections and withdrawals."""
    rt = runtime()
    with session_scope(rt.engine) as session:
        person = queries.supervisee_by_case(session, case_number)
        if person is None:
            fail(f"no person with case number {case_number!r}", 2)
        lines = formal_warnings.ledger(session, person.id)
        rows = [[str(line.entry.id), line.entry.created_at.astimezone(rt.settings.zone).strftime("%Y-%m-%d %H:%M"),
                 str(line.entry.officer_id), "withdrawn" if line.withdrawn else "standing", line.reason,
                 ", ".join(f"{a.kind} #{a.id}" for a in line.amended)] for line in lines]
    columns = [Column("id", key=True, justify="right"), Column("given", key=True), Column("state", key=True),
               Column("reason", key=True, wrap=True), Column("by", justify="right"), Column("amendments")]
    out.print(fitted(columns, [[r[0], r[1], r[3], r[4], r[2], r[5]] for r in rows], width=out.width,
                     title=f"warnings of {case_number}"))
