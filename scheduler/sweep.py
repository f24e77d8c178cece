"""The sweep at `now`: end supervisions, plan obligations, prompt, remind, mark missed, escalate.

Each step touches only rows that are due (indexed on state and time), never the
whole roster, except planning, which takes a bounded number of people per sweep.
Every step is idempotent: unique keys on obligations, escalations and outbox
rows, and state transitions made under row locks (SKIP LOCKED on PostgreSQL),
so running it twice, or in two workers at once, creates and sends nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from content.policy import Policy
from handlers import case_life, digest, escalation, greetings, leave, location, purge, study
from handlers.cadence import quiet_end_after
from handlers.contract import zone_of
from handlers.delivery import deliver, reply_row
from handlers.office_hours import is_working_day
from handlers.schedule import Due, ObligationRule, Schedule, default_schedule
from storage import outbox as outbox_rows
from storage.db import insert_ignoring, session_scope
from storage.models import (
    OPEN_OBLIGATION,
    SUPERVISED,
    Broadcast,
    ChannelName,
    Escalation,
    EscalationState,
    Obligation,
    ObligationState,
    Status,
    Supervisee,
    written_in,
)
from storage.outbox import enqueue_many
from storage.service_models import beat

log = logging.getLogger(__name__)

# Ended people are parked here so that planning's index walk never meets them again.
PLANNED_FOREVER = datetime(9999, 1, 1, tzinfo=UTC)
ADVISORY_LOCK = 0x636B696E  # "ckin": one sweeper at a time on PostgreSQL
MAX_ROUNDS = 1000
PLAN_AT_ONCE = 250  # people planned in one transaction: what planning holds in memory at a time
SHORTFALL_AT_ONCE = 1000  # people reminded or escalated for a monthly target in one transaction (MAX_ROUNDS times)


@dataclass
class SweepReport:
    """What one sweep did."""

    ended: int = 0
    planned_people: int = 0
    planned: int = 0
    prompted: int = 0
    reminded: int = 0
    called: int = 0  # calls before a check-in is missed, to people not on voice
    deferred: int = 0
    missed: int = 0
    excused: int = 0
    escalated: int = 0
    stepped_up: int = 0  # alerts that went on to the next rung of their ladder
    outcome_reminded: int = 0  # acknowledged alerts with no outcome in time: reminded
    greeted: int = 0
    study_reminded: int = 0
    study_escalated: int = 0
    service_reminded: int = 0
    service_escalated: int = 0
    partial: int = 0
    leave_reminded: int = 0
    leave_escalated: int = 0
    leave_undecided: int = 0  # requests nobody decided in time: alerts opened
    lost_contact: int = 0  # people found out of contact (and escalated)
    contact_resumed: int = 0  # people in lost contact who answered again or were reached
    digests: int = 0  # morning digests sent to officers
    locations_purged: int = 0
    expired: int = 0  # bulk messages dropped unsent at their expiry
    purge_notices_scrubbed: int = 0  # last messages of `checkin purge`, deleted once gone
    skipped: bool = False  # another worker held the sweep lock
    # Where a step done in several transactions got to (its key -> last id, count so far); not a figure.
    progress: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "progress"}


@dataclass(frozen=True)
class SweepConfig:
    """Policy, the county's time zone, and the scheduled table the sweep walks."""

    policy: Policy
    zone: tzinfo
    batch: int = 500
    holiday_country: str = "CN"
    schedule: Schedule = field(default_factory=default_schedule)
    calls: bool = False  # the voice channel is set up: people can be called


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
    """One sweep at `now`: each step of `STEPS` in its own transaction(s)."""
    rep = SweepReport()
    started = time.perf_counter()
    with _sweep_lock(engine) as got:
        if not got:
            rep.skipped = True
            return rep
        for step in STEPS:
            for _ in range(MAX_ROUNDS):  # a step that returns True has more to do: another transaction
                with session_scope(engine) as s, escalation.grouped_alerts(s, now, cfg.policy):
                    more = step(s, now, cfg, rep)
                if not more:
                    break
        with session_scope(engine) as s:  # for checkin doctor, /healthz and /metrics: the sweep is alive
            beat(s, "sweep", now, time.perf_counter() - started)
    if any(v for k, v in rep.as_dict().items() if k != "skipped"):
        log.info("sweep at %s: %s", now.isoformat(), {k: v for k, v in rep.as_dict().items() if v})
    return rep


