"""Escalations: the alert to the assistant officer, the step up to the supervisor, and the officer's actions."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, tzinfo

from sqlmodel import Session, select

from content.catalog import text
from content.formatting import day_and_time, duration, hm, phone_national
from handlers.delivery import deliver
from handlers.types import Button, Context, Inbound, Recipient, Reply, SenderKind, row_id
from storage import audit
from storage.models import (
    Escalation,
    EscalationState,
    Obligation,
    ObligationState,
    Officer,
    Resolution,
    Role,
    Supervisee,
)

log = logging.getLogger(__name__)

ACTIONS = ("ack", "reached", "unreachable", "excuse")
# Text commands for officers on SMS (and anyone who prefers typing).
WORDS = {
    "ack": "ack", "知悉": "ack", "已知悉": "ack",
    "reached": "reached", "联系上": "reached", "已联系上": "reached",
    "unreachable": "unreachable", "联系不上": "unreachable",
    "excuse": "excuse", "免除": "excuse",
}


def _what(kind: str) -> str:
    return next((w for w in ("report", "service") if w in kind), "checkin")


def out_of_area_history(lang: str, facts: dict, zone: tzinfo) -> str:
    """The alert's middle line: when, how far from which area, where the point fell, the map link."""
    at = datetime.fromisoformat(facts["at"]) if facts.get("at") else None
    where = (facts.get("where") or {}).get(lang) or text(lang, "location.unknown_area")
    return text(lang, "escalation.out_of_area_history", time=day_and_time(at, zone, lang) if at else "-",
                distance=f"{(facts.get('distance_m') or 0) / 1000:.1f}",
                area=(facts.get("allowed") or {}).get(lang, "-"),
                where=where, accuracy=f"{facts['accuracy_m']:.0f}" if facts.get("accuracy_m") is not None else "?",
                map=facts.get("map", ""))


def alert_text(session: Session, esc: Escalation, reader: Officer, zone: tzinfo, *, supervisor: bool) -> str:
    """The facts of an escalation for `reader`: who, what happened and when, last contact, how to reach them."""
    person = session.get(Supervisee, esc.supervisee_id)
    ob = session.get(Obligation, esc.obligation_id) if esc.obligation_id else None
    lang = reader.language
    if esc.kind == "asked_officer":
        history = text(lang, "escalation.asked_history", time=hm(esc.opened_at, zone))
    elif esc.kind in ("study_shortfall", "service_shortfall"):
        facts = json.loads(esc.note or "{}")
        history = text(lang, f"escalation.{esc.kind.split('_')[0]}_history", day=facts.get("day", "-"),
                       month=duration(facts.get("minutes", 0), lang), required=duration(facts.get("required", 0), lang))
    elif esc.kind == "out_of_area":
        history = out_of_area_history(lang, json.loads(esc.note or "{}"), zone)
    elif esc.kind == "location_missing" and ob is not None:
        history = text(lang, "escalation.location_missing_history", prompted=hm(ob.prompted_at or ob.due_at, zone),
                       answered=hm(ob.partial_at or ob.window_end_at, zone), deadline=hm(ob.window_end_at, zone))
    elif esc.kind == "leave_not_returned":
        facts = json.loads(esc.note or "{}")
        history = text(lang, "escalation.leave_not_returned_history", id=facts.get("leave", "-"),
                       destination=facts.get("destination", "-"), end=facts.get("ends_on", "-"))
    elif esc.kind == "sms_opt_out":
        history = text(lang, "escalation.opted_out_history", time=hm(esc.opened_at, zone))
    elif esc.kind == "unreachable" and person.sms_blocked_at and person.sms_blocked_at >= esc.opened_at:
        history = text(lang, "escalation.sms_blocked_history", time=hm(esc.opened_at, zone),
                       reason=text(lang, f"escalation.sms_reason_{person.sms_blocked_reason or 'undelivered'}"),
                       fallback=text(lang, "escalation.fallback_telegram" if person.telegram_chat_id
                                     and not person.telegram_blocked_at else "escalation.fallback_other"))
    elif esc.kind == "unreachable":
        history = text(lang, "escalation.blocked_history", time=hm(esc.opened_at, zone),
                       fallback=text(lang, "escalation.fallback_sms" if person.phone else "escalation.fallback_none"))
    elif ob is not None and ob.prompted_at and ob.reminded_at:
        history = text(lang, "escalation.prompted_reminded", prompted=hm(ob.prompted_at, zone),
                       reminded=hm(ob.reminded_at, zone))
    elif ob is not None and ob.prompted_at:
        history = text(lang, "escalation.prompted_only", prompted=hm(ob.prompted_at, zone))
    else:
        deadline = day_and_time(ob.window_end_at, zone, lang) if ob else "-"
        history = text(lang, "escalation.not_prompted", deadline=deadline)
    last = text(lang, "escalation.never")
    if person.last_contact_at:
        last = text(lang, "escalation.last_contact", at=day_and_time(person.last_contact_at, zone, lang),
                    kind=text(lang, f"contact_kind.{person.last_contact_kind or 'message'}"))
    who = dict(id=esc.id, name=person.name, case_number=person.case_number,
               level=text(lang, f"level.{person.level}"), township=person.township)
    header_key = esc.kind if esc.kind in ("asked_officer", "unreachable", "sms_opt_out", "study_shortfall",
                                          "service_shortfall", "out_of_area", "location_missing",
                                          "leave_not_returned") else "missed"
    lines = [
        text(lang, f"escalation.header_{header_key}", what=text(lang, f"what.{_what(esc.kind)}"), **who)
        if header_key == "missed" else text(lang, f"escalation.header_{header_key}", **who),
        text(lang, "escalation.body", history=history, last_contact=last, phone=phone_national(person.phone) or "-",
             telegram=text(lang, "escalation.telegram_yes" if person.telegram_chat_id and not person.telegram_blocked_at
                           else "escalation.telegram_no")),
    ]
    if supervisor:
        officer = session.get(Officer, esc.officer_id)
        lines.append(text(lang, "escalation.not_acted", officer=officer.name,
                          opened=day_and_time(esc.opened_at, zone, lang)))
    return "\n".join(lines)


