"""The morning digest: at the start of each working day, what is waiting for each officer, in one message."""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, func, select

from content.catalog import text
from content.formatting import day_and_time
from content.policy import Policy
from handlers.contract import Recipient, Reply, SenderKind
from handlers.delivery import deliver
from handlers.escalation import open_alerts, reachable
from handlers.officer import visible_clause
from handlers.study import month_start
from storage.models import SUPERVISED, Broadcast, Leave, LeaveState, Message, Officer, Supervisee

log = logging.getLogger(__name__)


@dataclass
class Waiting:
    """What one officer finds waiting in the morning."""

    alerts: int = 0
    oldest: datetime | None = None
    leave: int = 0
    notes: int = 0  # people's messages passed on to them since the last digest
    reports: int = 0  # written reports that reached them since the last digest
    behind: dict[str, int] | None = None  # monthly target -> people behind the month's pace

    def empty(self) -> bool:
        return not (self.alerts or self.leave or self.notes or self.reports or any((self.behind or {}).values()))


def behind_pace(now: datetime, zone: tzinfo, policy: Policy, monthly: dict) -> dict[str, ColumnElement]:
    """Per monthly target (study, service: its rule in the scheduled table), the condition on a `Supervisee` row
    of being below the month's pace so far: less than the target times the share of the month gone by. The
    database counts them per officer; nothing per person is held."""
    start = month_start(now, zone)
    local = now.astimezone(zone)
    share = (local.day - 1) / calendar.monthrange(local.year, local.month)[1]  # the days gone by, today not yet
    return {kind: rule.credited(start, now) < rule.target(policy).monthly_minutes * share
            for kind, rule in monthly.items()}


def waiting_for(session: Session, officer: Officer, now: datetime, since: datetime,
                behind: dict[str, ColumnElement]) -> Waiting:
    """`behind`: per monthly target, the condition of being behind the month's pace (`behind_pace`)."""
    w = Waiting()
    alerts = open_alerts(officer).subquery()
    w.alerts, w.oldest = session.exec(select(func.count(), func.min(alerts.c.opened_at))).one()
    visible = visible_clause(officer)
    leave = select(func.count()).select_from(Leave).where(Leave.state == LeaveState.requested)
    if visible is not None:
        leave = leave.join(Supervisee, Supervisee.id == Leave.supervisee_id).where(visible)
    w.leave = session.exec(leave).one()
    counts = dict(session.exec(
        select(Message.kind, func.count()).where(Message.officer_id == officer.id, Message.direction == "out",
                                                 col(Message.kind).in_(["contact", "report_notice"]),
                                                 Message.created_at >= since, Message.created_at < now)
        .group_by(Message.kind)).all())
    w.notes, w.reports = counts.get("contact", 0), counts.get("report_notice", 0)
    w.behind = {}
    for kind, is_behind in behind.items():
        people = select(func.count()).select_from(Supervisee).where(col(Supervisee.status).in_(SUPERVISED), is_behind)
        w.behind[kind] = session.exec(people if visible is None else people.where(visible)).one()
    return w


def render(officer: Officer, w: Waiting, zone: tzinfo) -> str:
    lang = officer.language
    lines = [text(lang, "digest.header", officer=officer.name)]
    if w.alerts:
        lines.append(text(lang, "digest.alerts", count=w.alerts, oldest=day_and_time(w.oldest, zone, lang)))
    if w.leave:
        lines.append(text(lang, "digest.leave", count=w.leave))
    if w.notes or w.reports:
        lines.append(text(lang, "digest.messages", notes=w.notes, reports=w.reports))
    behind = [text(lang, f"digest.behind_{k}", count=n) for k, n in (w.behind or {}).items() if n]
    if behind:
        lines.append(text(lang, "digest.behind", parts=("；" if lang.startswith("zh") else "; ").join(behind)))
    return "\n".join(lines)


def send_digests(session: Session, now: datetime, since: datetime, zone: tzinfo, policy: Policy,
                 monthly: dict) -> int:
    """One digest to every active officer who can be reached and has something waiting; how many went."""
    sent = 0
    behind = behind_pace(now, zone, policy, monthly)
    for officer in session.exec(select(Officer).where(Officer.active.is_(True)).order_by(Officer.id)).all():
        if not reachable(officer):
            continue
        w = waiting_for(session, officer, now, since, behind)
        if w.empty():
            continue
        deliver(session, Reply(render(officer, w, zone), to=Recipient(SenderKind.officer, officer.id),
                               kind="digest"),
                now=now, dedupe_key=f"digest:{officer.id}:{now.astimezone(zone):%Y-%m-%d}")
        sent += 1
    log.info("morning digest to %s officers", sent)
    return sent


def last_digest(session: Session, now: datetime) -> datetime:
    """When the previous morning's digests went (a day ago when there were none): what counts as new since."""
    last = session.exec(select(func.max(Broadcast.created_at)).where(Broadcast.kind == "digest",
                                                                     Broadcast.created_at < now)).one()
    return last or now - timedelta(days=1)
