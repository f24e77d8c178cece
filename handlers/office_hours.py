"""When the office works: alerts that are not urgent wait for it (policy `[escalation]` working days and hours)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

import holidays

from content.policy import Policy


@lru_cache(maxsize=32)
def _calendar(country: str, year: int) -> holidays.HolidayBase | None:
    try:
        return holidays.country_holidays(country, years=year)
    except NotImplementedError:  # a country the library does not know: weekdays only
        return None


def is_working_day(day: date, policy: Policy, country: str) -> bool:
    """A working day: the policy's weekdays, less public holidays, plus the weekend days a country makes up
    for them (China's 调休 Saturdays), as the `holidays` library knows them."""
    rule = policy.escalation
    cal = _calendar(country, day.year) if rule.public_holidays_off else None
    if cal is None:
        return day.weekday() in rule.working_day_numbers()
    if day in cal:
        return False
    makeup = day.weekday() >= 5 and cal.is_working_day(day)  # a weekend day worked in exchange for a holiday
    return day.weekday() in rule.working_day_numbers() or makeup


def office_open_at(moment: datetime, policy: Policy, zone: tzinfo, country: str) -> datetime:
    """`moment` if it falls in working hours, else the next opening (UTC)."""
    rule = policy.escalation
    local = moment.astimezone(zone)
    day = local.date()
    if is_working_day(day, policy, country) and rule.working_start <= local.time() < rule.working_end:
        return moment
    if local.time() >= rule.working_start or not is_working_day(day, policy, country):
        day += timedelta(days=1)
    for _ in range(60):  # Spring Festival and National Day are a week at most
        if is_working_day(day, policy, country):
            return datetime.combine(day, rule.working_start, tzinfo=zone).astimezone(UTC)
        day += timedelta(days=1)
    return moment  # a policy with no working day in two months: never hold an alert back
