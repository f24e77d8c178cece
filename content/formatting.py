"""Dates, times and phone numbers as a person reads them, in their language (Babel, phonenumbers)."""

from __future__ import annotations

from datetime import datetime, tzinfo

import phonenumbers
from babel.dates import format_skeleton

from content.catalog import text

_LOCALES = {"zh-CN": "zh_Hans_CN", "en": "en"}


def locale(language: str) -> str:
    """The Babel locale of a catalogue language."""
    return _LOCALES.get(language, "zh_Hans_CN")


def hm(moment: datetime, zone: tzinfo) -> str:
    """`13:00` in the reader's time zone."""
    return moment.astimezone(zone).strftime("%H:%M")


def day_and_time(moment: datetime, zone: tzinfo, language: str) -> str:
    """`3月1日 09:12` / `Mar 1 09:12` in the reader's time zone."""
    local = moment.astimezone(zone)
    return f"{format_skeleton('MMMd', local, locale=locale(language))} {local:%H:%M}"


def when(moment: datetime, zone: tzinfo, language: str, now: datetime, words: dict[str, str]) -> str:
    """`13:00` today, `明天 09:00` tomorrow, else the day and time; `words` gives today/tomorrow."""
    local, today = moment.astimezone(zone), now.astimezone(zone)
    days = (local.date() - today.date()).days
    if days == 0:
        return f"{words['today']} {local:%H:%M}"
    if days == 1:
        return f"{words['tomorrow']} {local:%H:%M}"
    return day_and_time(moment, zone, language)


def phone_national(e164: str | None) -> str:
    """`138 1234 5678` for an officer to dial; empty when unknown."""
    if not e164:
        return ""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return e164


MOBILE_TYPES = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}


def is_mobile(e164: str) -> bool:
    """Whether an E.164 number can take SMS (a mobile, or a number that may be one); a landline takes calls only."""
    try:
        return phonenumbers.number_type(phonenumbers.parse(e164)) in MOBILE_TYPES
    except phonenumbers.NumberParseException:
        return False


def duration(minutes: int, language: str) -> str:
    """`7小时30分钟` / `7 h 30 min`."""
    return text(language, "study.duration", h=minutes // 60, m=minutes % 60)
