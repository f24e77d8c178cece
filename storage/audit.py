"""The audit trail: an append-only, hash-chained log of what officers and administrators did.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own
content (time, actor, action, person, subject, details, in canonical JSON), so
changing, deleting or reordering any entry breaks the chain from there on, and
`verify` names the first entry that does not fit. Appends are serialised (a
transaction-scoped advisory lock on PostgreSQL, the write lock on SQLite), so
two workers never chain onto the same predecessor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlmodel import Session, col

from storage.models import AuditEntry

GENESIS = "0" * 64
AUDIT_LOCK = 0x61756474  # "audt"


def _digest(prev_hash: str, at: datetime, actor: str, action: str, supervisee_id: int | None,
            subject: str | None, details: str) -> str:
    content = json.dumps([prev_hash, at.astimezone(UTC).isoformat(), actor, action, supervisee_id, subject, details],
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def append(session: Session, *, actor: str, action: str, now: datetime, supervisee_id: int | None = None,
           subject: str | None = None, details: dict | None = None) -> AuditEntry:
    """Add one entry at the end of the chain (in the caller's transaction: it stands or falls with the action)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK, func.hashtext(func.current_schema()))))
    last = session.execute(select(AuditEntry.hash).order_by(col(AuditEntry.id).desc()).limit(1)).scalar()
    prev = last or GENESIS
    body = json.dumps(details or {}, ensure_ascii=False, sort_keys=True)
    entry = AuditEntry(at=now, actor=actor, action=action, supervisee_id=supervisee_id, subject=subject,
                       details=body, prev_hash=prev,
                       hash=_digest(prev, now, actor, action, supervisee_id, subject, body))
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    first_bad: int | None = None  # id of the first entry that does not fit
    reason: str = ""


def verify(session: Session, batch: int = 5000) -> Verdict:
    """Walk the chain in order; the first entry whose link or content does not match is named."""
    prev, count, after = GENESIS, 0, 0
    while True:
        rows = session.exec(select(AuditEntry).where(AuditEntry.id > after).order_by(AuditEntry.id)
                            .limit(batch)).scalars().all()
        if not rows:
            return Verdict(True, count)
        for e in rows:
            if e.prev_hash != prev:
                return Verdict(False, count, e.id, "does not follow the entry before it (one was removed or "
                                                   "the order changed)")
            if _digest(e.prev_hash, e.at, e.actor, e.action, e.supervisee_id, e.subject, e.details) != e.hash:
                return Verdict(False, count, e.id, "its content was changed after it was written")
            prev, count, after = e.hash, count + 1, e.id


def history(session: Session, supervisee_id: int) -> list[AuditEntry]:
    """One person's entries, oldest first."""
    return list(session.exec(select(AuditEntry).where(AuditEntry.supervisee_id == supervisee_id)
                             .order_by(AuditEntry.id)).scalars())
