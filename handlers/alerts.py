"""The escalation half of the scheduled table: for each kind of alert, its text, its urgency and its ladder.

A new kind of alert is a new `EscalationKind` member and a new row in `ALERTS`
(a test checks that every kind has one); nothing else branches on the kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from content.catalog import text
from content.formatting import day_and_time, duration, hm
from content.policy import Policy
from handlers.contract import Button
from storage.models import EscalationKind, Obligation, ObligationKind, Supervisee


@dataclass(frozen=True)
class Facts:
    """What an alert's history line may draw on."""

    lang: str
    zone: tzinfo
    person: Supervisee
    obligation: Obligation | None
    opened_at: datetime
    facts: dict  # the escalation's note, as opened


@dataclass(frozen=True)
class Rung:
    """One step of a ladder: who is told, and how long they have before the next step."""

    who: str  # "officer" (the assigned assistant officer), "supervisor" (their township's), "admins" (the county's)
    limit: Callable[[Policy], timedelta] | None = None  # None: the last rung


@dataclass(frozen=True)
class AlertRule:
    """One kind of alert."""

    header: str  # catalogue key of the first line
    history: Callable[[Facts], str]  # the line that says what happened
    what: ObligationKind = ObligationKind.checkin  # what was owed: names it in /open and in late-answer notes
    urgent: bool = False  # something a person did or cannot do now: never waits for working hours
    ladder: tuple[Rung, ...] = ()
    # The buttons under the alert: None for the escalation actions (acknowledge, reached, unreachable, excuse);
    # else a function of (facts, reader's language) -- a leave request's alert carries the leave's own decisions.
    buttons: Callable[[dict, str], list[Button]] | None = None


# Every kind goes to the assigned officer; unacted after the policy's limit to the township supervisor (at
# once when there is none); unacted again, to every county administrator. Nobody is the end of the line.
LADDER = (Rung("officer", lambda p: p.escalation.officer_sla),
          Rung("supervisor", lambda p: p.escalation.supervisor_sla),
          Rung("admins"))


def _prompted(f: Facts) -> str:
    """A missed obligation: when it was prompted and reminded, or by when it was due."""
    ob = f.obligation
    if ob is not None and ob.prompted_at and ob.reminded_at:
        return text(f.lang, "escalation.prompted_reminded", prompted=hm(ob.prompted_at, f.zone),
                    reminded=hm(ob.reminded_at, f.zone))
    if ob is not None and ob.prompted_at:
        return text(f.lang, "escalation.prompted_only", prompted=hm(ob.prompted_at, f.zone))
    deadline = day_and_time(ob.window_end_at, f.zone, f.lang) if ob else "-"
    return text(f.lang, "escalation.not_prompted", deadline=deadline)


def _location_missing(f: Facts) -> str:
    ob = f.obligation
    if ob is None:
        return _prompted(f)
    return text(f.lang, "escalation.location_missing_history", prompted=hm(ob.prompted_at or ob.due_at, f.zone),
                answered=hm(ob.partial_at or ob.window_end_at, f.zone), deadline=hm(ob.window_end_at, f.zone))


def _asked(f: Facts) -> str:
    return text(f.lang, "escalation.asked_history", time=hm(f.opened_at, f.zone))


def _opted_out(f: Facts) -> str:
    return text(f.lang, "escalation.opted_out_history", time=hm(f.opened_at, f.zone))


def _shortfall(what: str) -> Callable[[Facts], str]:
    def history(f: Facts) -> str:
        return text(f.lang, f"escalation.{what}_history", day=f.facts.get("day", "-"),
                    month=duration(f.facts.get("minutes", 0), f.lang),
                    required=duration(f.facts.get("required", 0), f.lang))
    return history


def out_of_area_history(lang: str, facts: dict, zone: tzinfo) -> str:
    """The alert's middle line: when, how far from which area, where the point fell, the map link."""
    at = datetime.fromisoformat(facts["at"]) if facts.get("at") else None
    where = (facts.get("where") or {}).get(lang) or text(lang, "location.unknown_area")
    return text(lang, "escalation.out_of_area_history", time=day_and_time(at, zone, lang) if at else "-",
                distance=f"{(facts.get('distance_m') or 0) / 1000:.1f}",
                area=(facts.get("allowed") or {}).get(lang, "-"),
                where=where, accuracy=f"{facts['accuracy_m']:.0f}" if facts.get("accuracy_m") is not None else "?",
                map=facts.get("map", ""))


def _out_of_area(f: Facts) -> str:
    return out_of_area_history(f.lang, f.facts, f.zone)