def action_buttons(esc_id: int, language: str) -> list[Button]:
    """The four things an officer can do with an alert."""
    return [Button(text(language, f"escalation.{a}"), f"esc:{esc_id}:{a}") for a in ACTIONS]


def open_escalation(
    session: Session, person: Supervisee, kind: str, now: datetime, sla: timedelta, zone: tzinfo,
    obligation: Obligation | None = None, facts: dict | None = None,
) -> Escalation | None:
    """Open an escalation to the person's officer and queue the alert; None when one is already open."""
    query = select(Escalation).where(Escalation.supervisee_id == person.id, Escalation.kind == kind)
    if obligation is not None:
        query = query.where(Escalation.obligation_id == obligation.id)
    else:  # one open at a time for alerts not tied to an obligation
        query = query.where(Escalation.obligation_id.is_(None), Escalation.state != EscalationState.resolved)
    if session.exec(query).first() is not None:
        return None
    esc = Escalation(
        supervisee_id=person.id, obligation_id=obligation.id if obligation else None, kind=kind,
        officer_id=person.officer_id, state=EscalationState.open, opened_at=now, officer_due_at=now + sla,
        note=json.dumps(facts) if facts else None,
    )
    session.add(esc)
    session.flush()
    officer = session.get(Officer, person.officer_id)
    reply = Reply(alert_text(session, esc, officer, zone, supervisor=False),
                  buttons=action_buttons(esc.id, officer.language),
                  to=Recipient(SenderKind.officer, officer.id), kind="escalation",
                  sms_hint=text(officer.language, "escalation.sms_hint", id=esc.id))
    deliver(session, reply, now=now, dedupe_key=f"esc:{esc.id}:officer")
    log.info("escalation %s (%s) opened for supervisee %s to officer %s", esc.id, kind, person.id, officer.id)
    return esc


