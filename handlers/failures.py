"""What a permanent delivery failure means: a blocked bot is lost contact on Telegram, and counts as silence."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, tzinfo

from sqlmodel import Session

from handlers.escalation import open_escalation
from storage import outbox, queries
from storage.models import ChannelName, Message, Supervisee

log = logging.getLogger(__name__)

BLOCKED = {(ChannelName.telegram, "403")}


def delivery_failed(
    session: Session, message_id: int, code: str | None, now: datetime, *, zone: tzinfo, sla: timedelta
) -> None:
    """React to a permanent failure of outbox row `message_id`.

    A Telegram 403 (the person blocked the bot) marks them unreachable on
    Telegram, sends the same message again by SMS when they have a phone, and
    opens an escalation to their officer (once while it is open).
    """
    msg = session.get(Message, message_id)
    if msg is None or (msg.channel, code) not in BLOCKED:
        return
    person = session.get(Supervisee, msg.supervisee_id) if msg.supervisee_id else None
    if person is None and msg.address.lstrip("-").isdigit():
        person = queries.supervisee_by_telegram(session, int(msg.address))
    if person is None:
        log.warning("message %s: telegram chat blocked the bot, and it is no supervisee's", message_id)
        return
    if person.telegram_blocked_at is None:
        person.telegram_blocked_at, person.preferred_channel = now, ChannelName.sms
        session.add(person)
        log.info("supervisee %s blocked the bot; falling back to SMS", person.id)
    if person.phone:
        outbox.enqueue(
            session, channel=ChannelName.sms, address=person.phone, body=msg.body, now=now,
            dedupe_key=f"fallback:{message_id}", kind=msg.kind, supervisee_id=person.id,
            payload={k: v for k, v in json.loads(msg.payload or "{}").items() if k != "edit"},
        )
    open_escalation(session, person, "unreachable", now, sla, zone)
