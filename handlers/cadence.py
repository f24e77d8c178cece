"""Cadence: which obligations a person has between two instants, from the policy (pure functions)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from content.policy import WEEKDAYS, Policy, QuietHours
from storage.models import ObligationKind


@dataclass(frozen=True)
class Slot:
    """One obligation to plan."""

    kind: ObligationKind
    period_key: str
    due_at: datetime
    remind_at: datetime
    window_end_at: datetime


def quiet_end_after(moment: datetime, quiet: QuietHours, zone: tzinfo) -> datetime | None:
    """If `moment` falls in quiet hours (local to `zone`), the UTC instant they end; else None."""
    local = moment.astimezone(zone)
    if not quiet.contains(local.time()):
        return None
    end_day = local.date()
    if local.time() >= quiet.end:  # quiet began this evening: it ends tomorrow morning
        end_day += timedelta(days=1)
    return _at(end_day, quiet.end, zone)


def _at(day: date, t: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, t, tzinfo=zone).astimezone(UTC)


def _out_of_quiet(moment: datetime, quiet: QuietHours, zone: tzinfo) -> datetime:
    return quiet_end_after(moment, quiet, zone) or moment


def _days(start: datetime, end: datetime, zone: tzinfo):
    day, last = start.astimezone(zone).date() - timedelta(days=1), end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        yield day
        day += timedelta(days=1)


def checkin_slots(policy: Policy, level: str, zone: tzinfo, start: datetime, end: datetime) -> list[Slot]:
    """Check-ins whose due time falls in [start, end)."""
    rule, window = policy.checkin[level], policy.window
    out = []
    for day in _days(start, end, zone):
        if day.weekday() not in rule.weekday_numbers():
            continue
        due = _out_of_quiet(_at(day, rule.time, zone), policy.quiet_hours, zone)
        if start <= due < end:
            out.append(Slot(ObligationKind.checkin, day.isoformat(), due, due + window.reminder, due + window.reply))
    return out


def report_slots(policy: Policy, level: str, zone: tzinfo, start: datetime, end: datetime) -> list[Slot]:
    """Written reports whose prompt falls in [start, end): weekly on a weekday, or monthly on a day."""
    rule = policy.report[level]
    out = []
    for day in _days(start, end, zone):
        if rule.period == "week":
            if day.weekday() != WEEKDAYS.index(rule.weekday):
                continue
            year, week, _ = day.isocalendar()
            key = f"{year}-W{week:02d}"
        else:
            if day.day != min(rule.day, calendar.monthrange(day.year, day.month)[1]):
                continue
            key = f"{day.year}-{day.month:02d}"
        due = _out_of_quiet(_at(day, rule.time, zone), policy.quiet_hours, zone)
        if start <= due < end:
            out.append(Slot(
                ObligationKind.report, key, due,
                due + timedelta(hours=rule.reminder_hours), due + timedelta(hours=rule.deadline_hours),
            ))
    return out


def study_slots(policy: Policy, zone: tzinfo, start: datetime, end: datetime) -> list[Slot]:
    """The weekly study module, whose prompt falls in [start, end)."""
    rule = policy.study
    out = []
    for day in _days(start, end, zone):
        if day.weekday() != WEEKDAYS.index(rule.weekday):
            continue
        year, week, _ = day.isocalendar()
        due = _out_of_quiet(_at(day, rule.time, zone), policy.quiet_hours, zone)
        if start <= due < end:
            out.append(Slot(ObligationKind.study, f"{year}-W{week:02d}", due,
                            due + timedelta(days=rule.reminder_days), due + timedelta(days=rule.window_days)))
    return out
