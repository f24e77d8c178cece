"""Community service: sessions with an attendance code, confirmation on site, the officer's verification."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, select

from content.catalog import text
from content.formatting import day_and_time, duration, hm
from content.policy import Policy
from content.refusals import Refused
from handlers.contract import Button, Context, Inbound, Recipient, Reply, SenderKind, target, zone_of
from handlers.officer import can_see
from storage import audit, queries
from storage.models import (
    Obligation,
    ObligationKind,
    ObligationState,
    Officer,
    ServiceAttendance,
    ServiceSession,
    Supervisee,
)

log = logging.getLogger(__name__)



class ServiceError(Refused):
    """A session or a verification that cannot be made; `render` says why in the reader's language."""

    section = "service"


def _fmt_hours(hours: float) -> str:
    return f"{hours:g}"


def create(
    session: Session,
    officer: Officer,
    policy: Policy,
    *,
    place: str,
    starts_at: datetime,
    ends_at: datetime,
    hours: float,
    case_numbers: list[str],
    now: datetime,
) -> ServiceSession:
    """A session, its attendees, and for each an obligation: announced a day before, reminded two hours before,
    open until the session ends."""
    if ends_at <= starts_at:
        raise ServiceError("end_before_start")
    if not 0 < hours <= 24:
        raise ServiceError("bad_hours", hours=f"{hours:g}")
    if ends_at <= now:
        raise ServiceError("over")
    people = []
    for case in case_numbers:
        person = queries.supervisee_by_case(session, case)
        if person is None:
            raise ServiceError("no_person", case=repr(case))
        if not can_see(session, officer, person):
            raise ServiceError("not_in_caseload", case=case, officer=officer.id)
        people.append(person)
    if not people:
        raise ServiceError("nobody")
    svc = ServiceSession(place=place.strip()[:200], township=officer.township, starts_at=starts_at, ends_at=ends_at,
                         hours=hours, code=f"{secrets.randbelow(10000):04d}", officer_id=officer.id, created_at=now)
    session.add(svc)
    session.flush()
    for person in people:
        due = max(now, starts_at - timedelta(hours=policy.service.announce_hours))
        ob = Obligation(supervisee_id=person.id, kind=ObligationKind.service, period_key=f"svc{svc.id}", due_at=due,
                        remind_at=max(due, starts_at - timedelta(hours=policy.service.remind_hours)),
                        window_end_at=ends_at,
                        state=ObligationState.planned, next_check_at=due, created_at=now)
        session.add(ob)
        session.flush()
        session.add(ServiceAttendance(session_id=svc.id, supervisee_id=person.id, obligation_id=ob.id))
    session.flush()
    log.info("service session %s created by officer %s for %s people", svc.id, officer.id, len(people))
    return svc


def _session_of(session: Session, ob: Obligation) -> ServiceSession:
    return session.get(ServiceSession, int(ob.period_key.removeprefix("svc")))


def prompt(session: Session, ob: Obligation, person: Supervisee, zone: tzinfo, *, reminder: bool = False) -> Reply:
    """The announcement the day before, or the reminder two hours before."""
    svc, lang = _session_of(session, ob), person.language
    values = dict(day=day_and_time(svc.starts_at, zone, lang).split(" ")[0], start=hm(svc.starts_at, zone),
                  end=hm(svc.ends_at, zone), place=svc.place, hours=_fmt_hours(svc.hours))
    return Reply(text(lang, "service.reminder" if reminder else "service.prompt", **values),
                 to=Recipient(SenderKind.supervisee, person.id),
                 kind="service_reminder" if reminder else "service_prompt")


