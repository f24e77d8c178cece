"""The sweep at `now`: end supervisions, plan obligations, prompt, remind, mark missed, escalate.

Each step touches only rows that are due (indexed on state and time), never the
whole roster, except planning, which takes a bounded number of people per sweep.
Every step is idempotent: unique keys on obligations, escalations and outbox
rows, and state transitions made under row locks (SKIP LOCKED on PostgreSQL),
so running it twice, or in two workers at once, creates and sends nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from content.policy import Policy
from handlers import checkin, escalation, greetings, leave, location, purge, report, service, study
from handlers.delivery import deliver, reply_row
from handlers.types import zone_of
from handlers.cadence import quiet_end_after, slots
from storage.db import session_scope
from storage.outbox import enqueue_many
from storage.models import (
    OPEN_OBLIGATION,
    Broadcast,
    Escalation,
    EscalationState,
    Obligation,
    ObligationKind,
    ObligationState,
    Status,
    Supervisee,
)

log = logging.getLogger(__name__)

# Ended people are parked here so that planning's index walk never meets them again.
PLANNED_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)
ADVISORY_LOCK = 0x636B696E  # "ckin": one sweeper at a time on PostgreSQL
MAX_ROUNDS = 1000


@dataclass
class SweepReport:
    """What one sweep did."""

    ended: int = 0
    planned_people: int = 0
    planned: int = 0
    prompted: int = 0
    reminded: int = 0
    deferred: int = 0
    missed: int = 0
    excused: int = 0
    escalated: int = 0
    to_supervisor: int = 0
    greeted: int = 0
    study_reminded: int = 0
    study_escalated: int = 0
    service_reminded: int = 0
    service_escalated: int = 0
    partial: int = 0
    leave_reminded: int = 0
    leave_escalated: int = 0
    locations_purged: int = 0
    purge_notices_scrubbed: int = 0  # last messages of `checkin purge`, deleted once gone
    skipped: bool = False  # another worker held the sweep lock

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class SweepConfig:
    """Policy and the county's time zone."""

    policy: Policy
    zone: tzinfo
    batch: int = 500
    holiday_country: str = "CN"


