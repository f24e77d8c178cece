"""`checkin leave ...`: leave requests and decisions."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import select

from bot.cli.base import acting_for, fail, leave_app, office_language, officer_row, out, runtime, say
from bot.tables import Column, fitted
from handlers import leave
from handlers.delivery import deliver
from storage.db import session_scope
from storage.models import Leave, LeaveState, Supervisee


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
            fail(say("leave.bad_state", value=repr(state), states=", ".join(LeaveState)), 2)
        states = [state]
    rt = runtime()
    with session_scope(rt.engine) as session:
        q = (select(Leave, Supervisee).join(Supervisee, Supervisee.id == Leave.supervisee_id)
             .where(Leave.state.in_(states)).order_by(Leave.starts_on, Leave.id))
        if township:
            q = q.where(Supervisee.township == township)
        rows = []
        for lv, p in session.exec(q).all():
            area = rt.areas.get(lv.destination_area)
            rows.append([str(lv.id), p.case_number, p.name, lv.state, lv.destination, lv.starts_on.isoformat(),
                         lv.ends_on.isoformat(), lv.mode or "-", area.name_en if area else "-",
                         lv.returned_at.astimezone(rt.settings.zone).strftime("%Y-%m-%d %H:%M")
                         if lv.returned_at else "-", lv.reason])
    columns = [Column(say("leave.col_id"), key=True, justify="right"), Column(say("leave.col_case"), key=True),
               Column(say("leave.col_name")), Column(say("leave.col_state")), Column(say("leave.col_destination")),
               Column(say("leave.col_from")), Column(say("leave.col_to")), Column(say("leave.col_mode")),
               Column(say("leave.col_area")), Column(say("leave.col_back")), Column(say("leave.col_reason"))]
    out.print(fitted(columns, rows, width=out.width, lang=office_language(),
                     title=say("leave.listed", count=len(rows))))


def _decide(leave_id: int, officer_id: int, decision: str, note: str = "") -> None:
    rt = runtime()
    now = rt.clock.now()
    with session_scope(rt.engine) as session:
        row = session.get(Leave, leave_id)
        if row is None:
            fail(say("leave.no_such", id=leave_id), 2)
        try:
            replies = leave.decide(session, row, officer_row(session, officer_id), decision, now, rt.areas, note,
                                   actor=acting_for(officer_id))
        except leave.LeaveError as exc:
            fail(say("leave.refused", id=leave_id, why=exc.render(office_language())), 2)
        for i, reply in enumerate(replies):
            deliver(session, reply, now=now, dedupe_key=f"leave:{leave_id}:decision:{i}")
        out.print(say("leave.decided_mode" if row.mode else "leave.decided", id=leave_id, state=row.state,
                      mode=row.mode or ""), markup=False)


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
        fail(say("leave.bad_mode", value=repr(mode)), 2)
    rt = runtime()
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
