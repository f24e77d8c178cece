"""Holiday greetings and announcements to everyone, in bulk: queued set-based, rendered when sent.

Each row gets the dedupe key `<broadcast key>:<supervisee id>`, so running the
same greeting again, or resuming one that was interrupted, queues nothing twice.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo

import holidays
from sqlalchemy import String, Text, and_, bindparam, case, cast, func, literal, not_, or_, select, update
from sqlmodel import Session, col

from content.catalog import LANGUAGES, catalogue, text
from handlers.addressing import console_address
from storage import outbox
from storage.crypto import keyring_for
from storage.db import insert_ignoring
from storage.models import (
    SUPERVISED,
    Broadcast,
    ChannelName,
    Direction,
    Message,
    MessageStatus,
    Officer,
    Supervisee,
    UTCDateTime,
)
from storage.outbox import Outgoing

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
    last: date | None = None  # the last day of the holiday (the first, for a one-day holiday)

    def ends_at(self, zone: tzinfo) -> datetime:
        """The instant the holiday is over, local to `zone`: a greeting not sent by then is not sent."""
        return datetime.combine((self.last or self.day) + timedelta(days=1), time(0), tzinfo=zone)

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
    last: dict[str, date] = {}
    for day, english in sorted(by_lang["en"].items()):
        if "(observed)" in english or english in NO_GREETING or english.lower().startswith("day off"):
            continue  # extra and swapped days off are not holidays of their own
        slug = _slug(english)
        if slug in last:
            if day == last[slug] + timedelta(days=1):  # the same holiday goes on
                last[slug] = day
            continue
        last[slug] = day
        names = {"en": english.replace(" (Spring Festival)", "")}
        local = by_lang["zh-CN"].get(day)
        if local:
            names["zh-CN"] = local.split("（")[0]
        out.append(Holiday(day, slug, names))
    return [replace(h, last=last[h.slug]) for h in out]


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
        cond = [col(Supervisee.status).in_(SUPERVISED)]
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
    use_voice = and_(s.preferred_channel == ChannelName.voice, s.phone.is_not(None))
    return case((use_voice, literal(ChannelName.voice.value)), (use_telegram, literal(ChannelName.telegram.value)),
                (s.phone.is_not(None), literal(ChannelName.sms.value)), else_=literal(ChannelName.console.value))


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


RENDER = "render"  # the payload key of a bulk row whose text and address are written when it is claimed


def enqueue_bulk(
    session: Session, *, key: str, kind: str, section: str, template: str, now: datetime,
    audience: Audience, holiday: Holiday | None = None, not_before: datetime | None = None,
    expires_at: datetime | None = None, texts: dict[str, str] | None = None,
) -> BulkResult:
    """Queue one message per person in `audience`, set-based, once per key and person.

    Names and numbers are stored encrypted, so SQL cannot personalise the
    text: each row is queued with the channel chosen, an empty text and
    address, and (in its payload) the template to render; `render_claimed`
    writes the person's text and address when the drain claims the row. The
    crypto work is spread over the sending, which the rate limits make take
    far longer anyway; the enqueue stays one statement per language.
    """
    result = BulkResult(key, by_channel=audience_by_channel(session, audience))
    result.audience = sum(result.by_channel.values())
    channel = route_column()
    seal = keyring_for(session).encrypt
    columns = ["direction", "channel", "address", "supervisee_id", "kind", "body", "payload", "status", "attempts",
               "next_attempt_at", "dedupe_key", "created_at", "updated_at", "expires_at"]
    # Sealed once per statement: the same ciphertext in every row (it says nothing about anyone).
    empty_address, empty_body = seal("message.address", ""), seal("message.body", "")
    for language in LANGUAGES:
        if texts is not None:  # an administrator's own words (checked by `free_text_problem`), per language
            spec = {RENDER: {"text": texts[language], "language": language, "extra": {}}}
        else:
            spec = {RENDER: {"template": template_key(section, template, language), "language": language,
                             "extra": {"holiday": holiday.name(language)} if holiday else {}}}
        rows = (
            select(
                literal(Direction.outbound.value), channel, literal(empty_address, Text), Supervisee.id,
                literal(kind), literal(empty_body, Text),
                literal(seal("message.payload", json.dumps(spec, ensure_ascii=False)), Text),
                literal(MessageStatus.queued.value), literal(0), literal(not_before or now, UTCDateTime()),
                literal(f"{key}:") + cast(Supervisee.id, String),
                literal(now, UTCDateTime()), literal(now, UTCDateTime()), literal(expires_at, UTCDateTime()),
            )
            .where(Supervisee.language == language, *audience.where())
        )
        insert = insert_ignoring(session, Message)
        stmt = (insert.from_select(columns, rows).on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(Message.id))  # rowcount is unreliable for INSERT ... SELECT on SQLite
        result.queued += sum(1 for _ in session.execute(stmt))  # counted as they come: not 100,000 rows held
    marker = insert_ignoring(session, Broadcast).values(
        key=key, kind=kind, template=template, filters=json.dumps(audience.as_dict(), ensure_ascii=False),
        queued=result.queued, created_at=now)
    session.execute(marker.on_conflict_do_nothing(index_elements=["key"]))
    log.info("bulk %s: %s queued, %s already there", key, result.queued, result.already)
    return result


def _address(channel: str, person) -> str | None:
    if channel == ChannelName.telegram:
        return str(person.telegram_chat_id) if person.telegram_chat_id is not None else None
    if channel == ChannelName.sms:
        return person.phone
    return console_address(person)


def render_claimed(session: Session, rows: list[Outgoing], now: datetime) -> list[Outgoing]:
    """Write the text and address of the claimed bulk rows among `rows` (in the claim's transaction).

    The channel was chosen when the row was queued; the address is the
    person's on that channel now. A row whose person no longer has one (a
    chat unbound, a number removed or purged) fails, as a send to nowhere would.
    """
    pending = [r for r in rows if RENDER in r.payload]
    if not pending:
        return rows
    people = {p.id: p for p in session.execute(
        select(Supervisee.id, Supervisee.name, Supervisee.phone, Supervisee.telegram_chat_id, Supervisee.case_number,
               Supervisee.officer_id, Supervisee.purged_at)
        .where(col(Supervisee.id).in_({r.supervisee_id for r in pending})))}
    officers = dict(session.execute(select(Officer.id, Officer.name).where(
        col(Officer.id).in_({p.officer_id for p in people.values()}))).all())
    out, updates = [], []
    for row in rows:
        spec = row.payload.get(RENDER)
        if spec is None:
            out.append(row)
            continue
        person = people.get(row.supervisee_id)
        address = _address(row.channel, person) if person is not None and person.purged_at is None else None
        if address is None:
            outbox.record_failed(session, row.id, "no_address", f"supervisee {row.supervisee_id} has no "
                                 f"{row.channel} address any more", now)
            log.info("bulk message %s: supervisee %s has no %s address", row.id, row.supervisee_id, row.channel)
            continue
        values = dict(name=person.name, officer=officers.get(person.officer_id, ""), **spec["extra"])
        payload = {}
        if "text" in spec:  # an administrator's own words
            body = spec["text"].format(**values)
        else:  # a catalogue text: remembered, for a provider that sends approved templates only
            body = text(spec["language"], spec["template"], **values)
            payload["said"] = body.remembered()
        updates.append({"mid": row.id, "address": address, "body": body,
                        "payload": json.dumps(payload, ensure_ascii=False) if payload else None})
        out.append(replace(row, address=address, body=body, payload=payload))
    if updates:  # the columns' types encrypt the values
        t = Message.__table__
        session.connection().execute(update(t).where(t.c.id == bindparam("mid")).values(
            address=bindparam("address"), body=bindparam("body"), payload=bindparam("payload")), updates)
    return out


FREE_TEXT_PLACEHOLDERS = ("name", "officer")
MAX_FREE_TEXT = 500


def free_text_problem(words: str) -> str | None:
    """What is wrong with an administrator's announcement, or None: not empty, not too long, and no placeholder
    but {name} and {officer} (a brace meant literally is written twice: {{ }})."""
    import string

    if not words.strip():
        return "empty"
    if len(words) > MAX_FREE_TEXT:
        return f"longer than {MAX_FREE_TEXT} characters"
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(words) if f is not None]
    except ValueError as exc:
        return f"a brace out of place ({exc})"
    unknown = sorted({f for f in fields if f not in FREE_TEXT_PLACEHOLDERS})
    return f"unknown placeholder {{{unknown[0]}}}: use {{name}} or {{officer}}" if unknown else None


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
