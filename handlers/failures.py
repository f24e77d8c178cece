"""What a permanent delivery failure means: lost contact on that channel, which counts as silence."""

from __future__ import annotations

import json
import logging
from datetime import datetime, tzinfo

from sqlmodel import Session, col, select

from content.catalog import text
from content.formatting import is_mobile
from content.policy import Policy
from handlers.contract import Button, Recipient, Reply, SenderKind
from handlers.delivery import deliver
from handlers.escalation import administrators, open_escalation, reachable, supervisor_of
from storage import outbox, queries
from storage.models import ChannelName, Direction, EscalationKind, Message, MessageStatus, Officer, Role, Supervisee

log = logging.getLogger(__name__)

# (channel, provider error code) that mean the channel no longer reaches the person.
UNREACHABLE = {
    (ChannelName.telegram, "403"): "blocked_bot",
    (ChannelName.sms, "21610"): "opted_out",
    (ChannelName.sms, "21211"): "invalid_number",
    (ChannelName.sms, "21614"): "not_mobile",
    # Tencent Cloud SMS (bot/channels/tencent_sms.py): its codes for the same two facts
    (ChannelName.sms, "InvalidParameterValue.IncorrectPhoneNumber"): "invalid_number",
    (ChannelName.sms, "FailedOperation.PhoneNumberInBlacklist"): "opted_out",
    (ChannelName.voice, "failed"): "failed",  # the call's status: it could not be connected
    (ChannelName.voice, "21211"): "invalid_number",
    (ChannelName.voice, "13224"): "invalid_number",
}

# Provider codes that say the county's set-up is wrong (an unapproved template or signature, the account), not the
# number: every message fails until it is mended, so the administrators are told at once.
SETUP_ERRORS = ("AuthFailure", "UnauthorizedOperation", "FailedOperation.TemplateIncorrectOrUnapproved",
                "FailedOperation.SignatureIncorrectOrUnapproved", "FailedOperation.InsufficientBalanceInSmsPackage",
                "InvalidParameterValue.TemplateParameterFormatError",
                "InvalidParameterValue.TemplateParameterLengthLimit", "FailedOperation.ContainSensitiveWord")


def _setup_broken(session: Session, msg: Message, code: str, now: datetime) -> None:
    """Tell every administrator, once a day for each code, that the provider refuses our set-up."""
    log.error("message %s: the SMS provider refused the set-up (%s)", msg.id, code)
    for admin in administrators(session):
        deliver(session, Reply(text(admin.language, "delivery.setup_failed", code=code, id=msg.id),
                               to=Recipient(SenderKind.officer, admin.id), kind="delivery_failed"),
                now=now, dedupe_key=f"setup_failed:{code[:60]}:{now.date().isoformat()}:{admin.id}")


def _on_voice(session: Session, msg: Message) -> bool:
    person = _person(session, msg)
    return person is None or person.preferred_channel == ChannelName.voice


def _person(session: Session, msg: Message) -> Supervisee | None:
    if msg.supervisee_id:
        return session.get(Supervisee, msg.supervisee_id)
    if msg.channel == ChannelName.telegram and msg.address.lstrip("-").isdigit():
        return queries.supervisee_by_telegram(session, int(msg.address))
    if msg.channel in (ChannelName.sms, ChannelName.voice):
        return queries.supervisee_by_phone(session, msg.address)
    return None


def _repeatedly_undelivered(session: Session, msg: Message, in_a_row: int, channel: str = ChannelName.sms) -> bool:
    # The address is stored encrypted: the person's (or officer's) id stands for the number.
    if msg.supervisee_id is not None:
        whose = Message.supervisee_id == msg.supervisee_id
    elif msg.officer_id is not None:
        whose = Message.officer_id == msg.officer_id
    else:
        return False
    last = session.exec(
        select(Message.status).where(Message.channel == channel, whose,
                                     Message.direction == Direction.outbound,
                                     col(Message.status).in_([MessageStatus.delivered, MessageStatus.undelivered,
                                                              MessageStatus.failed]))
        .order_by(col(Message.id).desc()).limit(in_a_row)
    ).all()
    return len(last) == in_a_row and all(s != MessageStatus.delivered for s in last)


