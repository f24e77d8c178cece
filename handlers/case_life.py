"""The life of a case after its import: pause and resume, level, language, time zone and channel, transfer, early end.

Each change is one function here, used by the chat (`/pause`, `/resume`, `/level`, `/transfer`, `/end`), by the
CLI (`checkin case ...`) and, for level and officer, by the roster import. Each checks its input (a `CaseError`
names what is wrong and changes nothing), is audited, re-plans the person's obligations where the cadence changes,
and returns the messages it owes people (the person, the officers concerned), for the caller to deliver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, update
from sqlmodel import Session, col, func, select

from content.catalog import LANGUAGES, text
from content.formatting import is_mobile
from content.policy import Policy
from handlers.compliance import lost_contact
from handlers.contract import Recipient, Reply, SenderKind
from handlers.delivery import deliver
from handlers.escalation import close, close_open, open_escalation
from handlers.schedule import PLANNED_KINDS
from storage import audit
from storage.models import (
    OPEN_OBLIGATION,
    ChannelName,
    EndReason,
    Escalation,
    EscalationKind,
    EscalationState,
    Leave,
    LeaveState,
    Level,
    Obligation,
    ObligationState,
    Officer,
    Resolution,
    Role,
    Status,
    Supervisee,
    written_in,
)

log = logging.getLogger(__name__)

MAX_PAUSE_DAYS = 366
MAX_REASON = 500
TELL_ON_END = (EndReason.ended, EndReason.moved_out)  # after a revocation or a death nobody is written to


class CaseError(ValueError):
    """A change that cannot be made; `render` says why in the reader's language."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key, self.params = key, params

    def render(self, lang: str) -> str:
        return text(lang, f"case.error_{self.key}", **{k: str(v) for k, v in self.params.items()})


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the audit's actor string, and the officer when an officer does (None at the CLI)."""

    name: str
    officer: Officer | None = None


def is_paused(person: Supervisee, day: date) -> bool:
    """True when `day` (the person's local date) falls in their pause."""
    return (person.paused_from is not None and person.paused_until is not None
            and person.paused_from <= day <= person.paused_until)


def replan(session: Session, person: Supervisee) -> int:
    """Drop what was planned and not yet sent; the next sweep plans anew from the person's current values."""
    result = session.execute(delete(Obligation).where(Obligation.supervisee_id == person.id,
                                                      Obligation.state == ObligationState.planned,
                                                      col(Obligation.kind).in_(PLANNED_KINDS)))
    person.planned_until = None
    session.add(person)
    return result.rowcount or 0


def _open(person: Supervisee) -> None:
    if person.status == Status.ended:
        raise CaseError("ended", case=person.case_number)


def _audit(session: Session, actor: Actor, action: str, person: Supervisee, now: datetime, **details) -> None:
    audit.append(session, actor=actor.name, action=f"case.{action}", now=now, supervisee_id=person.id,
                 subject=f"case:{person.case_number}", details=details or None)
    log.info("%s: case.%s on supervisee %s", actor.name, action, person.id)


def _set(session: Session, person: Supervisee, field: str, value, actor: Actor, now: datetime, *,
         cadence: bool = False) -> bool:
    """Set one of the person's values, audited as `case.<what>` with before and after; False when unchanged.
    `cadence`: the value shapes the plan (level, time zone), so what is planned is planned anew."""
    before = getattr(person, field)
    if value == before:
        return False
    setattr(person, field, value)
    person.updated_at = now
    session.add(person)
    if cadence:
        replan(session, person)
    _audit(session, actor, {"preferred_channel": "channel"}.get(field, field), person, now, before=before, after=value)
    return True


def _to_person(person: Supervisee, key: str, kind: str, **params) -> Reply:
    return Reply(text(person.language, key, **params), to=Recipient(SenderKind.supervisee, person.id), kind=kind)


