"""Turn replies into outbox rows: to the sender, or to whoever `Reply.to` names."""

from __future__ import annotations

from datetime import datetime, tzinfo

from sqlmodel import Session

from content.catalog import text
from content.formatting import hm
from handlers.addressing import route_for
from handlers.contract import Reply, SenderKind
from storage import outbox
from storage.models import ChannelName, Direction, Message, MessageStatus, Officer, Supervisee


def reply_row(
    session: Session,
    reply: Reply,
    *,
    now: datetime,
    dedupe_key: str,
    channel: str | None = None,
    address: str | None = None,
    not_before: datetime | None = None,
    extra_payload: dict | None = None,
    supervisee_id: int | None = None,
    officer_id: int | None = None,
) -> dict:
    """The outbox row for `reply`; `channel`/`address` (and the sender's ids) are used when `reply.to` is None."""
    if reply.to is not None:
        supervisee_id = officer_id = None
        model = Officer if reply.to.kind is SenderKind.officer else Supervisee
        who = session.get(model, reply.to.id)
        channel, address = route_for(who)
        if model is Officer:
            officer_id = who.id
        else:
            supervisee_id = who.id
    if channel is None or address is None:
        raise ValueError("a reply without a recipient needs the sender's channel and address")
    return outbox.outbound_row(
        channel=channel, address=address, body=reply.text, now=now, dedupe_key=dedupe_key,
        kind=reply.kind, payload={**reply.payload(), **(extra_payload or {})},
        supervisee_id=supervisee_id, officer_id=officer_id,
        not_before=not_before,
    )


def deliver(session: Session, reply: Reply, **kw) -> int | None:
    """Enqueue `reply` (arguments as for `reply_row`); None when its dedupe key was already queued."""
    row = reply_row(session, reply, **kw)
    return outbox.insert_ignore(session, row, ["dedupe_key"])


CALL_ENDINGS = {"no-answer": "no_answer", "canceled": "no_answer", "busy": "busy", "voicemail": "voicemail"}


def outcome(m: Message, lang: str, zone: tzinfo) -> str:
    """How a message to a person ended, for their thread: a call answered, not answered and why, to be placed again
    at a time, or not connected; a reply said within a call; a text not delivered. Empty when there is nothing to
    add (a text delivered or on its way, a message from them)."""
    if m.direction != Direction.outbound:
        return ""
    if m.channel != ChannelName.voice:
        return text(lang, "delivery.not_delivered") if m.status in (MessageStatus.undelivered, MessageStatus.failed) \
            else ""
    why = text(lang, f"delivery.call_{CALL_ENDINGS.get(m.error_code or '', 'no_answer')}")
    if m.status == MessageStatus.delivered:
        return text(lang, "delivery.call_answered")
    if m.status == MessageStatus.sent:  # a reply said in the call has the call's id and its own row's
        return text(lang, "delivery.call_said" if ":" in (m.provider_id or "") else "delivery.call_ringing")
    if m.status == MessageStatus.queued and m.error_code and m.next_attempt_at:
        return text(lang, "delivery.call_again", why=why, time=hm(m.next_attempt_at, zone))
    if m.status == MessageStatus.undelivered:
        return why
    if m.status == MessageStatus.failed:
        return text(lang, "delivery.call_failed")
    return ""
