"""What an unanswered check-in call becomes: placed again a little later, while the check-in can still be answered."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, tzinfo

from sqlmodel import Session

from content.policy import Policy
from handlers.cadence import quiet_end_after
from storage.models import OPEN_OBLIGATION, Message, MessageStatus, Obligation

log = logging.getLogger(__name__)

CALLED_FOR = {"checkin_prompt": "prompt", "checkin_reminder": "remind"}  # message kind -> its dedupe key's step


def call_again(session: Session, msg: Message, now: datetime, *, policy: Policy, zone: tzinfo) -> bool:
    """A check-in call not answered (no answer, busy, a voicemail): queue the same call `policy.voice.retry_minutes`
    later, at most `retries` times, while its check-in is open, before its window closes and outside quiet hours.
    True when it will be placed again; else the call stays as it ended and the check-in takes its usual course."""
    step = CALLED_FOR.get(msg.kind)
    if step is None or msg.attempts > policy.voice.retries or not (msg.dedupe_key or "").startswith(f"{step}:"):
        return False
    ob = session.get(Obligation, int(msg.dedupe_key.partition(":")[2]))
    at = now + timedelta(minutes=policy.voice.retry_minutes)
    if (ob is None or ob.state not in OPEN_OBLIGATION or at >= ob.window_end_at
            or quiet_end_after(at, policy.quiet_hours, zone) is not None):
        return False
    msg.status, msg.next_attempt_at, msg.updated_at = MessageStatus.queued, at, now
    msg.expires_at = ob.window_end_at  # never placed once the check-in is over, whenever the drain gets to it
    session.add(msg)
    log.info("call for message %s not answered: placed again at %s (attempt %s)", msg.id, at.isoformat(),
             msg.attempts + 1)
    return True