def pause(session: Session, person: Supervisee, start: date, end: date, reason: str, *, actor: Actor,
          now: datetime, zone: tzinfo) -> list[Reply]:
    """Pause from `start` to `end` (inclusive): nothing is planned, prompted or missed meanwhile."""
    _open(person)
    reason = reason.strip()
    today = now.astimezone(zone).date()
    if not reason:
        raise CaseError("pause_reason")
    if end < start:
        raise CaseError("pause_order", start=start.isoformat(), end=end.isoformat())
    if end < today:
        raise CaseError("pause_past", end=end.isoformat())
    if (end - start).days + 1 > MAX_PAUSE_DAYS:
        raise CaseError("pause_long", days=(end - start).days + 1, max=MAX_PAUSE_DAYS)
    person.paused_from, person.paused_until, person.pause_reason = start, end, reason[:MAX_REASON]
    person.updated_at = now
    session.add(person)
    excused = 0  # what is already open and falls in the pause is excused now, not missed later
    for ob in session.exec(select(Obligation).where(Obligation.supervisee_id == person.id,
                                                    col(Obligation.state).in_(OPEN_OBLIGATION))):
        if start <= ob.due_at.astimezone(zone).date() <= end:
            ob.state, ob.next_check_at = ObligationState.excused, None
            session.add(ob)
            excused += 1
    _audit(session, actor, "pause", person, now, start=start.isoformat(), end=end.isoformat(), reason=reason)
    return [_to_person(person, "case.paused_person", "case_change", start=start.isoformat(), end=end.isoformat())]


def resume(session: Session, person: Supervisee, *, actor: Actor, now: datetime, zone: tzinfo) -> list[Reply]:
    """End a pause: from today everything still to come is due again (or call off a pause not yet begun)."""
    _open(person)
    if person.paused_until is None or person.paused_until < now.astimezone(zone).date():
        raise CaseError("not_paused", case=person.case_number)
    was = (person.paused_from, person.paused_until)
    today = now.astimezone(zone).date()
    if person.paused_from >= today:  # not begun: called off
        person.paused_from = person.paused_until = person.pause_reason = None
    else:  # it ended yesterday: kept, so that the report and lost contact know the person was excused till then
        person.paused_until = min(person.paused_until, today - timedelta(days=1))
    person.updated_at = now
    session.add(person)
    _audit(session, actor, "resume", person, now, start=was[0].isoformat() if was[0] else None,
           end=was[1].isoformat())
    return [_to_person(person, "case.resumed_person", "case_change")]


def set_level(session: Session, person: Supervisee, level: str, *, actor: Actor, now: datetime) -> list[Reply]:
    """A new supervision level: its cadence from the next planning on."""
    _open(person)
    level = level.strip().lower()
    if level not in Level.__members__:
        raise CaseError("level", value=level, choices=", ".join(Level))
    if not _set(session, person, "level", level, actor, now, cadence=True):
        return []
    return [_to_person(person, "case.level_person", "case_change", level=text(person.language, f"level.{level}"))]


def set_language(session: Session, person: Supervisee, language: str, *, actor: Actor, now: datetime) -> list[Reply]:
    _open(person)
    if language not in LANGUAGES:
        raise CaseError("language", value=language, choices=", ".join(LANGUAGES))
    if not _set(session, person, "language", language, actor, now):
        return []
    return [_to_person(person, "case.language_person", "case_change")]


def set_timezone(session: Session, person: Supervisee, name: str | None, *, actor: Actor,
                 now: datetime) -> list[Reply]:
    """A time zone of the person's own (None: the county's); times are planned anew."""
    _open(person)
    if name:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise CaseError("timezone", value=name) from None
    _set(session, person, "timezone", name or None, actor, now, cadence=True)
    return []


CHANNELS = (ChannelName.sms, ChannelName.voice, ChannelName.telegram)  # what a person's messages may prefer


