"""The message table as outbox: enqueue with a dedupe key, claim, record results."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlmodel import Session

from storage.db import insert_ignoring
from storage.models import Direction, Message, MessageStatus

# A row left in `sending` longer than this (its sender died) is claimed again.
CLAIM_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class Outgoing:
    """A claimed outbox row, detached from the session."""

    id: int
    channel: str
    address: str
    body: str
    payload: dict
    attempts: int
    kind: str
    supervisee_id: int | None = None


def insert_ignore(session: Session, row: dict, conflict: list[str]) -> int | None:
    """INSERT a message row unless `conflict` columns clash; the new id or None."""
    table = Message.__table__  # Core, not the ORM's bulk path: this runs for every message in and out
    ins = insert_ignoring(session, table)
    stmt = ins.values(**row).on_conflict_do_nothing(index_elements=conflict).returning(table.c.id)
    return session.execute(stmt).scalar_one_or_none()


def outbound_row(
    *,
    channel: str,
    address: str,
    body: str,
    now: datetime,
    dedupe_key: str | None = None,
    kind: str = "reply",
    payload: dict | None = None,
    supervisee_id: int | None = None,
    officer_id: int | None = None,
    not_before: datetime | None = None,
) -> dict:
    """The column values of one queued outbound message."""
    return dict(
        direction=Direction.outbound,
        channel=channel,
        address=address,
        body=body,
        payload=json.dumps(payload, ensure_ascii=False) if payload else None,
        status=MessageStatus.queued,
        kind=kind,
        supervisee_id=supervisee_id,
        officer_id=officer_id,
        attempts=0,
        next_attempt_at=not_before or now,
        dedupe_key=dedupe_key,
        created_at=now,
        updated_at=now,
    )


def enqueue(session: Session, **fields) -> int | None:
    """Queue one outbound message; a second enqueue with the same dedupe key does nothing.

    Takes the arguments of `outbound_row`. Returns the new row's id, or None
    when the key was already there.
    """
    row = outbound_row(**fields)
    if row["dedupe_key"] is None:
        msg = Message(**row)
        session.add(msg)
        session.flush()
        return msg.id
    return insert_ignore(session, row, ["dedupe_key"])


def expire(session: Session, now: datetime) -> int:
    """Mark bulk messages past their `expires_at` and not sent `expired`; how many."""
    result = session.execute(
        update(Message)
        .where(Message.direction == Direction.outbound,
               Message.status.in_([MessageStatus.queued, MessageStatus.sending]),
               Message.expires_at.is_not(None), Message.expires_at <= now)
        .values(status=MessageStatus.expired, error_code="expired", updated_at=now))
    return result.rowcount or 0


def oldest_due(session: Session, now: datetime) -> datetime | None:
    """When the longest-waiting message due and not yet sent fell due (None: nothing waits)."""
    return session.execute(select(func.min(Message.next_attempt_at)).where(
        Message.status == MessageStatus.queued, Message.next_attempt_at <= now)).scalar()


def enqueue_many(session: Session, rows: list[dict]) -> None:
    """Queue many rows from `outbound_row` in one statement; rows whose dedupe key exists are skipped."""
    if not rows:
        return
    session.flush()  # pending ORM changes first, then the rows through Core (no ORM bulk bookkeeping)
    ins = insert_ignoring(session, Message)
    session.connection().execute(ins.on_conflict_do_nothing(index_elements=["dedupe_key"]), rows)


def claim(
    session: Session,
    now: datetime,
    channels: list[str],
    limit: int = 100,
    recipient: tuple[str, int] | None = None,
    lease_now: datetime | None = None,
    lease: timedelta = CLAIM_LEASE,
) -> list[Outgoing]:
    """Claim up to `limit` due rows for `channels`, marking them `sending`.

    Rows are due by `now` (the service's clock, which may be simulated); the
    claim's lease runs on `lease_now` (the wall clock, by default `now`): a
    row left `sending` by a drain that died is taken again CLAIM_LEASE later
    in real time, however fast a simulated clock runs.

    On PostgreSQL the candidate rows are locked FOR UPDATE SKIP LOCKED, so
    concurrent drains take disjoint rows; on SQLite the write lock taken at
    BEGIN IMMEDIATE serialises claims. The UPDATE re-checks the status either way.
    """
    lease_now = lease_now or now
    due = or_(
        and_(Message.status == MessageStatus.queued, Message.next_attempt_at <= now),
        and_(Message.status == MessageStatus.sending, Message.claimed_at <= lease_now - lease),
    )
    fresh = or_(Message.expires_at.is_(None), Message.expires_at > now)  # the sweep marks the others expired
    cond = [Message.direction == Direction.outbound, Message.channel.in_(channels), due, fresh]
    if recipient is not None:  # ("supervisee" | "officer", id): addresses are encrypted, ids are not
        kind, rid = recipient
        cond.append((Message.officer_id if kind == "officer" else Message.supervisee_id) == rid)
    ids = (
        session.execute(
            select(Message.id)
            .where(*cond)
            .order_by(Message.next_attempt_at, Message.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    token = secrets.token_hex(8)
    session.execute(
        update(Message)
        .where(Message.id.in_(ids), due)
        .values(
            status=MessageStatus.sending,
            claimed_at=lease_now,
            claim_token=token,
            attempts=Message.attempts + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(
            Message.id, Message.channel, Message.address, Message.body,
            Message.payload, Message.attempts, Message.kind, Message.supervisee_id,
        )
        .where(Message.claim_token == token)
        .order_by(Message.next_attempt_at, Message.id)
    ).all()
    return [
        Outgoing(r.id, r.channel, r.address, r.body, json.loads(r.payload or "{}"), r.attempts, r.kind,
                 r.supervisee_id)
        for r in rows
    ]


def record_sent_many(session: Session, sent: list[tuple[int, str | None]], now: datetime) -> None:
    """Many rows the provider took, in one statement (executemany by primary key)."""
    if sent:  # Core executemany: the ORM's bulk update by primary key costs more than the statement
        t = Message.__table__
        session.connection().execute(
            update(t).where(t.c.id == bindparam("mid")).values(
                status=MessageStatus.sent, provider_id=bindparam("pid"), sent_at=now, error_code=None,
                error_detail=None, claim_token=None, updated_at=now),
            [{"mid": mid, "pid": pid} for mid, pid in sent])


def record_retry(
    session: Session, message_id: int, code: str | None, detail: str, retry_at: datetime, now: datetime
) -> None:
    """A transient failure: back to the queue until `retry_at`."""
    session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(
            status=MessageStatus.queued, error_code=code, error_detail=detail[:500],
            next_attempt_at=retry_at, claim_token=None, updated_at=now,
        )
    )


def record_failed(session: Session, message_id: int, code: str | None, detail: str, now: datetime) -> None:
    """A permanent failure: no more attempts."""
    session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(
            status=MessageStatus.failed, error_code=code, error_detail=detail[:500],
            claim_token=None, updated_at=now,
        )
    )


def _by_provider_id(session: Session, channel: str, provider_id: str) -> Message | None:
    """The outbound message the provider knows as `provider_id`."""
    return session.exec(
        select(Message).where(Message.channel == channel, Message.direction == Direction.outbound,
                              Message.provider_id == provider_id)
    ).scalars().first()


# Twilio's statuses as they arrive by callback; earlier ones never overwrite later ones.
_STATUS_ORDER = {"queued": 0, "accepted": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}


def record_status(session: Session, channel: str, provider_id: str, status: str, error_code: str | None,
                  now: datetime) -> Message | None:
    """A delivery status callback: update the row (never backwards); the row, or None if unknown."""
    msg = _by_provider_id(session, channel, provider_id)
    if msg is None or status not in _STATUS_ORDER:
        return msg
    if _STATUS_ORDER[status] >= _STATUS_ORDER.get(msg.status, 0):
        msg.status = status
        if error_code:
            msg.error_code = error_code
        msg.updated_at = now
        session.add(msg)
    return msg


# How a call ended, as a message's delivery: answered (by a person or a machine) or not reached.
CALL_OUTCOME = {"completed": "delivered", "no-answer": "undelivered", "busy": "undelivered", "failed": "failed",
                "canceled": "undelivered"}


def record_call_status(session: Session, call_sid: str, call_status: str, error_code: str | None,
                       now: datetime) -> Message | None:
    """A call's outcome on the message it carried: completed is delivered; no answer, busy, cancelled are
    undelivered and failed is failed, with the call's status kept as the error code. A call has one outcome: only
    a message still `sent` takes it (the status callback after a voicemail, or of a call since placed again, is
    late news); the row when it did, else None."""
    status = CALL_OUTCOME.get(call_status)
    if status is None:  # ringing, in-progress: not an outcome
        return None
    msg = _by_provider_id(session, "voice", call_sid)
    if msg is None or msg.status != MessageStatus.sent:
        return None
    msg.status, msg.updated_at = status, now
    msg.error_code = error_code or (None if status == "delivered" else call_status)
    session.add(msg)
    return msg