def supervisor_of(session: Session, officer: Officer) -> Officer | None:
    """The officer's township supervisor: the named one, else a supervisor of the same township."""
    if officer.supervisor_id:
        return session.get(Officer, officer.supervisor_id)
    return session.exec(
        select(Officer).where(Officer.township == officer.township, Officer.role == Role.supervisor,
                              Officer.active.is_(True), Officer.id != officer.id).order_by(Officer.id)
    ).first()


def step_up(session: Session, esc: Escalation, now: datetime, zone: tzinfo) -> bool:
    """Send an unacknowledged escalation on to the supervisor; False when there is none."""
    officer = session.get(Officer, esc.officer_id)
    boss = supervisor_of(session, officer)
    esc.officer_due_at = None  # looked at: do not come back to it
    session.add(esc)
    if boss is None:
        log.warning("escalation %s: officer %s has no supervisor to escalate to", esc.id, officer.id)
        return False
    esc.supervisor_id, esc.supervisor_notified_at = boss.id, now
    reply = Reply(alert_text(session, esc, boss, zone, supervisor=True),
                  buttons=action_buttons(esc.id, boss.language),
                  to=Recipient(SenderKind.officer, boss.id), kind="escalation",
                  sms_hint=text(boss.language, "escalation.sms_hint", id=esc.id))
    deliver(session, reply, now=now, dedupe_key=f"esc:{esc.id}:supervisor")
    log.info("escalation %s stepped up to supervisor %s", esc.id, boss.id)
    return True


def close_for_late_answer(session: Session, ob: Obligation, now: datetime, zone: tzinfo) -> None:
    """A late answer closes the obligation's open escalations, with a note to whoever was alerted."""
    for esc in session.exec(
        select(Escalation).where(Escalation.obligation_id == ob.id, Escalation.state != EscalationState.resolved,
                                 Escalation.kind.like("missed_%"))
    ):
        esc.state, esc.resolution, esc.resolved_at, esc.officer_due_at = (
            EscalationState.resolved, Resolution.answered_late, now, None)
        session.add(esc)
        person = session.get(Supervisee, esc.supervisee_id)
        for n, officer_id in enumerate(filter(None, (esc.officer_id, esc.supervisor_id))):
            officer = session.get(Officer, officer_id)
            body = text(officer.language, "late.officer", name=person.name, case_number=person.case_number,
                        time=hm(now, zone), what=text(officer.language, f"what.{_what(esc.kind)}"),
                        deadline=day_and_time(ob.window_end_at, zone, officer.language))
            deliver(session, Reply(body, to=Recipient(SenderKind.officer, officer.id), kind="escalation_closed"),
                    now=now, dedupe_key=f"esc:{esc.id}:late:{n}")


# ---- the officer's side ------------------------------------------------------------


def may_act(session: Session, officer: Officer, esc: Escalation) -> bool:
    """The assigned officer, the supervisor it went to, the officer's supervisor, or an administrator."""
    if officer.role == Role.admin or officer.id in (esc.officer_id, esc.supervisor_id):
        return True
    assigned = session.get(Officer, esc.officer_id)
    return assigned is not None and assigned.supervisor_id == officer.id


def _outcome(lang: str, esc: Escalation, session: Session, zone: tzinfo) -> dict:
    """How a resolved escalation ended: what, by whom, when."""
    by = esc.resolved_by or esc.acknowledged_by
    who = session.get(Officer, by) if by else None
    at = esc.resolved_at or esc.acknowledged_at
    return dict(action=text(lang, f"escalation.{esc.resolution or 'ack'}"),
                officer=who.name if who else "-", time=hm(at, zone) if at else "-")


async def act(inbound: Inbound, ctx: Context) -> list[Reply]:
    """An officer acts on an alert: by button `esc:ID:ACTION`, or by text `ACTION ID [reason]`."""
    lang = ctx.language
    if inbound.button:
        parts = inbound.button.split(":")
        esc_ref, action, reason = (parts[1] if len(parts) > 1 else ""), (parts[2] if len(parts) > 2 else ""), ""
    else:
        m = re.match(r"^#?(\d+)\s*(.*)$", ctx.args, re.S)
        action = WORDS.get(ctx.keyword.lstrip("/"))
        if not m or action is None:
            return [Reply(text(lang, "escalation.usage"))]
        esc_ref, reason = m.group(1), m.group(2).strip()
    if action not in ACTIONS or row_id(esc_ref) is None:
        return [Reply(text(lang, "escalation.usage"))]
    return apply_action(ctx, row_id(esc_ref), action, reason)