def _officer_not_reached(session: Session, msg: Message, code: str | None, now: datetime) -> None:
    """A message to an officer failed for good: it goes again by the officer's other channel where there is one,
    and their supervisor (the administrators when there is none, or when the officer is the supervisor) is told
    by whatever reaches them, with the message itself, so that an alert never stops at a dead phone."""
    officer = session.get(Officer, msg.officer_id)
    if officer is None:
        return
    log.warning("message %s to officer %s failed on %s (%s)", msg.id, officer.id, msg.channel, code or "-")
    if msg.kind == "delivery_failed" or (msg.dedupe_key or "").startswith("officer_fallback:"):
        return  # already a second try, or itself the notice of a failure: no chain of notices
    payload = {k: v for k, v in json.loads(msg.payload or "{}").items() if k != "edit"}
    other = None
    if msg.channel == ChannelName.telegram and officer.phone:
        other = (ChannelName.sms, officer.phone)
    elif msg.channel != ChannelName.telegram and officer.telegram_id is not None:
        other = (ChannelName.telegram, str(officer.telegram_id))
    if other is not None:
        outbox.enqueue(session, channel=other[0], address=other[1], body=msg.body, now=now, kind=msg.kind,
                       dedupe_key=f"officer_fallback:{msg.id}", officer_id=officer.id, payload=payload)
    boss = supervisor_of(session, officer) if officer.role == Role.assistant else None
    readers = [boss] if reachable(boss) else [a for a in administrators(session) if a.id != officer.id]
    for reader in filter(reachable, readers):
        lang = reader.language
        body = text(lang, "delivery.officer_failed", officer=officer.name,
                    channel=text(lang, f"delivery.channel_{msg.channel}"), text=msg.body)
        deliver(session, Reply(body, to=Recipient(SenderKind.officer, reader.id), kind="delivery_failed",
                               buttons=[Button(*b) for b in payload.get("buttons", [])]),
                now=now, dedupe_key=f"officer_failed:{msg.id}:{reader.id}")


def delivery_failed(
    session: Session, message_id: int, code: str | None, now: datetime, *, zone: tzinfo, policy: Policy
) -> None:
    """React to a permanent failure (or an undelivered status) of outbox row `message_id`.

    When it means the channel no longer reaches the person (a blocked bot, an
    SMS opt-out, an invalid or non-mobile number, or three SMS in a row not
    delivered), the channel is marked so, the same message goes again by the
    other channel where there is one, and an escalation opens to the officer
    (once while it is open).
    """
    msg = session.get(Message, message_id)
    if msg is None:
        return
    if code and code.startswith(SETUP_ERRORS):
        _setup_broken(session, msg, code, now)
        return  # not the person's number: nobody is marked unreachable for it
    if msg.officer_id is not None and msg.supervisee_id is None:
        _officer_not_reached(session, msg, code, now)
        return
    if msg.channel == ChannelName.voice and not _on_voice(session, msg):
        # a call to someone on SMS or Telegram (before a missed check-in): its failure is the check-in's to escalate
        log.info("call %s to a supervisee not on voice ended %s: nothing more", message_id, code)
        return
    reason = UNREACHABLE.get((msg.channel, code))
    if (
        reason is None
        and msg.channel == ChannelName.sms
        and _repeatedly_undelivered(session, msg, policy.limits.sms_undelivered_in_a_row)
    ):
        reason = "undelivered"
    if reason is None and msg.channel == ChannelName.voice and _repeatedly_undelivered(
            session, msg, policy.voice.unanswered_in_a_row, ChannelName.voice):
        reason = "unanswered"
    if reason is None:
        return
    person = _person(session, msg)
    if person is None:
        log.warning("message %s: %s on %s, and it is no supervisee's", message_id, reason, msg.channel)
        return
    facts = None
    if msg.channel == ChannelName.voice:  # by SMS from now on where it can; the officer decides what next
        by_sms = bool(person.phone) and not person.sms_blocked_at and is_mobile(person.phone)  # not a landline
        other = (ChannelName.sms, person.phone) if by_sms else None
        if person.preferred_channel == ChannelName.voice and by_sms:
            person.preferred_channel = ChannelName.sms
        facts = {"channel": "voice", "reason": reason, "fallback": other is not None}
    elif msg.channel == ChannelName.telegram:
        if person.telegram_blocked_at is None:
            person.telegram_blocked_at, person.preferred_channel = now, ChannelName.sms
        other = (ChannelName.sms, person.phone) if person.phone and not person.sms_blocked_at else None
    else:
        if person.sms_blocked_at is None:
            person.sms_blocked_at, person.sms_blocked_reason = now, reason
        other = (ChannelName.telegram, str(person.telegram_chat_id)) \
            if person.telegram_chat_id and not person.telegram_blocked_at else None
    session.add(person)
    log.info("supervisee %s unreachable on %s (%s)", person.id, msg.channel, reason)
    if other is not None:
        outbox.enqueue(
            session, channel=other[0], address=other[1], body=msg.body, now=now,
            dedupe_key=f"fallback:{message_id}", kind=msg.kind, supervisee_id=person.id,
            payload={k: v for k, v in json.loads(msg.payload or "{}").items() if k != "edit"},
        )
    open_escalation(session, person, EscalationKind.unreachable, now, policy, zone, facts=facts)