def set_channel(session: Session, person: Supervisee, channel: str, *, actor: Actor, now: datetime) -> list[Reply]:
    """The channel proactive messages prefer: Telegram (a linked chat that has not blocked the bot), SMS, or voice
    (phone calls)."""
    _open(person)
    if channel == ChannelName.telegram:
        if person.telegram_chat_id is None or person.telegram_blocked_at is not None:
            raise CaseError("no_telegram", case=person.case_number)
    elif channel in (ChannelName.sms, ChannelName.voice):
        if not person.phone:
            raise CaseError("no_phone", case=person.case_number)
        if channel == ChannelName.sms and not is_mobile(person.phone):
            raise CaseError("landline", case=person.case_number)
    else:
        raise CaseError("channel", value=channel)
    if not _set(session, person, "preferred_channel", channel, actor, now):
        return []
    return [_to_person(person, "case.channel_person", "case_change")]


def transfer(session: Session, person: Supervisee, to: Officer, *, actor: Actor, now: datetime) -> list[Reply]:
    """Another officer (in their township) takes the case; open alerts and leave go along; both officers told.

    Community-service attendance needs no move: who may verify it follows the person's current officer.
    """
    _open(person)
    if not to.active or to.role not in (Role.assistant, Role.supervisor):
        raise CaseError("transfer_to", id=to.id)
    old = session.get(Officer, person.officer_id)
    if old.id == to.id:
        raise CaseError("transfer_same", case=person.case_number, officer=to.name)
    moved_alerts = session.execute(
        update(Escalation).where(Escalation.supervisee_id == person.id, Escalation.state != EscalationState.resolved,
                                 Escalation.officer_id == old.id).values(officer_id=to.id)).rowcount or 0
    moved_leave = session.execute(
        update(Leave).where(Leave.supervisee_id == person.id,
                            col(Leave.state).in_([LeaveState.requested, LeaveState.approved]))
        .values(officer_id=to.id)).rowcount or 0
    before_township = person.township
    person.officer_id, person.township, person.updated_at = to.id, to.township, now
    session.add(person)
    _audit(session, actor, "transfer", person, now, before=old.id, after=to.id,
           township=[before_township, to.township], alerts=moved_alerts, leave=moved_leave)
    who = dict(name=person.name, case_number=person.case_number)
    return [
        Reply(text(old.language, "case.transfer_from", officer=to.name, township=to.township, **who),
              to=Recipient(SenderKind.officer, old.id), kind="case_change"),
        Reply(text(to.language, "case.transfer_to", officer=old.name, township=before_township, alerts=moved_alerts,
                   leave=moved_leave, **who),
              to=Recipient(SenderKind.officer, to.id), kind="case_change", about=person.id),
        _to_person(person, "case.transfer_person", "case_change", officer=to.name),
    ]


def end(session: Session, person: Supervisee, reason: str, note: str = "", *, actor: Actor, now: datetime,
        zone: tzinfo) -> list[Reply]:
    """End the supervision today: open obligations excused, open alerts closed, leave cancelled; the person is
    told when the reason allows (the term is over, or the case moved to another county)."""
    _open(person)
    if reason not in EndReason.__members__:
        raise CaseError("end_reason", value=reason, choices=", ".join(EndReason))
    today = now.astimezone(zone).date()
    person.status, person.ended_reason, person.updated_at = Status.ended, reason, now
    person.supervision_end = min(person.supervision_end, today)
    person.paused_from = person.paused_until = person.pause_reason = None
    person.lost_contact_since = None
    session.add(person)
    excused = session.execute(
        update(Obligation).where(Obligation.supervisee_id == person.id, col(Obligation.state).in_(OPEN_OBLIGATION))
        .values(state=ObligationState.excused, next_check_at=None)).rowcount or 0
    alerts = session.exec(select(Escalation).where(Escalation.supervisee_id == person.id,
                                                   Escalation.state != EscalationState.resolved)).all()
    for esc in alerts:
        close(session, esc, Resolution.case_ended, now)
    cancelled = session.execute(
        update(Leave).where(Leave.supervisee_id == person.id,
                            col(Leave.state).in_([LeaveState.requested, LeaveState.approved]))
        .values(state=LeaveState.cancelled)).rowcount or 0
    _audit(session, actor, "end", person, now, reason=reason, note=note[:MAX_REASON] or None,
           excused=excused, alerts=len(alerts), leave=cancelled)
    if reason in TELL_ON_END:
        return [_to_person(person, f"case.end_person_{reason}", "case_change")]
    return []


