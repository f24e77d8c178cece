"""Escalations: the alert to the assistant officer, the step up to the supervisor, and the officer's actions."""

from __future__ import annotations

import json
import logging
from datetime import datetime, tzinfo

from sqlmodel import Session, col, func, select

from content.catalog import text
from content.formatting import day_and_time, hm, phone_national
from content.policy import Policy
from handlers.alerts import ALERTS, Facts, missed, note_facts
from handlers.contract import Button, Context, Inbound, Recipient, Reply, SenderKind, target
from handlers.delivery import deliver
from storage import audit
from storage.models import (
    ConversationState,
    Escalation,
    EscalationKind,
    EscalationState,
    Obligation,
    ObligationKind,
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


def alert_text(session: Session, esc: Escalation, reader: Officer, zone: tzinfo, *, supervisor: bool) -> str:
    """The facts of an escalation for `reader`: who, what happened and when, last contact, how to reach them."""
    person = session.get(Supervisee, esc.supervisee_id)
    ob = session.get(Obligation, esc.obligation_id) if esc.obligation_id else None
    lang, rule = reader.language, ALERTS[esc.kind]
    history = rule.history(Facts(lang, zone, person, ob, esc.opened_at, note_facts(esc.note)))
    last = text(lang, "escalation.never")
    if person.last_contact_at:
        last = text(lang, "escalation.last_contact", at=day_and_time(person.last_contact_at, zone, lang),
                    kind=text(lang, f"contact_kind.{person.last_contact_kind or 'message'}"))
    who = dict(id=esc.id, name=person.name, case_number=person.case_number,
               level=text(lang, f"level.{person.level}"), township=person.township)
    lines = [
        text(lang, f"escalation.header_{rule.header}", what=text(lang, f"what.{rule.what}"), **who),
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
    session: Session, person: Supervisee, kind: EscalationKind, now: datetime, policy: Policy, zone: tzinfo,
    obligation: Obligation | None = None, facts: dict | None = None,
) -> Escalation | None:
    """Open an escalation to the person's officer and queue the alert; None when one is already open.

    The officer has until the first rung's limit (its kind's ladder) before it goes on.
    """
    query = select(Escalation).where(Escalation.supervisee_id == person.id, Escalation.kind == kind)
    if obligation is not None:
        query = query.where(Escalation.obligation_id == obligation.id)
    else:  # one open at a time for alerts not tied to an obligation
        query = query.where(Escalation.obligation_id.is_(None), Escalation.state != EscalationState.resolved)
    if session.exec(query).first() is not None:
        return None
    esc = Escalation(
        supervisee_id=person.id, obligation_id=obligation.id if obligation else None, kind=kind,
        officer_id=person.officer_id, state=EscalationState.open, opened_at=now,
        officer_due_at=now + ALERTS[kind].ladder[0].limit(policy),
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
    """Send an unacknowledged escalation to the next rung of its kind's ladder; False when nobody is there."""
    officer = session.get(Officer, esc.officer_id)
    ladder = ALERTS[esc.kind].ladder
    boss = supervisor_of(session, officer) if len(ladder) > 1 and ladder[1].who == "supervisor" else None
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
        select(Escalation).where(
            Escalation.obligation_id == ob.id,
            Escalation.state != EscalationState.resolved,
            col(Escalation.kind).in_([missed(k) for k in ObligationKind if k != ObligationKind.study]),
        )
    ):
        esc.state, esc.resolution, esc.resolved_at, esc.officer_due_at = (
            EscalationState.resolved, Resolution.answered_late, now, None)
        session.add(esc)
        person = session.get(Supervisee, esc.supervisee_id)
        for n, officer_id in enumerate(filter(None, (esc.officer_id, esc.supervisor_id))):
            officer = session.get(Officer, officer_id)
            body = text(officer.language, "late.officer", name=person.name, case_number=person.case_number,
                        time=hm(now, zone), what=text(officer.language, f"what.{ALERTS[esc.kind].what}"),
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
    found = target(inbound.button, ctx.args)
    action = found.arg(0) if inbound.button else WORDS.get(ctx.keyword.lstrip("/"))
    reason = "" if inbound.button else (found.arg(0) if found else "")
    if found is None or action not in ACTIONS or found.id is None:
        return [Reply(text(lang, "escalation.usage"))]
    return apply_action(ctx, found.id, action, reason)


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
        ctx.set_state(ConversationState.excuse_reason, {"escalation": esc_id})
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
    ctx.set_state(ConversationState.idle)
    reason = inbound.text.strip()
    if not reason or esc_id is None:
        return [Reply(text(ctx.language, "escalation.ask_reason", id=esc_id or "?"))]
    return apply_action(ctx, int(esc_id), "excuse", reason)


OPEN_PAGE = 30  # alerts on one page of /open


async def open_list(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/open [PAGE]: unresolved alerts, oldest first, each named by its kind; an assistant's own, a supervisor's
    township, every one for an administrator; paged, and the count is the whole count."""
    lang, officer = ctx.language, ctx.sender.officer
    page = int(ctx.args) if ctx.args.isascii() and ctx.args.isdigit() and 0 < int(ctx.args) < 10_000 else 1
    query = (select(Escalation, Supervisee).join(Supervisee, Supervisee.id == Escalation.supervisee_id)
             .where(Escalation.state != EscalationState.resolved))
    mine = (Escalation.officer_id == officer.id) | (Escalation.supervisor_id == officer.id)
    if officer.role == Role.supervisor:
        query = query.where(mine | (Supervisee.township == officer.township))
    elif officer.role != Role.admin:
        query = query.where(mine)
    total = ctx.session.exec(select(func.count()).select_from(query.subquery())).one()
    if not total:
        return [Reply(text(lang, "escalation.open_empty"))]
    first = min((page - 1) * OPEN_PAGE, (total - 1) // OPEN_PAGE * OPEN_PAGE)
    rows = ctx.session.exec(query.order_by(Escalation.opened_at, Escalation.id).offset(first).limit(OPEN_PAGE)).all()
    lines = [text(lang, "escalation.open_header", first=first + 1, last=first + len(rows), total=total)]
    lines += [text(lang, "escalation.open_line", id=e.id, name=p.name, case_number=p.case_number,
                   kind=text(lang, f"alert_kind.{e.kind}"), opened=day_and_time(e.opened_at, ctx.zone, lang))
              for e, p in rows]
    if first + len(rows) < total:
        lines.append(text(lang, "escalation.open_more", next=first // OPEN_PAGE + 2))
    return [Reply("\n".join(lines))]
