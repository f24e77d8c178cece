"""The scheduled side's table, the counterpart of the routing table (`handlers.router.default_router`).

For each obligation kind: how it is planned, what its prompt and its one
reminder are, what happens when its window closes, and its outbox dedupe keys.
For each monthly target (study, community service): how the month is tallied,
the reminder to those behind, the alert for those still behind. For each alert
kind: `handlers.alerts.ALERTS`. The sweep (scheduler/sweep.py) walks these
tables and holds no branch on a kind; a new kind is a new row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from sqlalchemy import ColumnElement
from sqlmodel import Session

from content.policy import MonthlyTarget, Policy
from handlers import checkin, community_service, location, report, study
from handlers.alerts import ALERTS, AlertRule, missed
from handlers.cadence import Slot, checkin_slots, report_slots, study_slots
from handlers.contract import Reply
from storage.models import ChannelName, EscalationKind, Obligation, ObligationKind, ObligationState, Supervisee


@dataclass(frozen=True)
class Due:
    """One obligation the sweep is looking at, and what its row's functions may use."""

    session: Session
    obligation: Obligation
    person: Supervisee
    now: datetime
    zone: tzinfo  # the person's
    policy: Policy


@dataclass(frozen=True)
class Closing:
    """What an obligation becomes when its window closes unanswered, and the alert it raises (if any)."""

    state: ObligationState
    alert: EscalationKind | None


Planner = Callable[[Policy, str, tzinfo, datetime, datetime], list[Slot]]


@dataclass(frozen=True)
class ObligationRule:
    """One kind of obligation."""

    plan: Planner | None  # slots due in [start, end) for a level; None: an officer creates them (service sessions)
    prompt: Callable[[Due], Reply | None]  # at due_at; None when the row's function queued its own messages
    remind: Callable[[Due], Reply]  # the one reminder, at remind_at
    close: Callable[[Due], Closing]  # the window closed unanswered
    # The call a person not on voice gets once before the window closes unanswered ([voice] call_before_escalating);
    # None: this kind is never called for (or this person cannot be).
    call: Callable[[Due], Reply | None] | None = None

    @staticmethod
    def dedupe(step: str, ob: Obligation) -> str:
        """The outbox key of a prompt or reminder: one of each per obligation, however often the sweep runs."""
        return f"{step}:{ob.id}"


@dataclass(frozen=True)
class MonthlyRule:
    """A monthly target in minutes: tally, remind on the policy's day, escalate on the later one."""

    target: Callable[[Policy], MonthlyTarget]
    credited: Callable[[datetime, datetime], ColumnElement]  # minutes in [start, end) of the query's Supervisee row
    reminder: Callable[[Supervisee, int, int], Reply]  # (person, minutes so far, minutes required)
    alert: EscalationKind


# ---- check-ins ---------------------------------------------------------------


def _checkin_prompt(d: Due) -> Reply:
    d.obligation.location_required = location.required(d.policy, d.person)
    return checkin.prompt(d.obligation, d.person, d.zone)


def _checkin_call(d: Due) -> Reply | None:
    """The reminder again, as a call with the keypad menu, for a person with a phone who is not on voice."""
    if not d.person.phone or d.person.preferred_channel == ChannelName.voice:  # on voice: every prompt was a call
        return None
    return checkin.reminder(d.obligation, d.person, d.zone)


def _checkin_close(d: Due) -> Closing:
    ob = d.obligation
    if ob.location_required and ob.partial_at is not None:  # "1" came, the location never did
        return Closing(ObligationState.partial, EscalationKind.location_missing)
    return Closing(ObligationState.missed, missed(ObligationKind.checkin))


# ---- written reports ---------------------------------------------------------


def _report_prompt(d: Due) -> Reply:
    period = "week" if "W" in d.obligation.period_key else "month"
    return report.prompt(d.obligation, d.person, d.zone, period=period)


def _report_remind(d: Due) -> Reply:
    return report.prompt(d.obligation, d.person, d.zone, reminder=True)


# ---- study -------------------------------------------------------------------


def _study_plan(policy: Policy, level: str, zone: tzinfo, start: datetime, end: datetime) -> list[Slot]:
    return study_slots(policy, zone, start, end)  # the same for every level


def _study_prompt(d: Due) -> None:
    study.send_module(d.session, d.person, d.now, obligation=d.obligation)  # several messages, its own keys


def _study_close(d: Due) -> Closing:
    return Closing(ObligationState.missed, None)  # a week left undone: the monthly tally speaks for it


# ---- community service -------------------------------------------------------


def _service_prompt(d: Due) -> Reply:
    return community_service.prompt(d.session, d.obligation, d.person, d.zone)


def _service_remind(d: Due) -> Reply:
    return community_service.prompt(d.session, d.obligation, d.person, d.zone, reminder=True)


def _missed(kind: ObligationKind) -> Callable[[Due], Closing]:
    def close(d: Due) -> Closing:
        return Closing(ObligationState.missed, missed(kind))
    return close


K = ObligationKind
OBLIGATIONS: dict[ObligationKind, ObligationRule] = {
    K.checkin: ObligationRule(
        checkin_slots, _checkin_prompt, lambda d: checkin.reminder(d.obligation, d.person, d.zone), _checkin_close,
        call=_checkin_call,
    ),
    K.report: ObligationRule(report_slots, _report_prompt, _report_remind, _missed(K.report)),
    K.study: ObligationRule(
        _study_plan, _study_prompt, lambda d: study.reminder(d.obligation, d.person, d.zone), _study_close
    ),
    K.service: ObligationRule(None, _service_prompt, _service_remind, _missed(K.service)),
}

# The kinds the sweep plans from the person's level and time zone (a community-service obligation is an officer's
# session, never re-planned): what a change of cadence drops and plans anew.
PLANNED_KINDS = tuple(kind for kind, rule in OBLIGATIONS.items() if rule.plan is not None)

MONTHLY: dict[ObligationKind, MonthlyRule] = {
    K.study: MonthlyRule(lambda p: p.study, study.credited, study.shortfall_reminder,
                         EscalationKind.study_shortfall),
    K.service: MonthlyRule(lambda p: p.service, community_service.credited,
                           community_service.shortfall_reminder, EscalationKind.service_shortfall),
}


@dataclass(frozen=True)
class Schedule:
    """The three tables the sweep walks."""

    obligations: dict[ObligationKind, ObligationRule]
    monthly: dict[ObligationKind, MonthlyRule]
    alerts: dict[EscalationKind, AlertRule]

    def plan(self, policy: Policy, level: str, zone: tzinfo, start: datetime, end: datetime,
             first_day: date, last_day: date) -> list[Slot]:
        """Every obligation due in [start, end), within the supervision dates (local)."""
        found = [slot for rule in self.obligations.values() if rule.plan
                 for slot in rule.plan(policy, level, zone, start, end)]
        return [s for s in found if first_day <= s.due_at.astimezone(zone).date() <= last_day]


def default_schedule() -> Schedule:
    """The service's scheduled table."""
    return Schedule(OBLIGATIONS, MONTHLY, ALERTS)
