"""The warnings ledger: an officer records a warning with its reason; nothing is deleted, amendments are entries."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from content.catalog import text
from content.formatting import day_and_time
from content.refusals import Refused
from handlers.contract import Context, Inbound, Recipient, Reply, SenderKind, zone_of
from handlers.delivery import deliver
from handlers.officer import can_see, person_in_scope
from storage import audit
from storage.models import Officer, Supervisee, Warning_

log = logging.getLogger(__name__)

MAX_REASON = 500


class WarningError(Refused):
    """A warning that cannot be recorded; `render` says why in the reader's language."""

    section = "warning"


@dataclass
class LedgerLine:
    """A warning as it stands after its amendments."""

    entry: Warning_
    reason: str
    withdrawn: bool
    amended: list[Warning_]


def record(session: Session, officer: Officer, person: Supervisee, reason: str, now: datetime,
           zone, *, actor: str | None = None) -> Warning_:
    """Record a warning and tell the person, in their language, with the reason."""
    reason = reason.strip()[:MAX_REASON]
    if not reason:
        raise WarningError("no_reason")
    if not can_see(session, officer, person):
        raise WarningError("not_in_caseload", case=person.case_number, officer=officer.id)
    entry = Warning_(supervisee_id=person.id, officer_id=officer.id, kind="warning", reason=reason, created_at=now)
    session.add(entry)
    session.flush()
    deliver(session, Reply(text(person.language, "warning.to_person", officer=officer.name, reason=reason),
                           to=Recipient(SenderKind.supervisee, person.id), kind="warning"),
            now=now, dedupe_key=f"warning:{entry.id}")
    audit.append(session, actor=actor or f"officer:{officer.id}", action="warning.add", now=now,
                 supervisee_id=person.id, subject=f"warning:{entry.id}", details={"reason": reason})
    log.info("warning %s recorded for supervisee %s by officer %s", entry.id, person.id, officer.id)
    return entry


def amend(session: Session, officer: Officer, warning_id: int, reason: str, now: datetime, zone, *,
          withdraw: bool = False, actor: str | None = None) -> Warning_:
    """A correction (new reason) or a withdrawal of warning `warning_id`, as a new entry; the person is told."""
    original = session.get(Warning_, warning_id)
    if original is None or original.kind != "warning":
        raise WarningError("no_warning", id=warning_id)
    person = session.get(Supervisee, original.supervisee_id)
    if not can_see(session, officer, person):
        raise WarningError("not_in_caseload", case=person.case_number, officer=officer.id)
    reason = reason.strip()[:MAX_REASON]
    if not reason:
        raise WarningError("no_amend_reason")
    entry = Warning_(supervisee_id=person.id, officer_id=officer.id, kind="withdrawal" if withdraw else "correction",
                     amends_id=original.id, reason=reason, created_at=now)
    session.add(entry)
    session.flush()
    audit.append(session, actor=actor or f"officer:{officer.id}", action=f"warning.{entry.kind}", now=now,
                 supervisee_id=person.id, subject=f"warning:{original.id}", details={"reason": reason})
    key = "warning.withdrawn" if withdraw else "warning.corrected"
    when = day_and_time(original.created_at, zone_of(person, zone), person.language)
    deliver(session, Reply(text(person.language, key, when=when, reason=reason),
                           to=Recipient(SenderKind.supervisee, person.id), kind="warning"),
            now=now, dedupe_key=f"warning:{entry.id}")
    log.info("warning %s amended by entry %s (%s)", original.id, entry.id, entry.kind)
    return entry


def ledger(session: Session, person_id: int) -> list[LedgerLine]:
    """A person's warnings, oldest first, each with its amendments applied."""
    entries = session.exec(select(Warning_).where(Warning_.supervisee_id == person_id).order_by(Warning_.id)).all()
    lines: dict[int, LedgerLine] = {}
    for e in entries:
        if e.kind == "warning":
            lines[e.id] = LedgerLine(e, e.reason, False, [])
        elif e.amends_id in lines:
            line = lines[e.amends_id]
            line.amended.append(e)
            if e.kind == "withdrawal":
                line.withdrawn = True
            else:
                line.reason = e.reason
    return list(lines.values())


def standing_ids(session: Session, start: datetime, end: datetime) -> dict[int, int]:
    """Warnings given in [start, end) and not withdrawn, counted per supervisee."""
    withdrawn = select(Warning_.amends_id).where(Warning_.kind == "withdrawal")
    rows = session.exec(
        select(Warning_.supervisee_id, Warning_.id).where(
            Warning_.kind == "warning", Warning_.created_at >= start, Warning_.created_at < end,
            col(Warning_.id).not_in(withdrawn))
    ).all()
    out: dict[int, int] = {}
    for pid, _ in rows:
        out[pid] = out.get(pid, 0) + 1
    return out


async def warn(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/warn CASE reason (警告 CASE 原因): record a warning; the person is told."""
    parts = ctx.args.split(maxsplit=1)
    if len(parts) < 2:
        return [Reply(text(ctx.language, "warning.usage"))]
    person, refusal = person_in_scope(ctx, parts[0])
    if person is None:
        return refusal
    entry = record(ctx.session, ctx.sender.officer, person, parts[1], ctx.now, ctx.zone)
    return [Reply(text(ctx.language, "warning.recorded", id=entry.id, name=person.name))]


async def list_warnings(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/warnings CASE: the person's ledger."""
    person, refusal = person_in_scope(ctx, ctx.args.split(maxsplit=1)[0] if ctx.args else "")
    if person is None:
        return refusal
    lines = ledger(ctx.session, person.id)
    if not lines:
        return [Reply(text(ctx.language, "warning.none", name=person.name))]
    out = [text(ctx.language, "warning.header", name=person.name, count=sum(not x.withdrawn for x in lines))]
    for line in lines:
        state = text(ctx.language, "warning.state_withdrawn" if line.withdrawn else "warning.state_standing")
        out.append(text(ctx.language, "warning.line", id=line.entry.id, state=state, reason=line.reason,
                        when=day_and_time(line.entry.created_at, ctx.zone, ctx.language)))
    return [Reply("\n".join(out))]