async def attend(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/attend CODE, ATTEND CODE, 签到 CODE: confirm attendance during the session."""
    person, s, now, lang = ctx.sender.supervisee, ctx.session, ctx.now, ctx.language
    code = re.sub(r"\s+", "", ctx.args)
    if not code:
        return [Reply(text(lang, "service.usage"))]
    expected = s.exec(
        select(ServiceAttendance, ServiceSession)
        .join(ServiceSession, ServiceSession.id == ServiceAttendance.session_id)
        .where(ServiceAttendance.supervisee_id == person.id, ServiceAttendance.state == "expected")
        .order_by(ServiceSession.starts_at)
    ).all()
    matching = [(a, svc) for a, svc in expected if secrets.compare_digest(svc.code, code)]
    if not matching:
        log.info("supervisee %s: wrong attendance code", person.id)
        return [Reply(text(lang, "service.wrong_code"))]
    zone = zone_of(person, ctx.zone)
    current = [(a, svc) for a, svc in matching if svc.starts_at <= now <= svc.ends_at]
    if not current:
        svc = matching[0][1]
        return [Reply(text(lang, "service.outside", start=day_and_time(svc.starts_at, zone, lang),
                           end=hm(svc.ends_at, zone)))]
    attendance, svc = current[0]
    attendance.state, attendance.confirmed_at = "confirmed", now
    s.add(attendance)
    if attendance.obligation_id:
        ob = s.get(Obligation, attendance.obligation_id)
        ob.state, ob.answered_at, ob.next_check_at = ObligationState.done, now, None
        s.add(ob)
    person.last_contact_kind = "service"
    officer = s.get(Officer, svc.officer_id)
    log.info("service attendance %s confirmed", attendance.id)
    return [
        Reply(text(lang, "service.confirmed", place=svc.place, start=hm(svc.starts_at, zone), end=hm(svc.ends_at, zone),
                   hours=_fmt_hours(svc.hours))),
        Reply(text(officer.language, "service.to_officer", name=person.name, case_number=person.case_number,
                   place=svc.place, time=hm(now, ctx.zone)),
              buttons=[Button(text(officer.language, "service.verify", hours=_fmt_hours(svc.hours)),
                              f"svc:{attendance.id}:ok"),
                       Button(text(officer.language, "service.absent"), f"svc:{attendance.id}:absent")],
              to=Recipient(SenderKind.officer, officer.id), kind="service_check"),
    ]


def verify(session: Session, officer: Officer, attendance_id: int, now: datetime, *, hours: float | None = None,
           absent: bool = False, actor: str | None = None) -> ServiceAttendance:
    """The officer's word: hours credited (the session's, or corrected), or absent."""
    attendance = session.get(ServiceAttendance, attendance_id)
    if attendance is None:
        raise ServiceError("no_attendance", id=attendance_id)
    person = session.get(Supervisee, attendance.supervisee_id)
    if not can_see(session, officer, person):
        raise ServiceError("not_in_caseload", case=person.case_number, officer=officer.id)
    svc = session.get(ServiceSession, attendance.session_id)
    if hours is not None and not 0 <= hours <= 24:
        raise ServiceError("bad_verified_hours", hours=f"{hours:g}")
    attendance.state = "absent" if absent else "verified"
    attendance.hours = 0.0 if absent else (svc.hours if hours is None else hours)
    attendance.verified_at, attendance.verified_by = now, officer.id
    session.add(attendance)
    audit.append(session, actor=actor or f"officer:{officer.id}", action=f"service.{attendance.state}", now=now,
                 supervisee_id=person.id, subject=f"attendance:{attendance.id}", details={"hours": attendance.hours})
    log.info("service attendance %s %s by officer %s", attendance.id, attendance.state, officer.id)
    return attendance


async def verify_button(inbound: Inbound, ctx: Context) -> list[Reply]:
    """An officer's button on an attendance: `svc:ID:ok` or `svc:ID:absent`."""
    found = target(inbound.button, "")
    if ctx.sender.kind is not SenderKind.officer or found is None or found.id is None or len(found.rest) != 1:
        return [Reply(text(ctx.language, "fallback.not_understood"))]
    try:
        attendance = verify(ctx.session, ctx.sender.officer, found.id, ctx.now, absent=found.arg(0) == "absent")
    except ServiceError:
        return [Reply(text(ctx.language, "officer.not_yours", case=f"#{found.ref}"))]
    person = ctx.session.get(Supervisee, attendance.supervisee_id)
    key = "service.marked_absent" if attendance.state == "absent" else "service.verified"
    return [Reply(text(ctx.language, key, name=person.name, hours=_fmt_hours(attendance.hours),
                       officer=ctx.sender.officer.name), edit_origin=True)]