def pause_dates(words: list[str], today: date) -> tuple[date, date]:
    """`FROM TO` as ISO dates, or `N` days from today (`/pause JZ1 14 住院`)."""
    if words and words[0].isascii() and words[0].isdigit():
        days = int(words[0])
        if not 0 < days <= MAX_PAUSE_DAYS:
            raise CaseError("pause_long", days=days, max=MAX_PAUSE_DAYS)
        return today, today + timedelta(days=days - 1)
    try:
        return date.fromisoformat(words[0]), date.fromisoformat(words[1])
    except (IndexError, ValueError):
        raise CaseError("pause_dates", value=" ".join(words[:2]) or "-") from None


# ---- lost contact, found and cleared by the sweep ----------------------------------


LOST_CONTACT_AT_ONCE = 5000  # people looked at together: the memory of the daily check does not follow the roster
_CONTACT_COLUMNS = (Supervisee.id, Supervisee.status, Supervisee.supervision_start, Supervisee.supervision_end,
                    Supervisee.paused_from, Supervisee.paused_until, Supervisee.created_at)


def find_lost_contact(session: Session, now: datetime, policy: Policy, zone: tzinfo, country: str) -> int:
    """Mark people lost contact as the report defines it, and escalate each (to the supervisor first).

    The roster is read a group at a time, and only the columns the rule needs (no names to decrypt): at
    100,000 people, loading everyone whole took 400 MB (docs/benchmarks.md, "The cost of growth").
    """
    today = now.astimezone(zone).date()
    days = policy.report_figures.lost_contact_days
    found, after = 0, 0
    while True:
        group = {r.id: r for r in session.exec(
            select(*_CONTACT_COLUMNS)
            .where(Supervisee.status == Status.active, Supervisee.supervision_start <= today, Supervisee.id > after)
            .order_by(Supervisee.id).limit(LOST_CONTACT_AT_ONCE)).all()}
        if not group:
            break
        after = max(group)
        for pid in sorted(lost_contact(session, group, now, days, zone)):
            person = session.get(Supervisee, pid)
            person.status, person.lost_contact_since, person.updated_at = Status.lost_contact, now, now
            session.add(person)
            last = person.last_contact_at.isoformat() if person.last_contact_at else None
            open_escalation(session, person, EscalationKind.lost_contact, now, policy, zone,
                            facts={"days": days, "last": last}, country=country)
            found += 1
    if found:
        log.info("%s people found out of contact", found)
    return found


def clear_lost_contact(session: Session, now: datetime) -> int:
    """People in lost contact who answered since, or whom an officer reached: active again, alerts closed, their
    officer told."""
    cleared = 0
    lost = written_in(col(Supervisee.status), [Status.lost_contact])  # its partial index, on SQLite too
    for person in session.exec(select(Supervisee).where(lost)).all():
        since = person.lost_contact_since or person.updated_at
        answered = session.exec(select(func.max(Obligation.answered_at))
                                .where(Obligation.supervisee_id == person.id)).one()
        reached = session.exec(select(func.max(Escalation.resolved_at))
                               .where(Escalation.supervisee_id == person.id,
                                      Escalation.resolution == Resolution.reached)).one()
        if not any(t is not None and t > since for t in (answered, reached)):
            continue
        person.status, person.lost_contact_since, person.updated_at = Status.active, None, now
        session.add(person)
        close_open(session, person.id, EscalationKind.lost_contact, Resolution.contact_resumed, now)
        officer = session.get(Officer, person.officer_id)
        deliver(session, Reply(text(officer.language, "case.contact_resumed", name=person.name,
                                    case_number=person.case_number),
                               to=Recipient(SenderKind.officer, officer.id), kind="case_change", about=person.id),
                now=now, dedupe_key=f"contact_resumed:{person.id}:{since.isoformat()}")
        cleared += 1
    return cleared
