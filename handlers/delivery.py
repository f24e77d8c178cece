"""Turn replies into outbox rows: to the sender, or to whoever `Reply.to` names."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from handlers.addressing import route_for
from handlers.contract import Reply, SenderKind
from storage import outbox
from storage.models import Officer, Supervisee


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