async def create_by_chat(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/service 2027-03-05 09:00-12:00 3 place CASE,CASE: an officer sets a session from the chat."""
    m = re.match(r"^(\d{4}-\d{2}-\d{2})\s+(\d{1,2}:\d{2})-(\d{1,2}:\d{2})\s+(\d+(?:\.\d+)?)\s+(.+?)\s+([\w,\-/]+)$",
                 ctx.args)
    if not m:
        return [Reply(text(ctx.language, "service.usage_officer"))]
    day, start, end, hours, place, cases = m.groups()
    try:
        starts = datetime.fromisoformat(f"{day}T{start.zfill(5)}").replace(tzinfo=ctx.zone)
        ends = datetime.fromisoformat(f"{day}T{end.zfill(5)}").replace(tzinfo=ctx.zone)
        svc = create(ctx.session, ctx.sender.officer, ctx.policy, place=place, starts_at=starts, ends_at=ends,
                     hours=float(hours), case_numbers=cases.split(","), now=ctx.now)
    except (ValueError, ServiceError) as exc:
        return [Reply(f"{text(ctx.language, 'service.usage_officer')}\n({exc})")]
    count = len(cases.split(","))
    return [Reply(text(ctx.language, "service.created", id=svc.id, place=svc.place,
                       start=day_and_time(svc.starts_at, ctx.zone, ctx.language), end=hm(svc.ends_at, ctx.zone),
                       count=count, code=svc.code))]


def verified_hours(session: Session, start: datetime, end: datetime,
                   ids: list[int] | None = None) -> dict[int, float]:
    """Hours verified for sessions that started in [start, end), per person who has any (optionally only `ids`)."""
    query = (
        select(ServiceAttendance.supervisee_id, func.sum(ServiceAttendance.hours))
        .join(ServiceSession, ServiceSession.id == ServiceAttendance.session_id)
        .where(ServiceAttendance.state == "verified", ServiceSession.starts_at >= start, ServiceSession.starts_at < end)
        .group_by(ServiceAttendance.supervisee_id)
    )
    if ids is not None:
        query = query.where(ServiceAttendance.supervisee_id.in_(ids))
    return {pid: float(h or 0) for pid, h in session.exec(query).all()}


def credited(start: datetime, end: datetime) -> ColumnElement:
    """Service minutes verified for sessions that started in [start, end), of the `Supervisee` row of the
    enclosing query (0 when none): an expression, counted by the database."""
    hours = (select(func.sum(ServiceAttendance.hours))
             .join(ServiceSession, ServiceSession.id == ServiceAttendance.session_id)
             .where(ServiceAttendance.supervisee_id == Supervisee.id, ServiceAttendance.state == "verified",
                    ServiceSession.starts_at >= start, ServiceSession.starts_at < end)
             .correlate(Supervisee).scalar_subquery())
    return func.round(func.coalesce(hours, 0) * 60)


def minutes_credited(session: Session, start: datetime, end: datetime, ids: list[int] | None = None) -> dict[int, int]:
    """Service minutes verified in [start, end) per person under supervision (optionally only `ids`)."""
    return queries.supervised_tally(session, credited(start, end), ids)


def shortfall_reminder(person: Supervisee, minutes: int, required: int) -> Reply:
    """This month's service so far, and what is missing."""
    lang = person.language
    return Reply(text(lang, "service.shortfall", month=duration(minutes, lang),
                      missing=duration(max(0, required - minutes), lang), required=duration(required, lang)),
                 to=Recipient(SenderKind.supervisee, person.id), kind="service_shortfall")

