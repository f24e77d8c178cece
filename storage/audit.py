"""The audit trail: an append-only, hash-chained log of what officers and administrators did.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own
content (time, actor, action, person, subject and the SHA-256 of its details,
in canonical JSON), so
changing, deleting or reordering any entry breaks the chain from there on, and
`verify` names the first entry that does not fit. Appends are serialised (a
transaction-scoped advisory lock on PostgreSQL, the write lock on SQLite), so
two workers never chain onto the same predecessor.

The details themselves (a warning's reason, a leave note) are personal data:
stored encrypted, and removed by `checkin purge` with the rest of a person's
data. The chain covers their hash, so a purged entry still verifies, and a
changed detail does not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Text, func, select, type_coerce
from sqlmodel import Session, col

from storage.crypto import DecryptError, keyring_for
from storage.models import AuditEntry

GENESIS = "0" * 64
AUDIT_LOCK = 0x61756474  # "audt"


def _digest(prev_hash: str, at: datetime, actor: str, action: str, supervisee_id: int | None,
            subject: str | None, details_hash: str) -> str:
    content = json.dumps([prev_hash, at.astimezone(UTC).isoformat(), actor, action, supervisee_id, subject,
                          details_hash],
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def append(session: Session, *, actor: str, action: str, now: datetime, supervisee_id: int | None = None,
           subject: str | None = None, details: dict | None = None) -> AuditEntry:
    """Add one entry at the end of the chain (in the caller's transaction: it stands or falls with the action)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(AUDIT_LOCK, func.hashtext(func.current_schema()))))
    last = session.execute(select(AuditEntry.hash).order_by(col(AuditEntry.id).desc()).limit(1)).scalar()
    prev = last or GENESIS
    body = json.dumps(details or {}, ensure_ascii=False, sort_keys=True)
    details_hash = sha256(body)
    entry = AuditEntry(at=now, actor=actor, action=action, supervisee_id=supervisee_id, subject=subject,
                       details=body, details_hash=details_hash, prev_hash=prev,
                       hash=_digest(prev, now, actor, action, supervisee_id, subject, details_hash))
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    first_bad: int | None = None  # id of the first entry that does not fit
    reason: str = ""
    purged: int = 0  # entries whose details a purge removed (their hash is still in the chain)
    # The hash of the last entry: write it down; `--expect` checks later that it is still there.
    head: str = field(default=GENESIS, compare=False)
    seen: frozenset[str] = field(default=frozenset(), compare=False)  # the `expect` hashes found in the chain


def verify(session: Session, batch: int = 5000, expect: frozenset[str] = frozenset()) -> Verdict:
    """Walk the chain in order; the first entry whose link or content does not match is named.

    A chain cut at its end still links up: the hashes in `expect` (heads written down earlier) that are
    not found in it show that entries were removed from the end.
    """
    keyring = keyring_for(session)
    t = AuditEntry.__table__.c
    purpose = AuditEntry.__table__.c.details.type.purpose
    prev, count, after, purged, seen = GENESIS, 0, 0, 0, set()
    while True:
        rows = session.execute(
            select(t.id, t.at, t.actor, t.action, t.supervisee_id, t.subject, t.details_hash, t.prev_hash, t.hash,
                   type_coerce(t.details, Text).label("sealed"))  # decrypted here: a damaged value is a finding
            .where(t.id > after).order_by(t.id).limit(batch)).all()
        if not rows:
            return Verdict(True, count, purged=purged, head=prev, seen=frozenset(seen))
        for e in rows:
            if e.prev_hash != prev:
                return Verdict(False, count, e.id, "does not follow the entry before it (one was removed or "
                                                   "the order changed)")
            if _digest(e.prev_hash, e.at, e.actor, e.action, e.supervisee_id, e.subject, e.details_hash) != e.hash:
                return Verdict(False, count, e.id, "its content was changed after it was written")
            if e.sealed is None:
                purged += 1
            else:
                try:
                    details = keyring.decrypt(purpose, e.sealed)
                except DecryptError:
                    details = None
                if details is None or sha256(details) != e.details_hash:
                    return Verdict(False, count, e.id, "its details were changed after it was written")
            prev, count, after = e.hash, count + 1, e.id
            if e.hash in expect:
                seen.add(e.hash)


def history(session: Session, supervisee_id: int) -> list[AuditEntry]:
    """One person's entries, oldest first."""
    return list(session.exec(select(AuditEntry).where(AuditEntry.supervisee_id == supervisee_id)
                             .order_by(AuditEntry.id)).scalars())
