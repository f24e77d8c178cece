"""Location check-ins ("the electronic wall"): who must share a location, where a shared point falls, and what follows.

A shared point is judged against the person's allowed area: the county (the
policy's `home_area`), plus the destination of approved leave with the area
moved, or nothing at all while approved leave suspends the check. Inside closes
the waiting check-in; outside without leave closes it too (the person did
answer) and opens an "out of area" escalation with the distance and a map link.
Only what the check is about is kept (point, accuracy, time, area, inside or
not, distance), for the policy's retention period; the point is never logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete
from sqlmodel import Session, col, select

from content.areas import Area, Areas, map_link
from content.catalog import text
from content.policy import Policy
from handlers import checkin
from handlers.addressing import route_for
from handlers.contract import Context, Inbound, Location, Reply
from handlers.escalation import open_escalation
from storage.models import (
    ChannelName,
    EscalationKind,
    Leave,
    LeaveState,
    LocationCheck,
    Obligation,
    ObligationState,
    Supervisee,
)

log = logging.getLogger(__name__)


def requirement(policy: Policy, person: Supervisee) -> str:
    """`required` (the level needs it and Telegram reaches the person), `exempt_sms`, or `not_required`."""
    if person.level not in policy.location.levels:
        return "not_required"
    return "required" if route_for(person)[0] == ChannelName.telegram else "exempt_sms"


def required(policy: Policy, person: Supervisee) -> bool:
    """Whether this person's check-in prompts ask for a location share now."""
    return requirement(policy, person) == "required"


def leave_on(session: Session, person_id: int, day: date) -> Leave | None:
    """The person's approved leave covering `day` (local), if any."""
    return session.exec(
        select(Leave).where(Leave.supervisee_id == person_id, Leave.state == LeaveState.approved,
                            Leave.starts_on <= day, Leave.ends_on >= day)
        .order_by(col(Leave.id).desc())
    ).first()


@dataclass(frozen=True)
class Judgement:
    """Where a point fell and whether that was allowed."""

    area: Area | None  # the smallest known area holding the point
    allowed: list[Area]  # what it was checked against; empty: not checked (leave suspends the check)
    inside: bool | None
    distance_m: float | None
    leave: Leave | None


def judge(session: Session, areas: Areas, policy: Policy, person: Supervisee, point: Location,
          day: date) -> Judgement:
    """Judge a point against the person's allowed area on `day`."""
    leave = leave_on(session, person.id, day)
    where = areas.where(point.latitude, point.longitude)
    if leave is not None and leave.mode == "suspend":
        return Judgement(where, [], None, None, leave)
    allowed = [areas.home(policy.location.home_area)]
    if leave is not None and leave.mode == "move" and areas.get(leave.destination_area):
        allowed.append(areas.get(leave.destination_area))
    fixes = [a.check(point.latitude, point.longitude, point.accuracy, policy.location.accuracy_credit_m)
             for a in allowed]
    inside = any(f.inside for f in fixes)
    return Judgement(where, allowed, inside, min(f.distance_m for f in fixes), leave)


def _open_checkin(session: Session, person_id: int, now: datetime) -> Obligation | None:
    """The check-in a shared point answers: the waiting one, else the latest of the last day not yet answered."""
    ob = checkin.current(session, person_id, now)
    if ob is None or ob.state in (ObligationState.done, ObligationState.late, ObligationState.excused):
        return None
    return ob


async def share(inbound: Inbound, ctx: Context) -> list[Reply]:
    """A supervisee shares a location: store what the check needs, judge it, close the check-in, escalate if outside."""
    person, session, now, lang = ctx.sender.supervisee, ctx.session, ctx.now, ctx.language
    policy = ctx.policy
    point = inbound.location
    day = now.astimezone(ctx.person_zone).date()
    verdict = judge(session, ctx.areas, policy, person, point, day)
    ob = _open_checkin(session, person.id, now)
    row = LocationCheck(
        supervisee_id=person.id, obligation_id=ob.id if ob else None,
        leave_id=verdict.leave.id if verdict.leave else None,
        latitude=round(point.latitude, 6), longitude=round(point.longitude, 6),
        accuracy_m=round(point.accuracy, 1) if point.accuracy is not None else None, taken_at=now,
        area=verdict.area.key if verdict.area else None,
        allowed_area="+".join(a.key for a in verdict.allowed) or None,
        inside=verdict.inside, distance_m=round(verdict.distance_m) if verdict.distance_m is not None else None,
    )
    session.add(row)
    session.flush()
    log.info("location check %s for supervisee %s: inside=%s", row.id, person.id, verdict.inside)
    on_time = checkin.settle(session, ob, person, now, ctx.zone) if ob is not None else None
    person.last_contact_kind = "location"
    session.add(person)
    if verdict.inside is False:
        facts = {"check": row.id, "distance_m": row.distance_m, "accuracy_m": row.accuracy_m, "at": now.isoformat(),
                 "map": map_link(policy.location.map_url, point.latitude, point.longitude),
                 # names as they were, so that the alert reads the same whatever the area file says later
                 "allowed": {lg: " / ".join(a.name(lg) for a in verdict.allowed) for lg in ("zh-CN", "en")},
                 "where": {lg: verdict.area.name(lg) for lg in ("zh-CN", "en")} if verdict.area else None}
        open_escalation(session, person, EscalationKind.out_of_area, now, policy, ctx.zone,
                        obligation=ob, facts=facts)
        reply = Reply(text(lang, "location.outside", area=verdict.allowed[0].name(lang)))
    elif verdict.leave is not None and verdict.inside is None:
        reply = Reply(text(lang, "location.received_on_leave", destination=verdict.leave.destination))
    elif ob is None:
        reply = Reply(text(lang, "location.received_no_checkin"))
    elif on_time:
        reply = checkin.received(ctx)
    else:
        reply = Reply(text(lang, "location.received_late"))
    reply.remove_keyboard = True
    return [reply]


def purge(session: Session, now: datetime, policy: Policy, limit: int = 5000) -> int:
    """Delete shared points older than the retention period (at most `limit` per call)."""
    cutoff = now - policy.location.retention
    ids = list(session.exec(select(LocationCheck.id).where(LocationCheck.taken_at < cutoff)
                            .order_by(LocationCheck.taken_at).limit(limit)))
    if ids:
        session.execute(delete(LocationCheck).where(col(LocationCheck.id).in_(ids)))
        log.info("deleted %s location checks past retention", len(ids))
    return len(ids)
