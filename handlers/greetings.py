"""Holiday greetings and announcements to everyone, in bulk: one set-based insert per language.

Each row gets the dedupe key `<broadcast key>:<supervisee id>`, so running the
same greeting again, or resuming one that was interrupted, queues nothing twice.
"""

from __future__ import annotations

import json
import logging
import re
import string
from dataclasses import dataclass, field
from datetime import date, datetime

import holidays
from sqlalchemy import String, and_, case, cast, func, literal, not_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from content.catalog import LANGUAGES, catalogue, text
from storage.models import (
    Broadcast,
    ChannelName,
    Direction,
    Message,
    MessageStatus,
    Officer,
    Status,
    Supervisee,
    UTCDateTime,
)

log = logging.getLogger(__name__)

# English holiday names (as the holidays package gives them) -> our template keys.
SLUGS = {
    "New Year's Day": "new_year",
    "Chinese New Year (Spring Festival)": "spring_festival",
    "Tomb-Sweeping Day": "qingming",
    "Labor Day": "labour_day",
    "Dragon Boat Festival": "dragon_boat",
    "Mid-Autumn Festival": "mid_autumn",
    "National Day": "national_day",
}
NO_GREETING = {"Chinese New Year's Eve"}
_HOLIDAY_LANGUAGE = {"zh-CN": "zh_CN", "en": "en_US"}


@dataclass(frozen=True)
class Holiday:
    """The first day of one public holiday, with its name in each language."""

    day: date
    slug: str
    names: dict[str, str]

    def name(self, language: str) -> str:
        return self.names.get(language) or self.names["en"]


def _slug(english: str) -> str:
    return SLUGS.get(english) or re.sub(r"[^a-z0-9]+", "_", english.lower()).strip("_")


def holidays_in(country: str, year: int) -> list[Holiday]:
    """The greeting days of `year`: the first day of each named holiday, not observed extra days."""
    supported = holidays.country_holidays(country, years=year).supported_languages or ()
    by_lang = {}
    for lang, code in _HOLIDAY_LANGUAGE.items():
        kwargs = {"language": code} if code in supported else {}
        by_lang[lang] = holidays.country_holidays(country, years=year, **kwargs)
    out: list[Holiday] = []
    seen: set[str] = set()
    for day, english in sorted(by_lang["en"].items()):
        if "(observed)" in english or english in NO_GREETING or english.lower().startswith("day off"):
            continue  # extra and swapped days off are not holidays of their own
        slug = _slug(english)
        if slug in seen:
            continue
        seen.add(slug)
        names = {"en": english.replace(" (Spring Festival)", "")}
        local = by_lang["zh-CN"].get(day)
        if local:
            names["zh-CN"] = local.split("（")[0]
        out.append(Holiday(day, slug, names))
    return out


def find_holiday(country: str, *, today: date, name: str | None = None, day: date | None = None) -> Holiday | None:
    """The holiday on `day`, or the next one (from `today`) whose key or name matches `name`."""
    if day is not None:
        return next((h for h in holidays_in(country, day.year) if h.day == day), None)
    wanted = (name or "").strip().lower()
    for year in (today.year, today.year + 1):
        for h in holidays_in(country, year):
            names = {h.slug, *(n.lower() for n in h.names.values())}
            if h.day >= today and wanted in names:
                return h
    return None


@dataclass
class Audience:
    """Who a bulk send reaches: every active person, narrowed by township, level, category."""

    township: str | None = None
    level: str | None = None
    category: str | None = None

    def where(self) -> list:
        cond = [Supervisee.status == Status.active]
        for column, value in ((Supervisee.township, self.township), (Supervisee.level, self.level),
                              (Supervisee.category, self.category)):
            if value:
                cond.append(column == value)
        return cond

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v}


def route_columns():
    """`handlers.addressing.route_for` for supervisees, as SQL: (channel, address)."""
    s = Supervisee
    telegram_ok = and_(s.telegram_chat_id.is_not(None), s.telegram_blocked_at.is_(None))
    sms_ok = and_(s.phone.is_not(None), s.sms_blocked_at.is_(None))
    use_telegram = and_(telegram_ok, or_(s.preferred_channel == ChannelName.telegram, not_(sms_ok)))
    channel = case((use_telegram, literal(ChannelName.telegram.value)),
                   (s.phone.is_not(None), literal(ChannelName.sms.value)), else_=literal(ChannelName.console.value))
    address = case((use_telegram, cast(s.telegram_chat_id, String)), (s.phone.is_not(None), s.phone),
                   else_=literal("case:") + s.case_number)
    return channel, address


