"""Carrier opt-out words on SMS: record the opt-out and tell the officer at once; START undoes it."""

from __future__ import annotations

import logging

from content.catalog import text
from handlers.contract import Context, Inbound, Reply, SenderKind
from handlers.escalation import open_escalation
from storage.models import EscalationKind

log = logging.getLogger(__name__)

# Twilio's default opt-out and opt-in words (it answers them itself on long codes), plus Chinese.
STOP_WORDS = ("stop", "stopall", "unsubscribe", "cancel", "end", "quit", "退订", "td", "t")
START_WORDS = ("start", "unstop", "yes", "订阅")


async def stop(inbound: Inbound, ctx: Context) -> list[Reply]:
    """STOP: no more SMS to this number; the obligations remain, so the officer is told at once."""
    person = ctx.sender.supervisee
    if ctx.sender.kind is not SenderKind.supervisee:
        return []
    if person.sms_blocked_at is None or person.sms_blocked_reason != "opted_out":
        person.sms_blocked_at, person.sms_blocked_reason = ctx.now, "opted_out"
        ctx.session.add(person)
        open_escalation(ctx.session, person, EscalationKind.sms_opt_out, ctx.now, ctx.policy, ctx.zone)
        log.info("supervisee %s opted out of SMS", person.id)
    return []  # the carrier confirms the opt-out; a reply of ours would be refused (21610)


async def start(inbound: Inbound, ctx: Context) -> list[Reply]:
    """START: SMS again."""
    person = ctx.sender.supervisee
    if ctx.sender.kind is not SenderKind.supervisee:
        return []
    if person.sms_blocked_at is not None and person.sms_blocked_reason == "opted_out":
        person.sms_blocked_at, person.sms_blocked_reason = None, None
        ctx.session.add(person)
        log.info("supervisee %s opted in to SMS again", person.id)
    return [Reply(text(ctx.language, "sms.resubscribed"))]