def _not_returned(f: Facts) -> str:
    return text(f.lang, "escalation.leave_not_returned_history", id=f.facts.get("leave", "-"),
                destination=f.facts.get("destination", "-"), end=f.facts.get("ends_on", "-"))


def _undecided(f: Facts) -> str:
    asked = datetime.fromisoformat(f.facts["requested"]) if f.facts.get("requested") else None
    return text(f.lang, "escalation.leave_undecided_history", id=f.facts.get("leave", "-"),
                destination=f.facts.get("destination", "-"), start=f.facts.get("starts_on", "-"),
                end=f.facts.get("ends_on", "-"), asked=day_and_time(asked, f.zone, f.lang) if asked else "-")


def _lost(f: Facts) -> str:
    last = datetime.fromisoformat(f.facts["last"]) if f.facts.get("last") else None
    return text(f.lang, "escalation.lost_contact_history", days=f.facts.get("days", "-"),
                last=day_and_time(last, f.zone, f.lang) if last else text(f.lang, "escalation.never"))


def _leave_buttons(facts: dict, lang: str) -> list[Button]:
    """A leave request waiting for a decision: decide it from the alert (approve as the request goes, or refuse)."""
    leave = facts.get("leave")
    return [Button(text(lang, "leave.button_approve"), f"leave:{leave}:approve"),
            Button(text(lang, "leave.button_refuse"), f"leave:{leave}:refuse")]


def _unreachable(f: Facts) -> str:
    """A channel failed for good: calls, SMS (with the reason and the fallback), else Telegram."""
    p = f.person
    if f.facts.get("channel") == "voice":
        return text(f.lang, "escalation.voice_history", time=hm(f.opened_at, f.zone),
                    reason=text(f.lang, f"escalation.voice_reason_{f.facts.get('reason', 'failed')}"),
                    fallback=text(f.lang, "escalation.fallback_sms" if f.facts.get("fallback") else
                                  "escalation.fallback_other"))
    if p.sms_blocked_at and p.sms_blocked_at >= f.opened_at:
        return text(f.lang, "escalation.sms_blocked_history", time=hm(f.opened_at, f.zone),
                    reason=text(f.lang, f"escalation.sms_reason_{p.sms_blocked_reason or 'undelivered'}"),
                    fallback=text(f.lang, "escalation.fallback_telegram" if p.telegram_chat_id
                                  and not p.telegram_blocked_at else "escalation.fallback_other"))
    return text(f.lang, "escalation.blocked_history", time=hm(f.opened_at, f.zone),
                fallback=text(f.lang, "escalation.fallback_sms" if p.phone else "escalation.fallback_none"))


K = EscalationKind
ALERTS: dict[EscalationKind, AlertRule] = {
    K.missed_checkin: AlertRule("missed", _prompted, ObligationKind.checkin, ladder=LADDER),
    K.missed_report: AlertRule("missed", _prompted, ObligationKind.report, ladder=LADDER),
    K.missed_service: AlertRule("missed", _prompted, ObligationKind.service, ladder=LADDER),
    K.location_missing: AlertRule("location_missing", _location_missing, ladder=LADDER),
    K.asked_officer: AlertRule("asked_officer", _asked, urgent=True, ladder=LADDER),
    K.out_of_area: AlertRule("out_of_area", _out_of_area, urgent=True, ladder=LADDER),
    K.unreachable: AlertRule("unreachable", _unreachable, urgent=True, ladder=LADDER),
    K.sms_opt_out: AlertRule("sms_opt_out", _opted_out, urgent=True, ladder=LADDER),
    K.study_shortfall: AlertRule("study_shortfall", _shortfall("study"), ladder=LADDER),
    K.service_shortfall: AlertRule("service_shortfall", _shortfall("service"), ladder=LADDER),
    K.leave_not_returned: AlertRule("leave_not_returned", _not_returned, ladder=LADDER),
    K.leave_undecided: AlertRule("leave_undecided", _undecided, ladder=LADDER, buttons=_leave_buttons),
    # The officer has had the missed check-ins' alerts already: lost contact starts with the supervisor.
    K.lost_contact: AlertRule("lost_contact", _lost, ladder=LADDER[1:]),
}


def missed(kind: ObligationKind) -> EscalationKind:
    """The alert for an obligation of `kind` whose window closed unanswered."""
    return EscalationKind(f"missed_{kind.value}")


def history(kind: EscalationKind, facts: Facts) -> str:
    """The alert's history line, by its kind's row."""
    return ALERTS[kind].history(facts)


def note_facts(note: str | None) -> dict:
    """An escalation's stored facts (a JSON object), or {} for a free-text note."""
    if not note or not note.startswith("{"):
        return {}
    try:
        return json.loads(note)
    except ValueError:
        return {}