def _body(template: str, extra: dict[str, str]):
    """The template as an SQL concatenation: {name} and {officer} from the row, the rest filled in."""
    parts = []
    for lit, fld, _, _ in string.Formatter().parse(template):
        if lit:
            parts.append(literal(lit, String))
        if fld == "name":
            parts.append(Supervisee.name)
        elif fld == "officer":
            parts.append(Officer.name)
        elif fld:
            parts.append(literal(extra[fld], String))
    expr = parts[0]
    for p in parts[1:]:
        expr = expr + p
    return expr


def template_key(section: str, key: str, language: str) -> str:
    """`section.key` when the catalogue has it, else `section.default`."""
    texts = catalogue(language)
    return f"{section}.{key}" if f"{section}.{key}" in texts else f"{section}.default"


@dataclass
class BulkResult:
    """What a bulk enqueue did."""

    key: str
    audience: int = 0
    queued: int = 0  # new rows this time
    by_channel: dict[str, int] = field(default_factory=dict)

    @property
    def already(self) -> int:
        """People whose row was there from an earlier run."""
        return self.audience - self.queued


def audience_by_channel(session: Session, audience: Audience) -> dict[str, int]:
    """How many people each channel would carry."""
    channel, _ = route_columns()
    rows = session.exec(select(channel, func.count()).where(*audience.where()).group_by(channel)).all()
    return {c: n for c, n in rows}


def enqueue_bulk(
    session: Session, *, key: str, kind: str, section: str, template: str, now: datetime,
    audience: Audience, holiday: Holiday | None = None, not_before: datetime | None = None,
) -> BulkResult:
    """Queue one personalised message per person in `audience`, set-based, once per key and person."""
    result = BulkResult(key, by_channel=audience_by_channel(session, audience))
    result.audience = sum(result.by_channel.values())
    channel, address = route_columns()
    dialect = session.get_bind().dialect.name
    columns = ["direction", "channel", "address", "supervisee_id", "kind", "body", "status", "attempts",
               "next_attempt_at", "dedupe_key", "created_at", "updated_at"]
    for language in LANGUAGES:
        extra = {"holiday": holiday.name(language)} if holiday else {}
        body = _body(catalogue(language)[template_key(section, template, language)], extra)
        rows = (
            select(
                literal(Direction.outbound.value), channel, address, Supervisee.id, literal(kind), body,
                literal(MessageStatus.queued.value), literal(0), literal(not_before or now, UTCDateTime()),
                literal(f"{key}:") + cast(Supervisee.id, String),
                literal(now, UTCDateTime()), literal(now, UTCDateTime()),
            )
            .join(Officer, Officer.id == Supervisee.officer_id)
            .where(Supervisee.language == language, *audience.where())
        )
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Message)
        stmt = (insert.from_select(columns, rows).on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(Message.id))  # rowcount is unreliable for INSERT ... SELECT on SQLite
        result.queued += len(session.execute(stmt).all())
    marker = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Broadcast).values(
        key=key, kind=kind, template=template, filters=json.dumps(audience.as_dict(), ensure_ascii=False),
        queued=result.queued, created_at=now)
    session.execute(marker.on_conflict_do_nothing(index_elements=["key"]))
    log.info("bulk %s: %s queued, %s already there", key, result.queued, result.already)
    return result


def sample(section: str, template: str, language: str, holiday: Holiday | None = None,
           name: str = "王伟", officer: str = "李娜") -> str:
    """One rendered message, for a dry run."""
    extra = {"holiday": holiday.name(language)} if holiday else {}
    return text(language, template_key(section, template, language), name=name, officer=officer, **extra)


def progress(session: Session, key: str) -> dict[str, int]:
    """Rows of one bulk send by status."""
    rows = session.exec(
        select(Message.status, func.count()).where(Message.dedupe_key.like(f"{key}:%")).group_by(Message.status)
    ).all()
    return {s: n for s, n in rows}


def failures(session: Session, key: str) -> dict[str, int]:
    """Failed rows of one bulk send by error code."""
    rows = session.exec(
        select(Message.error_code, func.count())
        .where(Message.dedupe_key.like(f"{key}:%"), Message.status == MessageStatus.failed)
        .group_by(Message.error_code)
    ).all()
    return {code or "?": n for code, n in rows}


def greeting_key(holiday: Holiday) -> str:
    return f"greet:{holiday.slug}:{holiday.day.isoformat()}"


def already_run(session: Session, key: str) -> bool:
    return session.exec(select(Broadcast.id).where(Broadcast.key == key)).first() is not None