@contextmanager
def _sweep_lock(engine: Engine) -> Iterator[bool]:
    """On PostgreSQL, a session advisory lock so that one worker sweeps at a time.

    The lock is keyed on the schema too: advisory locks are per database, and
    two instances (two counties, or two test runs) in different schemas of one
    database must not stop each other's sweeps.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = (ADVISORY_LOCK, func.hashtext(func.current_schema()))
    with engine.connect() as conn:
        got = conn.execute(select(func.pg_try_advisory_lock(*key))).scalar()
        conn.commit()
        try:
            yield bool(got)
        finally:
            if got:
                conn.execute(select(func.pg_advisory_unlock(*key)))
                conn.commit()


def sweep(engine: Engine, now: datetime, cfg: SweepConfig) -> SweepReport:
    """One sweep at `now`."""
    rep = SweepReport()
    with _sweep_lock(engine) as got:
        if not got:
            rep.skipped = True
            return rep
        with session_scope(engine) as s:
            _end_supervisions(s, now, cfg, rep)
        with session_scope(engine) as s:
            _plan(s, now, cfg, rep)
        for _ in range(MAX_ROUNDS):
            with session_scope(engine) as s:
                if not _advance_obligations(s, now, cfg, rep):
                    break
        for _ in range(MAX_ROUNDS):
            with session_scope(engine) as s:
                if not _step_up_escalations(s, now, cfg, rep):
                    break
        with session_scope(engine) as s:
            _greet(s, now, cfg, rep)
        with session_scope(engine) as s:
            _study_shortfall(s, now, cfg, rep)
        with session_scope(engine) as s:
            rep.leave_reminded, rep.leave_escalated = leave.due_steps(
                s, now, cfg.policy, lambda p: zone_of(p, cfg.zone), cfg.zone)
        with session_scope(engine) as s:
            rep.locations_purged = location.purge(s, now, cfg.policy)
            rep.purge_notices_scrubbed = purge.scrub_notices(s)
    if any(v for k, v in rep.as_dict().items() if k != "skipped"):
        log.info("sweep at %s: %s", now.isoformat(), {k: v for k, v in rep.as_dict().items() if v})
    return rep


def _end_supervisions(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> None:
    """People past their end date become `ended`; their open obligations are excused."""
    today = now.astimezone(cfg.zone).date()
    ids = list(s.exec(
        select(Supervisee.id).where(col(Supervisee.status).in_([Status.active, Status.lost_contact]),
                                    Supervisee.supervision_end < today)
    ).scalars())
    if not ids:
        return
    s.execute(update(Supervisee).where(col(Supervisee.id).in_(ids))
              .values(status=Status.ended, planned_until=PLANNED_FOREVER, updated_at=now))
    result = s.execute(
        update(Obligation)
        .where(col(Obligation.supervisee_id).in_(ids), col(Obligation.state).in_(OPEN_OBLIGATION))
        .values(state=ObligationState.excused, next_check_at=None)
    )
    rep.ended += len(ids)
    rep.excused += result.rowcount or 0
    log.info("supervision ended for %s people", len(ids))


def _plan(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> None:
    """Plan obligations up to the horizon for people whose plan runs short (bounded per sweep)."""
    policy = cfg.policy
    horizon = now + timedelta(days=policy.planning.horizon_days)
    refill = horizon - timedelta(days=1)
    # Never planned first, then those whose plan runs out soonest; two queries so that
    # each walks the planned_until index instead of the whole roster.
    people: list[Supervisee] = []
    for when in (col(Supervisee.planned_until).is_(None), col(Supervisee.planned_until) < refill):
        room = policy.planning.people_per_sweep - len(people)
        if room <= 0:
            break
        people += s.exec(
            select(Supervisee)
            .where(when)
            .order_by(Supervisee.planned_until, Supervisee.id)
            .limit(room)
            .with_for_update(skip_locked=True)
        ).scalars().all()
    rows = []
    # A person planned for the first time also gets today's check-in if its window is still open.
    first_start = now - policy.window.reply
    for person in people:
        start = person.planned_until or first_start
        if person.status == Status.ended:
            person.planned_until = PLANNED_FOREVER
            s.add(person)
            continue
        if start >= horizon:
            continue
        for slot in slots(policy, person.level, zone_of(person, cfg.zone), start, horizon,
                          person.supervision_start, person.supervision_end):
            rows.append(dict(
                supervisee_id=person.id, kind=slot.kind, period_key=slot.period_key, due_at=slot.due_at,
                remind_at=slot.remind_at, window_end_at=slot.window_end_at, state=ObligationState.planned,
                next_check_at=slot.due_at, created_at=now,
            ))
        person.planned_until = horizon
        s.add(person)
    insert = (postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert)(Obligation)
    for i in range(0, len(rows), 500):
        stmt = insert.values(rows[i:i + 500]).on_conflict_do_nothing(
            index_elements=["supervisee_id", "kind", "period_key"])
        rep.planned += s.execute(stmt).rowcount or 0
    rep.planned_people += len(people)


def _advance_obligations(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """Move due obligations on one step; True while there may be more."""
    due = s.exec(
        select(Obligation, Supervisee)
        .join(Supervisee, Supervisee.id == Obligation.supervisee_id)
        .where(col(Obligation.state).in_(OPEN_OBLIGATION), col(Obligation.next_check_at) <= now)
        .order_by(Obligation.next_check_at, Obligation.id)
        .limit(cfg.batch)
        .with_for_update(of=Obligation, skip_locked=True)
    ).all()
    rows: list[dict] = []  # prompts and reminders, inserted together
    for ob, person in due:
        _advance(s, ob, person, now, cfg, rep, rows)
        s.add(ob)
    enqueue_many(s, rows)
    return len(due) == cfg.batch


def _advance(s: Session, ob: Obligation, person: Supervisee, now: datetime, cfg: SweepConfig,
             rep: SweepReport, rows: list[dict]) -> None:
    zone = zone_of(person, cfg.zone)
    if person.status == Status.ended or now.astimezone(zone).date() > person.supervision_end:
        ob.state, ob.next_check_at = ObligationState.excused, None
        rep.excused += 1
        return
    if ob.window_end_at <= now:
        if ob.kind == ObligationKind.study:  # a week's study left undone: the monthly tally speaks for it
            ob.state, ob.next_check_at = ObligationState.missed, None
            rep.missed += 1
            return
        _miss(s, ob, person, now, cfg, rep,
              partial=ob.kind == ObligationKind.checkin and ob.location_required and ob.partial_at is not None)
        return
    if ob.state == ObligationState.reminded:  # window still open: look again when it closes
        ob.next_check_at = ob.window_end_at
        return
    quiet_end = quiet_end_after(now, cfg.policy.quiet_hours, zone)
    if quiet_end is not None:  # nothing goes to people in quiet hours: wait for the morning
        ob.next_check_at = min(quiet_end, ob.window_end_at)
        rep.deferred += 1
        return
    if ob.kind == ObligationKind.study:
        if ob.state == ObligationState.planned:
            study.send_module(s, person, now, obligation=ob)
            ob.state, ob.prompted_at, ob.next_check_at = ObligationState.prompted, now, ob.remind_at
            rep.prompted += 1
        else:
            rows.append(reply_row(s, study.reminder(ob, person, zone), now=now, dedupe_key=f"remind:{ob.id}"))
            ob.state, ob.reminded_at, ob.next_check_at = ObligationState.reminded, now, ob.window_end_at
            rep.reminded += 1
        return
    if ob.kind == ObligationKind.service:
        reply = service.prompt(s, ob, person, zone, reminder=ob.state == ObligationState.prompted)
        rows.append(reply_row(s, reply, now=now, dedupe_key=f"{'remind' if ob.state != 'planned' else 'prompt'}:{ob.id}"))
        if ob.state == ObligationState.planned:
            ob.state, ob.prompted_at = ObligationState.prompted, now
            ob.next_check_at = ob.remind_at if ob.remind_at and ob.remind_at > now else ob.window_end_at
            rep.prompted += 1
        else:
            ob.state, ob.reminded_at, ob.next_check_at = ObligationState.reminded, now, ob.window_end_at
            rep.reminded += 1
        return
    if ob.state == ObligationState.planned:
        if ob.kind == ObligationKind.checkin:
            ob.location_required = location.required(cfg.policy, person)
            reply = checkin.prompt(ob, person, zone)
        else:
            reply = report.prompt(ob, person, zone, period="week" if "W" in ob.period_key else "month")
        rows.append(reply_row(s, reply, now=now, dedupe_key=f"prompt:{ob.id}"))
        ob.state, ob.prompted_at = ObligationState.prompted, now
        # A prompt sent after the reminder point (catch-up) gets no reminder on its heels.
        ob.next_check_at = ob.remind_at if ob.remind_at and ob.remind_at > now else ob.window_end_at
        rep.prompted += 1
    elif ob.state == ObligationState.prompted:
        if ob.kind == ObligationKind.checkin:
            reply = checkin.reminder(ob, person, zone)
        else:
            reply = report.prompt(ob, person, zone, reminder=True)
        rows.append(reply_row(s, reply, now=now, dedupe_key=f"remind:{ob.id}"))
        ob.state, ob.reminded_at, ob.next_check_at = ObligationState.reminded, now, ob.window_end_at
        rep.reminded += 1


def _miss(s: Session, ob: Obligation, person: Supervisee, now: datetime, cfg: SweepConfig,
          rep: SweepReport, *, partial: bool = False) -> None:
    """The window closed unanswered (missed), or answered without the location it needed (partial): escalate."""
    ob.state, ob.next_check_at = (ObligationState.partial if partial else ObligationState.missed), None
    rep.partial += partial
    rep.missed += not partial
    s.add(ob)
    s.flush()
    kind = "location_missing" if partial else f"missed_{ob.kind}"
    if escalation.open_escalation(s, person, kind, now, cfg.policy.escalation.officer_sla, cfg.zone, obligation=ob):
        rep.escalated += 1


def _step_up_escalations(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """Escalations the officer has not acknowledged within the SLA go to the supervisor."""
    due = s.exec(
        select(Escalation)
        .where(Escalation.state == EscalationState.open, col(Escalation.officer_due_at) <= now)
        .order_by(Escalation.officer_due_at, Escalation.id)
        .limit(cfg.batch)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    for esc in due:
        if escalation.step_up(s, esc, now, cfg.zone):
            rep.to_supervisor += 1
    return len(due) == cfg.batch


def _greet(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> None:
    """On the morning of a holiday's first day, greet everyone once (the broadcast key remembers)."""
    rule = cfg.policy.greetings
    local = now.astimezone(cfg.zone)
    if not rule.enabled or local.time() < rule.time:
        return
    holiday = _holiday_today(cfg.holiday_country, local.date())
    if holiday is None or greetings.already_run(s, greetings.greeting_key(holiday)):
        return
    result = greetings.enqueue_bulk(
        s, key=greetings.greeting_key(holiday), kind="greeting", section="greeting", template=holiday.slug,
        now=now, audience=greetings.Audience(), holiday=holiday,
    )
    rep.greeted += result.queued


