"""`checkin service ...`: community-service sessions and attendance."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import select

from bot.cli.base import acting_for, fail, instant, office_language, officer_row, out, runtime, say, service_app
from bot.tables import Column, fitted
from handlers import community_service
from storage.db import session_scope
from storage.models import ServiceAttendance, ServiceSession, Supervisee


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
    rt = runtime()
    starts, ends = instant(start, "--start"), instant(end, "--end")
    with session_scope(rt.engine) as session:
        try:
            svc = community_service.create(
                session,
                officer_row(session, officer),
                rt.policy,
                place=place,
                starts_at=starts,
                ends_at=ends,
                hours=hours,
                case_numbers=case,
                now=rt.clock.now(),
            )
        except community_service.ServiceError as exc:
            fail(exc.render(office_language()), 2)
        out.print(say("service.created", id=svc.id, count=len(case), code=svc.code), markup=False)


@service_app.command("list")
def service_list() -> None:
    """Sessions with their attendance."""
    rt = runtime()
    z = rt.settings.zone
    with session_scope(rt.engine) as session:
        rows = session.exec(select(ServiceSession).order_by(ServiceSession.starts_at)).all()
        cells = []
        for svc in rows:
            people = session.exec(select(ServiceAttendance, Supervisee).join(
                Supervisee, Supervisee.id == ServiceAttendance.supervisee_id).where(
                ServiceAttendance.session_id == svc.id)).all()
            cells.append([str(svc.id), svc.starts_at.astimezone(z).strftime("%Y-%m-%d %H:%M"),
                          "; ".join(f"{a.id} {p.case_number} {a.state} {a.hours:g}" for a, p in people),
                          svc.place, svc.ends_at.astimezone(z).strftime("%H:%M"), f"{svc.hours:g}", svc.code])
    columns = [Column(say("service.col_id"), key=True, justify="right"), Column(say("service.col_start"), key=True),
               Column(say("service.col_attendance"), key=True, wrap=True), Column(say("service.col_place")),
               Column(say("service.col_end")), Column(say("service.col_hours"), justify="right"),
               Column(say("service.col_code"))]
    out.print(fitted(columns, cells, width=out.width, lang=office_language(),
                     title=say("service.listed", count=len(cells))))


@service_app.command("verify")
def service_verify(
    attendance: Annotated[int, typer.Argument(help="Attendance id (see `checkin service list`)")],
    officer: Annotated[int, typer.Option("--officer")],
    hours: Annotated[float | None, typer.Option("--hours", help="Correct the hours credited")] = None,
    absent: Annotated[bool, typer.Option("--absent", help="Mark the person absent")] = False,
) -> None:
    """Verify an attendance (crediting the session's hours or corrected ones), or mark it absent."""
    rt = runtime()
    with session_scope(rt.engine) as session:
        try:
            a = community_service.verify(session, officer_row(session, officer), attendance, rt.clock.now(),
                                         hours=hours, absent=absent, actor=acting_for(officer))
        except community_service.ServiceError as exc:
            fail(exc.render(office_language()), 2)
        out.print(say("service.verified", id=a.id, state=a.state, hours=f"{a.hours:g}"), markup=False)