def _end_supervisions(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """People past their end date become `ended`; their open obligations are excused."""
    today = now.astimezone(cfg.zone).date()
    ids = list(s.exec(
        select(Supervisee.id).where(col(Supervisee.status).in_(SUPERVISED),
                                    Supervisee.supervision_end < today)
    ).scalars())
    if not ids:
        return False
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
    return False


def _plan(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """Plan obligations up to the horizon for people whose plan runs short (bounded per sweep).

    PLAN_AT_ONCE people per transaction, and True while the sweep may plan more:
    the memory planning takes is that of one small group, whatever the roster.
    """
    policy = cfg.policy
    horizon = now + timedelta(days=policy.planning.horizon_days)
    refill = horizon - timedelta(days=1)
    budget = min(PLAN_AT_ONCE, policy.planning.people_per_sweep - rep.planned_people)
    if budget <= 0:
        return False
    # Never planned first, then those whose plan runs out soonest; two queries so that
    # each walks the planned_until index instead of the whole roster.
    people: list[Supervisee] = []
    for when in (col(Supervisee.planned_until).is_(None), col(Supervisee.planned_until) < refill):
        room = budget - len(people)
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
        for slot in cfg.schedule.plan(policy, person.level, zone_of(person, cfg.zone), start, horizon,
                                      person.supervision_start, person.supervision_end):
            rows.append(dict(
                supervisee_id=person.id, kind=slot.kind, period_key=slot.period_key, due_at=slot.due_at,
                remind_at=slot.remind_at, window_end_at=slot.window_end_at, state=ObligationState.planned,
                next_check_at=slot.due_at, created_at=now,
            ))
        person.planned_until = horizon
        s.add(person)
    insert = insert_ignoring(s, Obligation)
    for i in range(0, len(rows), 500):
        stmt = insert.values(rows[i:i + 500]).on_conflict_do_nothing(
            index_elements=["supervisee_id", "kind", "period_key"])
        rep.planned += s.execute(stmt).rowcount or 0
    rep.planned_people += len(people)
    return len(people) == budget


def _advance_obligations(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """Move due obligations on one step; True while there may be more."""
    due = s.exec(
        select(Obligation, Supervisee)
        .join(Supervisee, Supervisee.id == Obligation.supervisee_id)
        .where(written_in(col(Obligation.state), OPEN_OBLIGATION), col(Obligation.next_check_at) <= now)
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
    """One step of one obligation, by its kind's row: close, wait, prompt or remind."""
    zone = zone_of(person, cfg.zone)
    if person.status == Status.ended or now.astimezone(zone).date() > person.supervision_end:
        ob.state, ob.next_check_at = ObligationState.excused, None
        rep.excused += 1
        return
    if case_life.is_paused(person, ob.due_at.astimezone(zone).date()):  # hospital, detention, court
        ob.state, ob.next_check_at = ObligationState.excused, None
        rep.excused += 1
        return
    rule = cfg.schedule.obligations[ob.kind]
    due = Due(s, ob, person, now, zone, cfg.policy)
    if ob.window_end_at <= now:
        _close(s, due, cfg, rep)
        return
    quiet_end = quiet_end_after(now, cfg.policy.quiet_hours, zone)
    if ob.state == ObligationState.reminded:  # window still open: the call before it closes, if due; then its end
        call_at = _call_at(ob, rule, cfg)
        if call_at is not None and call_at <= now and quiet_end is None:
            _call(s, due, rule, rows, rep)
        ob.next_check_at = ob.window_end_at
        return
    if quiet_end is not None:  # nothing goes to people in quiet hours: wait for the morning
        ob.next_check_at = min(quiet_end, ob.window_end_at)
        rep.deferred += 1
        return
    if ob.state == ObligationState.planned:
        reply = rule.prompt(due)
        if reply is not None:
            rows.append(reply_row(s, reply, now=now, dedupe_key=rule.dedupe("prompt", ob)))
        ob.state, ob.prompted_at = ObligationState.prompted, now
        # A prompt sent after the reminder point (catch-up) gets no reminder on its heels.
        ob.next_check_at = ob.remind_at if ob.remind_at and ob.remind_at > now else ob.window_end_at
        rep.prompted += 1
    else:
        rows.append(reply_row(s, rule.remind(due), now=now, dedupe_key=rule.dedupe("remind", ob)))
        call_at = _call_at(ob, rule, cfg)
        ob.state, ob.reminded_at = ObligationState.reminded, now
        ob.next_check_at = max(call_at, now) if call_at is not None else ob.window_end_at
        rep.reminded += 1


def _call_at(ob: Obligation, rule: ObligationRule, cfg: SweepConfig) -> datetime | None:
    """When a person not on voice is called before this obligation is missed ([voice] call_before_escalating);
    None when nobody is called (the kind has no call, the policy says no, or calls are not set up)."""
    v = cfg.policy.voice
    if rule.call is None or not cfg.calls or not v.call_before_escalating:
        return None
    return ob.window_end_at - timedelta(minutes=v.call_minutes_before_close)


def _call(s: Session, due: Due, rule: ObligationRule, rows: list[dict], rep: SweepReport) -> None:
    """The one call before a check-in is missed, to the person's phone; its dedupe key makes it one."""
    reply = rule.call(due)
    if reply is None:
        return
    person = due.person
    reply.to = None  # to the phone, whatever channel the person's messages use
    rows.append(reply_row(s, reply, now=due.now, dedupe_key=rule.dedupe("call", due.obligation),
                          channel=ChannelName.voice, address=person.phone, supervisee_id=person.id))
    rep.called += 1


def _close(s: Session, due: Due, cfg: SweepConfig, rep: SweepReport) -> None:
    """The window closed unanswered: the kind's row says what the obligation becomes and which alert it raises."""
    ob = due.obligation
    closing = cfg.schedule.obligations[ob.kind].close(due)
    ob.state, ob.next_check_at = closing.state, None
    rep.partial += closing.state == ObligationState.partial
    rep.missed += closing.state == ObligationState.missed
    if closing.alert is None:
        return
    s.add(ob)
    s.flush()
    if escalation.open_escalation(s, due.person, closing.alert, due.now, cfg.policy, cfg.zone, obligation=ob,
                                   country=cfg.holiday_country):
        rep.escalated += 1


def _advance_escalations(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """Alerts whose time came: a reminder when acknowledged without an outcome, else the next rung of the ladder."""
    due = s.exec(
        select(Escalation)
        .where(col(Escalation.state).in_([EscalationState.open, EscalationState.acknowledged]),
               col(Escalation.next_step_at) <= now)
        .order_by(Escalation.next_step_at, Escalation.id)
        .limit(cfg.batch)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    for esc in due:
        done = escalation.advance(s, esc, now, cfg.policy, cfg.zone, cfg.holiday_country)
        rep.outcome_reminded += done == "reminded"
        rep.stepped_up += done == "stepped_up"
    return len(due) == cfg.batch


def _greet(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """On the morning of a holiday's first day, greet everyone once (the broadcast key remembers)."""
    rule = cfg.policy.greetings
    local = now.astimezone(cfg.zone)
    if not rule.enabled or local.time() < rule.time:
        return False
    holiday = _holiday_today(cfg.holiday_country, local.date())
    if holiday is None or greetings.already_run(s, greetings.greeting_key(holiday)):
        return False
    result = greetings.enqueue_bulk(
        s, key=greetings.greeting_key(holiday), kind="greeting", section="greeting", template=holiday.slug,
        now=now, audience=greetings.Audience(), holiday=holiday, expires_at=holiday.ends_at(cfg.zone),
    )
    rep.greeted += result.queued
    return False


@lru_cache(maxsize=64)
def _holiday_today(country: str, day: date) -> greetings.Holiday | None:
    return next((h for h in greetings.holidays_in(country, day.year) if h.day == day), None)


def _monthly_shortfall(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """On the policy's days, remind those behind on each monthly target, then escalate (once each).

    SHORTFALL_AT_ONCE people per transaction, in id order (the report carries where it got to), and True while
    there are more: on the 20th most of a large roster may be behind, and none of it is held at once."""
    local = now.astimezone(cfg.zone)
    if local.time() < cfg.policy.greetings.time:
        return False
    month = study.month_start(now, cfg.zone)
    month_end = study.month_start(month + timedelta(days=32), cfg.zone)
    for kind, monthly in cfg.schedule.monthly.items():
        target = monthly.target(cfg.policy)
        if local.day not in (target.remind_day, target.escalate_day):
            continue
        step = "remind" if local.day == target.remind_day else "escalate"
        key = f"{kind}-{step}:{local:%Y-%m}"
        if greetings.already_run(s, key):
            continue
        after, behind = rep.progress.get(key, (0, 0))
        credited = monthly.credited(month, month_end)
        rows = s.exec(  # a pause this month (hospital, detention) excuses the month's target
            select(Supervisee, credited)
            .where(col(Supervisee.status).in_(SUPERVISED), credited < target.monthly_minutes, Supervisee.id > after,
                   col(Supervisee.paused_until).is_(None) | (Supervisee.paused_until < month.date()))
            .order_by(Supervisee.id).limit(SHORTFALL_AT_ONCE)).all()
        for person, minutes in rows:
            if step == "remind":
                deliver(s, monthly.reminder(person, int(minutes), target.monthly_minutes), now=now,
                        dedupe_key=f"{key}:{person.id}")
                setattr(rep, f"{kind}_reminded", getattr(rep, f"{kind}_reminded") + 1)
            elif escalation.open_escalation(s, person, monthly.alert, now, cfg.policy, cfg.zone,
                                            facts={"minutes": int(minutes), "day": target.remind_day,
                                                   "required": target.monthly_minutes},
                                            country=cfg.holiday_country):
                setattr(rep, f"{kind}_escalated", getattr(rep, f"{kind}_escalated") + 1)
        if len(rows) == SHORTFALL_AT_ONCE:
            rep.progress[key] = (rows[-1][0].id, behind + len(rows))
            return True
        s.add(Broadcast(key=key, kind=kind, template=step, queued=behind + len(rows), created_at=now))
    return False


def _leave(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """Leave: the last day's reminder, and the alert when nobody reported back."""
    rep.leave_reminded, rep.leave_escalated, rep.leave_undecided = leave.due_steps(
        s, now, cfg.policy, lambda p: zone_of(p, cfg.zone), cfg.zone, cfg.holiday_country)
    return False


def _lost_contact(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """Lost contact, as the report defines it: cleared at once when contact resumes (an answer, or an officer
    reaching the person); found once a day (from the greetings' time), then escalated to the supervisor."""
    rep.contact_resumed += case_life.clear_lost_contact(s, now)
    local = now.astimezone(cfg.zone)
    key = f"contact-check:{local:%Y-%m-%d}"
    if local.time() < cfg.policy.greetings.time or greetings.already_run(s, key):
        return False
    found = case_life.find_lost_contact(s, now, cfg.policy, cfg.zone, cfg.holiday_country)
    rep.lost_contact += found
    s.add(Broadcast(key=key, kind="contact_check", template="daily", queued=found, created_at=now))
    return False


def _digest(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """At the office's opening on a working day, each officer's morning digest (once a day)."""
    local = now.astimezone(cfg.zone)
    key = f"digest:{local:%Y-%m-%d}"
    if (local.time() < cfg.policy.escalation.working_start
            or not is_working_day(local.date(), cfg.policy, cfg.holiday_country) or greetings.already_run(s, key)):
        return False
    since = digest.last_digest(s, now)
    rep.digests = digest.send_digests(s, now, since, cfg.zone, cfg.policy, cfg.schedule.monthly)
    s.add(Broadcast(key=key, kind="digest", template="morning", queued=rep.digests, created_at=now))
    return False


def _expire(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """Bulk messages past their expiry (a greeting after its holiday) are dropped and counted, never sent late."""
    rep.expired += outbox_rows.expire(s, now)
    return False


def _retention(s: Session, now: datetime, cfg: SweepConfig, rep: SweepReport) -> bool:
    """Shared points past their retention, and the last messages of a purge once they are gone."""
    rep.locations_purged = location.purge(s, now, cfg.policy)
    rep.purge_notices_scrubbed = purge.scrub_notices(s)
    return False


Step = Callable[[Session, datetime, SweepConfig, SweepReport], bool]
# The sweep, in order. Each step runs in its own transaction; one that returns True has more to do.
STEPS: tuple[Step, ...] = (
    _end_supervisions,
    _plan,
    _advance_obligations,
    _advance_escalations,
    _greet,
    _monthly_shortfall,
    _leave,
    _lost_contact,
    _digest,
    _expire,
    _retention,
)
