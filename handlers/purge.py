"""Removing personal data after the retention period (`checkin purge`).

A person whose supervision ended more than `[retention] personal_data_years`
ago keeps only what the monthly report counts: their row with township,
category, level, dates and status (name emptied, number, chat and case number
gone), their obligations, escalations (without notes), study and service
records and warnings (without reasons). Everything else goes: messages to and
from them, written reports, conversations, leave, shared points, enrolment
codes, and the details of audit entries about them (the chain still verifies:
it covers the details' hash). Officers' own message history older than the
retention period goes too: alerts and replies name the people they concern.

A person still reachable gets a last message first; that message is queued
without a link to the person, and the sweep deletes it once it has gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import delete, func, or_, select, update
from sqlmodel import Session, col

from content.catalog import text
from handlers.addressing import route_for
from storage import audit, outbox
from storage.crypto import keyring_for
from storage.models import (
    AuditEntry,
    ChannelName,
    Conversation,
    EnrolmentCode,
    Escalation,
    Leave,
    LocationCheck,
    Message,
    MessageStatus,
    Supervisee,
    Warning_,
    WrittenReport,
)

log = logging.getLogger(__name__)

NOTICE_KIND = "purge_notice"
FINAL = (MessageStatus.sent, MessageStatus.delivered, MessageStatus.undelivered, MessageStatus.failed)


def cutoff(today: date, years: int) -> date:
    """The day `years` before `today` (28 February for 29 February in a common year)."""
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return today.replace(year=today.year - years, day=28)


@dataclass
class PurgeResult:
    """What a purge removed (or, dry, would remove)."""

    cutoff: date
    dry_run: bool
    people: list[int] = field(default_factory=list)
    notified: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    # Spoken reports' recordings, kept by the provider: the caller deletes them there (bot/cli: `checkin purge`).
    recordings: list[str] = field(default_factory=list)


def due(session: Session, today: date, years: int) -> list[Supervisee]:
    """People whose supervision ended before the cutoff and whose data is still here."""
    return list(session.exec(
        select(Supervisee).where(Supervisee.supervision_end < cutoff(today, years), Supervisee.purged_at.is_(None))
        .order_by(Supervisee.id)).scalars())


def reachable(person: Supervisee) -> bool:
    """Telegram not blocked, or SMS not opted out."""
    channel, _ = route_for(person)
    if channel == ChannelName.telegram:
        return True
    return channel == ChannelName.sms and person.sms_blocked_at is None


def _count_or_delete(session: Session, model, where, dry_run: bool) -> int:
    if dry_run:
        return session.execute(select(func.count()).select_from(model).where(where)).scalar_one()
    return session.execute(delete(model).where(where)).rowcount


def purge(session: Session, *, now: datetime, years: int, zone, actor: str = "cli",
          dry_run: bool = False) -> PurgeResult:
    """Remove the personal data of everyone `due`, in the caller's transaction; dry: only count."""
    today = now.astimezone(zone).date()
    result = PurgeResult(cutoff(today, years), dry_run)
    people = due(session, today, years)
    result.people = [p.id for p in people]
    removed: dict[str, int] = dict.fromkeys(
        ("messages", "officer_messages", "written_reports", "conversations", "leave", "location_checks",
         "enrolment_codes", "warning_reasons", "escalation_notes", "audit_details"), 0)
    blind = keyring_for(session).blind
    for person in people:
        pid = person.id
        if reachable(person):
            result.notified += 1
            if not dry_run:
                channel, address = route_for(person)
                outbox.enqueue(session, channel=channel, address=address, now=now, kind=NOTICE_KIND,
                               dedupe_key=f"purge:{pid}",
                               body=text(person.language, "purge.notice", end=person.supervision_end.isoformat(),
                                         years=years))
        addresses = [blind(a) for a in (person.phone, str(person.telegram_chat_id) if person.telegram_chat_id else None)
                     if a]
        result.recordings += [url for url in session.execute(
            select(WrittenReport.recording_url).where(WrittenReport.supervisee_id == pid,
                                                      WrittenReport.recording_url.is_not(None))).scalars() if url]
        counts = {
            "messages": _count_or_delete(session, Message, Message.supervisee_id == pid, dry_run),
            "written_reports": _count_or_delete(session, WrittenReport, WrittenReport.supervisee_id == pid, dry_run),
            "conversations": _count_or_delete(session, Conversation, col(Conversation.address).in_(addresses),
                                              dry_run) if addresses else 0,
            "location_checks": _count_or_delete(session, LocationCheck, LocationCheck.supervisee_id == pid, dry_run),
            "leave": _count_or_delete(session, Leave, Leave.supervisee_id == pid, dry_run),
            "enrolment_codes": _count_or_delete(session, EnrolmentCode, EnrolmentCode.supervisee_id == pid, dry_run),
        }
        kept = {  # rows the report counts: kept, their free text removed
            "warning_reasons": (Warning_, Warning_.supervisee_id == pid, {"reason": ""}),
            "escalation_notes": (Escalation, (Escalation.supervisee_id == pid) & Escalation.note.is_not(None),
                                 {"note": None}),
            "audit_details": (AuditEntry, (AuditEntry.supervisee_id == pid) & AuditEntry.details.is_not(None),
                              {"details": None}),
        }
        for name, (model, where, values) in kept.items():
            counts[name] = (session.execute(select(func.count()).select_from(model).where(where)).scalar_one()
                            if dry_run else session.execute(update(model).where(where).values(**values)).rowcount)
        for name, n in counts.items():
            removed[name] += n
        if dry_run:
            continue
        ended = person.supervision_end.isoformat()
        person.name, person.phone, person.telegram_chat_id = "", None, None
        person.case_number = f"purged-{pid}"
        person.timezone, person.last_contact_kind, person.pause_reason = None, None, None
        person.purged_at = person.updated_at = now
        session.add(person)
        session.flush()
        audit.append(session, actor=actor, action="purge", now=now, supervisee_id=pid, subject=f"supervisee:{pid}",
                     details={"supervision_end": ended, "retention_years": years,
                              **{k: v for k, v in counts.items() if v}})
    # Officers' and unknown senders' messages older than the retention period: they name people.
    old = datetime.combine(result.cutoff, datetime.min.time(), tzinfo=zone)
    removed["officer_messages"] = _count_or_delete(
        session, Message, (Message.created_at < old) & Message.supervisee_id.is_(None)
        & or_(Message.kind != NOTICE_KIND, col(Message.status).in_(FINAL)), dry_run)
    result.removed = removed
    log.info("purge%s: %s people, %s notified, %s", " (dry run)" if dry_run else "", len(people),
             result.notified, removed)
    return result


def scrub_notices(session: Session) -> int:
    """Delete last messages that have gone (or finally failed): they carried a purged person's address."""
    return session.execute(delete(Message).where(Message.kind == NOTICE_KIND, col(Message.status).in_(FINAL))).rowcount