def apply_action(ctx: Context, esc_id: int, action: str, reason: str = "") -> list[Reply]:
    """Record `action` on escalation `esc_id` by the sending officer."""
    lang, officer, now = ctx.language, ctx.sender.officer, ctx.now
    esc = ctx.session.get(Escalation, esc_id)
    if esc is None:
        return [Reply(text(lang, "escalation.not_found", id=esc_id))]
    if not may_act(ctx.session, officer, esc):
        log.info("officer %s refused on escalation %s", officer.id, esc_id)
        return [Reply(text(lang, "escalation.not_allowed", id=esc_id))]
    if esc.state == EscalationState.resolved:
        return [Reply(text(lang, "escalation.already", **_outcome(lang, esc, ctx.session, ctx.zone)))]
    if action == "excuse" and not reason:
        ctx.set_state("excuse_reason", {"escalation": esc_id})
        return [Reply(text(lang, "escalation.ask_reason", id=esc_id))]
    if esc.acknowledged_at is None:
        esc.acknowledged_at, esc.acknowledged_by = now, officer.id
    esc.officer_due_at = None
    if action == "ack":
        esc.state = EscalationState.acknowledged
    else:
        resolution = {"reached": Resolution.reached, "unreachable": Resolution.unreachable,
                      "excuse": Resolution.excused}[action]
        esc.state, esc.resolution, esc.resolved_at, esc.resolved_by = (
            EscalationState.resolved, resolution, now, officer.id)
        if reason:
            esc.note = reason[:1000]
        if action == "excuse" and esc.obligation_id:
            ob = ctx.session.get(Obligation, esc.obligation_id)
            if ob.state == ObligationState.missed:
                ob.state = ObligationState.excused
                ctx.session.add(ob)
    ctx.session.add(esc)
    audit.append(ctx.session, actor=f"officer:{officer.id}", action=f"escalation.{action}", now=now,
                 supervisee_id=esc.supervisee_id, subject=f"escalation:{esc.id}",
                 details={"reason": reason[:1000]} if reason else None)
    log.info("officer %s: escalation %s %s", officer.id, esc_id, action)
    label = text(lang, f"escalation.{'excused' if action == 'excuse' else action}")
    # On Telegram the alert itself is edited to show what was done, and loses its buttons.
    return [Reply(text(lang, "escalation.done", action=label, id=esc_id, officer=officer.name, time=hm(now, ctx.zone)),
                  edit_origin=True)]


async def excuse_reason(inbound: Inbound, ctx: Context) -> list[Reply]:
    """The reason for an excuse, asked for after the officer pressed Excuse."""
    esc_id = ctx.state_data().get("escalation")
    ctx.set_state("idle")
    reason = inbound.text.strip()
    if not reason or esc_id is None:
        return [Reply(text(ctx.language, "escalation.ask_reason", id=esc_id or "?"))]
    return apply_action(ctx, int(esc_id), "excuse", reason)


async def open_list(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/open: the officer's unresolved alerts, oldest first."""
    lang, officer = ctx.language, ctx.sender.officer
    rows = ctx.session.exec(
        select(Escalation, Supervisee)
        .join(Supervisee, Supervisee.id == Escalation.supervisee_id)
        .where(Escalation.state != EscalationState.resolved,
               (Escalation.officer_id == officer.id) | (Escalation.supervisor_id == officer.id))
        .order_by(Escalation.opened_at).limit(30)
    ).all()
    if not rows:
        return [Reply(text(lang, "escalation.open_empty"))]
    lines = [text(lang, "escalation.open_header", count=len(rows))]
    lines += [text(lang, "escalation.open_line", id=e.id, name=p.name, case_number=p.case_number,
                   what=text(lang, f"what.{_what(e.kind)}"), opened=day_and_time(e.opened_at, ctx.zone, lang))
              for e, p in rows]
    return [Reply("\n".join(lines))]