@lru_cache(maxsize=64)
def _holiday_today(country: str, day: date) -> greetings.Holiday | None:
    return next((h for h in greetings.holidays_in(country, day.year) if h.day == day), None)


def _study_shortfall(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> None:
    """On the policy's days, remind those behind on the month's study and service, then escalate (once each)."""
    local = now.astimezone(cfg.zone)
    if local.time() < cfg.policy.greetings.time:
        return
    month = study.month_start(now, cfg.zone)
    for what, rule in (("study", cfg.policy.study), ("service", cfg.policy.service)):
        if local.day not in (rule.remind_day, rule.escalate_day):
            continue
        step = "remind" if local.day == rule.remind_day else "escalate"
        key = f"{what}-{step}:{local:%Y-%m}"
        if greetings.already_run(s, key):
            continue
        if what == "study":
            tally = study.month_tally(s, now, cfg.zone)
        else:
            tally = {pid: round(h * 60) for pid, h in service.month_tally(s, month, now).items()}
        behind = {pid: m for pid, m in tally.items() if m < rule.monthly_minutes}
        for person in (s.get(Supervisee, pid) for pid in behind):
            if step == "remind":
                make = study.shortfall_reminder if what == "study" else service.shortfall_reminder
                deliver(s, make(person, behind[person.id], rule.monthly_minutes), now=now,
                        dedupe_key=f"{key}:{person.id}")
                rep.study_reminded += what == "study"
                rep.service_reminded += what == "service"
            elif escalation.open_escalation(s, person, f"{what}_shortfall", now, cfg.policy.escalation.officer_sla,
                                            cfg.zone, facts={"minutes": behind[person.id], "day": rule.remind_day,
                                                             "required": rule.monthly_minutes}):
                rep.study_escalated += what == "study"
                rep.service_escalated += what == "service"
        s.add(Broadcast(key=key, kind=what, template=step, queued=len(behind), created_at=now))
