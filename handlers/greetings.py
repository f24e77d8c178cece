"""Holiday greetings and announcements to everyone, in bulk: rendered and inserted a chunk at a time.

Each row gets the dedupe key `<broadcast key>:<supervisee id>`, so running the
same greeting again, or resuming one that was interrupted, queues nothing twice.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import holidays
from sqlalchemy import Text, and_, case, func, literal, not_, or_, select, type_coerce
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

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
)
from storage.crypto import keyring_for

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


def route_column():
    """The channel `handlers.addressing.route_for` picks for a supervisee, as SQL."""
    s = Supervisee
    telegram_ok = and_(s.telegram_chat_id.is_not(None), s.telegram_blocked_at.is_(None))
    sms_ok = and_(s.phone.is_not(None), s.sms_blocked_at.is_(None))
    use_telegram = and_(telegram_ok, or_(s.preferred_channel == ChannelName.telegram, not_(sms_ok)))
    return case((use_telegram, literal(ChannelName.telegram.value)),
                (s.phone.is_not(None), literal(ChannelName.sms.value)), else_=literal(ChannelName.console.value))


def _address(channel: str, row, unseal) -> str:
    if channel == ChannelName.telegram:
        return str(row.telegram_chat_id)
    if channel == ChannelName.sms:
        return unseal("supervisee.phone", row.phone)
    return f"case:{row.case_number}"


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
    channel = route_column()
    rows = session.exec(select(channel, func.count()).where(*audience.where()).group_by(channel)).all()
    return {c: n for c, n in rows}


CHUNK = 2000  # people read, rendered and inserted at a time

# The personal columns are encrypted here, and the rows go in without per-row bind processing, which
# would cost more than the insert (100,000 greetings on PostgreSQL: 17.8 s that way, 5.2 s this way).
# SQLite takes an executemany; PostgreSQL a COPY into a temporary table, then one INSERT ... SELECT.
_COLUMNS = ("direction", "channel", "address", "supervisee_id", "kind", "body", "status", "attempts",
            "next_attempt_at", "dedupe_key", "created_at", "updated_at")
_STAGE = "checkin_bulk_stage"
_INSERT_SQLITE = (f"INSERT INTO message ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
                  "ON CONFLICT (dedupe_key) DO NOTHING")
OUT, QUEUED = Direction.outbound.value, MessageStatus.queued.value


class _Writer:
    """Takes (channel, sealed address, supervisee id, sealed body, dedupe key) rows; says how many were new."""

    def __init__(self, session: Session, *, kind: str, now: datetime, due: datetime) -> None:
        self.session, self.kind = session, kind
        self.pg = session.get_bind().dialect.name == "postgresql"
        # Naive UTC, as UTCDateTime stores it; on SQLite in the text form SQLAlchemy writes there.
        self.now, self.due = (t.astimezone(UTC).replace(tzinfo=None) for t in (now, due))
        if not self.pg:
            self.now, self.due = (t.isoformat(sep=" ", timespec="microseconds") for t in (self.now, self.due))
        self.new = 0
        if self.pg:
            session.execute(sql_text(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (channel text, address text, supervisee_id int, "
                "body text, dedupe_key text) ON COMMIT DROP"))
            session.execute(sql_text(f"TRUNCATE {_STAGE}"))

    def add(self, rows: list[tuple]) -> None:
        conn = self.session.connection()
        if self.pg:
            with conn.connection.driver_connection.cursor() as cur, cur.copy(
                    f"COPY {_STAGE} (channel, address, supervisee_id, body, dedupe_key) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        cursor = conn.exec_driver_sql(_INSERT_SQLITE, [
            (OUT, ch, address, sid, self.kind, body, QUEUED, 0, self.due, dedupe, self.now, self.now)
            for ch, address, sid, body, dedupe in rows])
        self.new += cursor.rowcount  # sqlite3 sums an executemany's rows

    def finish(self) -> int:
        if self.pg:
            self.new += self.session.execute(sql_text(
                f"INSERT INTO message ({', '.join(_COLUMNS)}) SELECT :out, channel, address, supervisee_id, :kind, "
                f"body, :queued, 0, :due, dedupe_key, :now, :now FROM {_STAGE} ON CONFLICT (dedupe_key) DO NOTHING"),
                dict(out=OUT, queued=QUEUED, kind=self.kind, due=self.due, now=self.now)).rowcount
            self.session.execute(sql_text(f"TRUNCATE {_STAGE}"))
        return self.new


def enqueue_bulk(
    session: Session, *, key: str, kind: str, section: str, template: str, now: datetime,
    audience: Audience, holiday: Holiday | None = None, not_before: datetime | None = None,
) -> BulkResult:
    """Queue one personalised message per person in `audience`, once per key and person.

    Names and numbers are stored encrypted, so the messages are rendered here,
    a chunk of people at a time, and inserted in one statement per chunk;
    people who already have their row (a re-run, a resumed send) are left out
    by the query, so a resume costs no encryption.
    """
    result = BulkResult(key, by_channel=audience_by_channel(session, audience))
    result.audience = sum(result.by_channel.values())
    channel = route_column().label("channel")
    dialect = session.get_bind().dialect.name
    seal, unseal = keyring_for(session).encrypt, keyring_for(session).decrypt
    officers: dict[int, str] = {}
    prefix = f"{key}:"
    # Who has their row already (a re-run, a resumed send): read once, left out before any encryption.
    # (A NOT EXISTS in each chunk's query re-read the growing message table every time: 9 s at 100,000.)
    session.flush()
    writer = _Writer(session, kind=kind, now=now, due=not_before or now)
    already = {int(k[len(prefix):]) for (k,) in session.execute(
        select(Message.dedupe_key).where(Message.kind == kind, col(Message.dedupe_key).startswith(prefix)))}
    for language in LANGUAGES:
        extra = {"holiday": holiday.name(language)} if holiday else {}
        body = catalogue(language)[template_key(section, template, language)]
        # One query per language, read a chunk at a time (a server-side cursor on PostgreSQL).
        found = session.execute(
            select(Supervisee.id, type_coerce(Supervisee.name, Text).label("name"),
                   type_coerce(Supervisee.phone, Text).label("phone"), Supervisee.telegram_chat_id,
                   Supervisee.case_number, Supervisee.officer_id, channel)  # sealed: opened only when needed
            .where(Supervisee.language == language, *audience.where()).order_by(Supervisee.id)
            .execution_options(yield_per=CHUNK))
        for chunk in found.partitions():
            people = [p for p in chunk if p.id not in already]
            if not people:
                continue
            missing = {p.officer_id for p in people} - officers.keys()
            if missing:
                officers.update(session.execute(select(Officer.id, Officer.name)
                                                .where(col(Officer.id).in_(missing))).all())
            rows = [(p.channel, seal("message.address", _address(p.channel, p, unseal)), p.id,
                     seal("message.body", body.format(name=unseal("supervisee.name", p.name),
                                                      officer=officers.get(p.officer_id, ""), **extra)),
                     f"{prefix}{p.id}") for p in people]
            writer.add(rows)
    result.queued = writer.finish()
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
