"""The monthly compliance report: per township and for the county, from the database alone."""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta, tzinfo

from sqlalchemy import func
from sqlmodel import Session, select

from content.policy import Policy
from handlers.community_service import verified_hours
from handlers.formal_warnings import standing_ids
from storage.models import (
    Escalation,
    Obligation,
    ObligationKind,
    ObligationState,
    Status,
    StudyProgress,
    Supervisee,
)

COUNTY = "*"


@dataclass
class Figures:
    """One line of the report."""

    township: str
    active: int = 0
    not_yet_active: int = 0  # supervision starts later in the month than the report's date
    paused: int = 0  # paused on the report's date (hospital, detention, court): counted apart, in no rate
    due: int = 0
    on_time: int = 0
    late: int = 0
    no_location: int = 0  # answered without the location the check-in required
    missed: int = 0
    response_rate: float | None = None  # answered (on time, late or partial) / due
    escalations: int = 0
    acknowledged_in_sla: int = 0
    to_supervisor: int = 0
    lost_contact: int = 0
    lost_per_mille: float | None = None
    study_hours: float = 0.0
    under_study: int = 0
    service_hours: float = 0.0
    under_service: int = 0
    warnings: int = 0

    def finish(self) -> None:
        """Derive the rates; None where there is nothing to divide by."""
        self.response_rate = (self.on_time + self.late + self.no_location) / self.due if self.due else None
        self.lost_per_mille = self.lost_contact * 1000 / self.active if self.active else None

    def add(self, other: Figures) -> None:
        for f in fields(self):
            if f.name not in ("township", "response_rate", "lost_per_mille"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_row(self) -> dict:
        return asdict(self)


def normalise_month(month: str) -> str:
    """`YYYY-MM` from `YYYY-M`, `YYYY-MM` or `YYYY/MM`; ValueError naming the value otherwise."""
    parts = month.strip().replace("/", "-").split("-")
    try:
        if len(parts) != 2 or len(parts[0]) != 4:
            raise ValueError
        first = date(int(parts[0]), int(parts[1]), 1)
    except ValueError:
        raise ValueError(f"month {month!r}: expected YYYY-MM, e.g. 2027-03") from None
    return f"{first:%Y-%m}"


def month_bounds(month: str, zone: tzinfo) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of `YYYY-MM`, local to `zone`."""
    year, mon = (int(x) for x in normalise_month(month).split("-"))
    first = date(year, mon, 1)
    last = date(year, mon, calendar.monthrange(year, mon)[1])
    start = datetime(first.year, first.month, 1, tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return start, end


def report(session: Session, month: str, *, zone: tzinfo, policy: Policy, now: datetime,
           township: str | None = None) -> list[Figures]:
    """The figures per township (sorted), then the county line (township `*`)."""
    start, end = month_bounds(month, zone)
    upto = min(end, now)
    first_day, last_day = start.date(), (end - timedelta(days=1)).date()
    people_q = select(Supervisee).where(Supervisee.supervision_start <= last_day,
                                        Supervisee.supervision_end >= first_day, Supervisee.created_at < end)
    if township:
        people_q = people_q.where(Supervisee.township == township)
    people = {p.id: p for p in session.exec(people_q)}
    by_town: dict[str, Figures] = {}
    today = upto.astimezone(zone).date() if upto > start else first_day
    for pid, p in list(people.items()):
        line = by_town.setdefault(p.township, Figures(p.township))
        if p.supervision_start > today:  # not begun by the report's date: counted apart, in no rate
            line.not_yet_active += 1
            del people[pid]
        elif p.paused_from is not None and p.paused_from <= today <= p.paused_until:
            line.paused += 1
            del people[pid]
        else:
            line.active += 1
    ids = list(people)

    def town(pid: int) -> Figures:
        return by_town[people[pid].township]

    if ids:
        for pid, state, n in session.exec(
            select(Obligation.supervisee_id, Obligation.state, func.count())
            .where(Obligation.kind == ObligationKind.checkin, Obligation.due_at >= start, Obligation.due_at < upto,
                   Obligation.supervisee_id.in_(ids),
                   Obligation.state.in_([ObligationState.done, ObligationState.late, ObligationState.partial,
                                         ObligationState.missed]))
            .group_by(Obligation.supervisee_id, Obligation.state)
        ).all():
            f = town(pid)
            f.due += n
            f.on_time += n if state == ObligationState.done else 0
            f.late += n if state == ObligationState.late else 0
            f.no_location += n if state == ObligationState.partial else 0
            f.missed += n if state == ObligationState.missed else 0
        sla = policy.escalation.officer_sla
        for esc in session.exec(select(Escalation).where(Escalation.opened_at >= start, Escalation.opened_at < upto,
                                                         Escalation.supervisee_id.in_(ids))):
            f = town(esc.supervisee_id)
            f.escalations += 1
            if esc.acknowledged_at is not None and esc.acknowledged_at - esc.opened_at <= sla:
                f.acknowledged_in_sla += 1
            if esc.supervisor_notified_at is not None:
                f.to_supervisor += 1
        for pid in lost_contact(session, people, upto, policy.report_figures.lost_contact_days, zone):
            town(pid).lost_contact += 1
        minutes = dict(session.exec(
            select(StudyProgress.supervisee_id, func.sum(StudyProgress.minutes))
            .where(StudyProgress.state == "passed", StudyProgress.passed_at >= start, StudyProgress.passed_at < upto,
                   StudyProgress.supervisee_id.in_(ids))
            .group_by(StudyProgress.supervisee_id)).all())
        for pid in ids:
            town(pid).study_hours += (minutes.get(pid) or 0) / 60
            if (minutes.get(pid) or 0) < policy.study.monthly_minutes:
                town(pid).under_study += 1
        hours = verified_hours(session, start, upto, ids)
        for pid in ids:
            town(pid).service_hours += hours.get(pid, 0.0)
            if hours.get(pid, 0.0) * 60 < policy.service.monthly_minutes:
                town(pid).under_service += 1
        for pid, n in standing_ids(session, start, upto).items():
            if pid in people:
                town(pid).warnings += n
    lines = [by_town[t] for t in sorted(by_town)]
    county = Figures(COUNTY)
    for line in lines:
        line.finish()
        county.add(line)
    county.finish()
    return lines + [county]


def lost_contact(session: Session, people: dict[int, Supervisee], at: datetime, days: int, zone: tzinfo) -> set[int]:
    """People in lost contact at `at`: status lost_contact, or no answered obligation and no officer
    reaching them for `days` days (counted from the start of supervision for newcomers)."""
    since = at - timedelta(days=days)
    ids = [pid for pid, p in people.items() if p.status != Status.ended or p.supervision_end >= since.date()]
    answered = dict(session.exec(
        select(Obligation.supervisee_id, func.max(Obligation.answered_at))
        .where(Obligation.supervisee_id.in_(ids), Obligation.answered_at.is_not(None), Obligation.answered_at < at)
        .group_by(Obligation.supervisee_id)).all()) if ids else {}
    reached = dict(session.exec(
        select(Escalation.supervisee_id, func.max(Escalation.resolved_at))
        .where(Escalation.supervisee_id.in_(ids), Escalation.resolution == "reached", Escalation.resolved_at < at)
        .group_by(Escalation.supervisee_id)).all()) if ids else {}
    lost = set()
    for pid in ids:
        p = people[pid]
        if p.status == Status.lost_contact:
            lost.add(pid)
            continue
        if p.paused_from is not None and p.paused_from <= at.astimezone(zone).date() <= p.paused_until:
            continue  # paused (hospital, detention): nothing is owed, so nothing is lost
        # Newcomers (to supervision, or to this system) are measured from when they started, and people back
        # from a pause from its end.
        began = max(datetime.combine(p.supervision_start, datetime.min.time(), tzinfo=zone), p.created_at)
        if p.paused_until is not None and p.paused_until < at.astimezone(zone).date():
            began = max(began, datetime.combine(p.paused_until + timedelta(days=1), datetime.min.time(),
                                                tzinfo=zone))
        last = max([t for t in (answered.get(pid), reached.get(pid), began) if t is not None])
        if last < since:
            lost.add(pid)
    return lost


