"""Escalations: the alert to the assistant officer, the step up to the supervisor, and the officer's actions."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlmodel import Session, col, func, select

from content.catalog import text
from content.formatting import day_and_time, hm, phone_national
from content.policy import Policy
from handlers.alerts import ALERTS, Facts, Rung, missed, note_facts
from handlers.contract import Button, Context, Inbound, Recipient, Reply, SenderKind, target
from handlers.delivery import deliver
from handlers.office_hours import office_open_at
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


def alert_text(session: Session, esc: Escalation, reader: Officer, zone: tzinfo,
               passed_over: list[Officer] | None = None) -> str:
    """The facts of an escalation for `reader`: who, what happened and when, last contact, how to reach them;
    on a later rung, who had it before and did not act."""
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
    if passed_over:
        names = "、".join(o.name for o in passed_over) if lang.startswith("zh") else ", ".join(
            o.name for o in passed_over)
        if esc.acknowledged_at is not None:
            lines.append(text(lang, "escalation.no_outcome", officer=names,
                              acknowledged=day_and_time(esc.acknowledged_at, zone, lang)))
        else:
            lines.append(text(lang, "escalation.not_acted", officer=names,
                              opened=day_and_time(esc.opened_at, zone, lang)))
    return "\n".join(lines)


def action_buttons(esc_id: int, language: str, actions: tuple[str, ...] = ACTIONS) -> list[Button]:
    """What an officer can do with an alert."""
    return [Button(text(language, f"escalation.{a}"), f"esc:{esc_id}:{a}") for a in actions]


def _alert(session: Session, esc: Escalation, reader: Officer, zone: tzinfo,
           passed_over: list[Officer] | None = None) -> Reply:
    rule, lang = ALERTS[esc.kind], reader.language
    if rule.buttons:  # the alert decides something else (a leave request): its own buttons and SMS words
        facts = note_facts(esc.note)
        buttons, hint = rule.buttons(facts, lang), text(lang, "leave.sms_hint", id=facts.get("leave", "?"))
    else:
        buttons, hint = action_buttons(esc.id, lang), text(lang, "escalation.sms_hint", id=esc.id)
    return Reply(alert_text(session, esc, reader, zone, passed_over), buttons=buttons,
                 to=Recipient(SenderKind.officer, reader.id), kind="escalation", sms_hint=hint)


def reachable(officer: Officer | None) -> bool:
    """An active officer the service can reach (Telegram or a phone)."""
    return officer is not None and officer.active and (officer.telegram_id is not None or bool(officer.phone))


def supervisor_of(session: Session, officer: Officer) -> Officer | None:
    """The officer's township supervisor: the named one, else a supervisor of the same township."""
    if officer.supervisor_id:
        named = session.get(Officer, officer.supervisor_id)
        if named is not None and named.active:
            return named
    return session.exec(
        select(Officer).where(Officer.township == officer.township, Officer.role == Role.supervisor,
                              Officer.active.is_(True), Officer.id != officer.id).order_by(Officer.id)
    ).first()


def administrators(session: Session) -> list[Officer]:
    """The county's active administrators."""
    return list(session.exec(select(Officer).where(Officer.role == Role.admin, Officer.active.is_(True))
                             .order_by(Officer.id)))


def rung_readers(session: Session, esc: Escalation, rung: Rung) -> list[Officer]:
    """Who a rung of the ladder reaches for this alert: nobody when they cannot be reached (the rung is skipped)."""
    officer = session.get(Officer, esc.officer_id)
    if rung.who == "officer":
        found = [officer]
    elif rung.who == "supervisor":
        found = [supervisor_of(session, officer)] if officer is not None else []
    else:
        found = administrators(session)
    return [o for o in found if reachable(o)]


def _send_rung(session: Session, esc: Escalation, start: int, now: datetime, policy: Policy, zone: tzinfo,
               country: str, passed_over: list[Officer]) -> bool:
    """Put the alert on the first rung from `start` that reaches somebody; False when no rung does."""
    rule = ALERTS[esc.kind]
    for index in range(start, len(rule.ladder)):
        rung = rule.ladder[index]
        readers = [o for o in rung_readers(session, esc, rung) if o.id not in {p.id for p in passed_over}]
        if not readers:
            continue
        at = now if rule.urgent else office_open_at(now, policy, zone, country)
        esc.rung, esc.state, esc.reminded_at = index, EscalationState.open, None
        esc.next_step_at = at + rung.limit(policy) if rung.limit else None
        if rung.who == "supervisor":
            esc.supervisor_id, esc.supervisor_notified_at = readers[0].id, now
        elif rung.who == "admins":
            esc.admins_notified_at = now
        session.add(esc)
        grouped = session.info.get(GROUPED)
        for reader in readers:
            key = f"esc:{esc.id}:{rung.who}" + (f":{reader.id}" if len(readers) > 1 else "")
            alert = _alert(session, esc, reader, zone, passed_over)
            if grouped is not None:  # the sweep gathers what falls due together, per reader
                grouped.append(_Pending(reader, esc, alert, key, at))
            else:
                deliver(session, alert, now=now, not_before=at if at > now else None, dedupe_key=key)
        log.info("escalation %s on rung %s (%s), %s readers, from %s", esc.id, index, rung.who, len(readers),
                 at.isoformat())
        return True
    esc.next_step_at = None
    session.add(esc)
    log.error("escalation %s: no rung of its ladder reaches anybody (no reachable officer, supervisor or "
              "administrator)", esc.id)
    return False


GROUPED = "checkin.grouped_alerts"  # session.info key: alerts gathered while a sweep step runs
BULK_LINES = 30  # alerts listed in one message at most


@dataclass(frozen=True)
class _Pending:
    reader: Officer
    esc: Escalation
    alert: Reply
    key: str
    at: datetime


@contextmanager
def grouped_alerts(session: Session, now: datetime, policy: Policy) -> Iterator[None]:
    """Within the block, alerts are gathered; at its end each reader gets them one by one, or, when
    `[escalation] bulk_from` or more fall due for them together (a provider outage, the first morning after an
    import), as one message listing the people, a button per person that opens that alert to act on."""
    gathered: list[_Pending] = []
    session.info[GROUPED] = gathered
    try:
        yield
    finally:
        session.info.pop(GROUPED, None)
    groups: dict[tuple[int, datetime], list[_Pending]] = {}
    for p in gathered:
        groups.setdefault((p.reader.id, p.at), []).append(p)
    for (_, at), items in groups.items():
        not_before = at if at > now else None
        if len(items) < policy.escalation.bulk_from:
            for p in items:
                deliver(session, p.alert, now=now, not_before=not_before, dedupe_key=p.key)
            continue
        for first in range(0, len(items), BULK_LINES):
            chunk = items[first:first + BULK_LINES]
            deliver(session, _bulk(session, chunk, len(items), first), now=now, not_before=not_before,
                    dedupe_key=f"escbulk:{chunk[0].key}")
        log.info("%s alerts for officer %s sent as one list", len(items), items[0].reader.id)


def _bulk(session: Session, chunk: list[_Pending], total: int, first: int) -> Reply:
    """One message for many alerts: a line each, and a button each that opens the alert."""
    reader = chunk[0].reader
    lang = reader.language
    lines = [text(lang, "escalation.bulk_header", total=total, first=first + 1, last=first + len(chunk))]
    buttons = []
    for p in chunk:
        person = session.get(Supervisee, p.esc.supervisee_id)
        lines.append(text(lang, "escalation.bulk_line", id=p.esc.id, kind=text(lang, f"alert_kind.{p.esc.kind}"),
                          name=person.name, case_number=person.case_number))
        buttons.append(Button(f"#{p.esc.id} {person.name}", f"esc:{p.esc.id}:show"))
    lines.append(text(lang, "escalation.bulk_footer"))
    return Reply("\n".join(lines), buttons=buttons, to=Recipient(SenderKind.officer, reader.id),
                 kind="escalation_bulk", sms_hint=text(lang, "escalation.bulk_sms_hint"))


def open_escalation(
    session: Session, person: Supervisee, kind: EscalationKind, now: datetime, policy: Policy, zone: tzinfo,
    obligation: Obligation | None = None, facts: dict | None = None, country: str = "CN",
) -> Escalation | None:
    """Open an escalation and queue the alert on the first rung of its kind's ladder that reaches somebody;
    None when one is already open. Alerts that are not urgent are delivered in working hours."""
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
        note=json.dumps(facts, ensure_ascii=False) if facts else None,
    )
    session.add(esc)
    session.flush()
    _send_rung(session, esc, 0, now, policy, zone, country, [])
    log.info("escalation %s (%s) opened for supervisee %s", esc.id, kind, person.id)
    return esc


def advance(session: Session, esc: Escalation, now: datetime, policy: Policy, zone: tzinfo,
            country: str = "CN") -> str | None:
    """The sweep's step for an escalation whose time came: "reminded" (acknowledged, no outcome: a reminder to
    whoever acknowledged it), "stepped_up" (to the next rung that reaches somebody), or None (nothing left)."""
    rule = ALERTS[esc.kind]
    if esc.state == EscalationState.resolved:
        esc.next_step_at = None
        return None
    if esc.state == EscalationState.acknowledged and esc.reminded_at is None:
        who = session.get(Officer, esc.acknowledged_by)
        limit = rule.ladder[esc.rung].limit
        esc.reminded_at, esc.next_step_at = now, (now + limit(policy)) if limit else None
        session.add(esc)
        if reachable(who):
            person = session.get(Supervisee, esc.supervisee_id)
            lang = who.language
            body = text(lang, "escalation.outcome_reminder", id=esc.id, name=person.name,
                        case_number=person.case_number, what=text(lang, f"alert_kind.{esc.kind}"),
                        acknowledged=day_and_time(esc.acknowledged_at, zone, lang))
            deliver(session, Reply(body, buttons=action_buttons(esc.id, lang, ACTIONS[1:]),
                                   to=Recipient(SenderKind.officer, who.id), kind="escalation",
                                   sms_hint=text(lang, "escalation.sms_hint", id=esc.id)),
                    now=now, dedupe_key=f"esc:{esc.id}:outcome:{esc.rung}")
        return "reminded"
    passed_over = [o for r in rule.ladder[:esc.rung + 1] for o in rung_readers(session, esc, r)]
    if esc.rung + 1 >= len(rule.ladder) or not _send_rung(session, esc, esc.rung + 1, now, policy, zone, country,
                                                          passed_over):
        esc.next_step_at = None
        session.add(esc)
        return None
    return "stepped_up"


def close(session: Session, esc: Escalation, resolution: Resolution, now: datetime) -> None:
    """Resolve `esc` without an officer's action (a late answer, a report back, a decision)."""
    esc.state, esc.resolution, esc.resolved_at, esc.next_step_at = EscalationState.resolved, resolution, now, None
    session.add(esc)


def close_open(session: Session, person_id: int, kind: EscalationKind, resolution: Resolution,
               now: datetime) -> int:
    """Resolve the person's open escalations of `kind`; how many."""
    rows = session.exec(select(Escalation).where(Escalation.supervisee_id == person_id, Escalation.kind == kind,
                                                 Escalation.state != EscalationState.resolved)).all()
    for esc in rows:
        close(session, esc, resolution, now)
    return len(rows)


def close_for_late_answer(session: Session, ob: Obligation, now: datetime, zone: tzinfo) -> None:
    """A late answer closes the obligation's open escalations, with a note to whoever was alerted."""
    for esc in session.exec(
        select(Escalation).where(
            Escalation.obligation_id == ob.id,
            Escalation.state != EscalationState.resolved,
            col(Escalation.kind).in_([missed(k) for k in ObligationKind if k != ObligationKind.study]),
        )
    ):
        close(session, esc, Resolution.answered_late, now)
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
    if inbound.button and action == "show" and found is not None and found.id is not None:
        return show(ctx, found.id)
    if found is None or action not in ACTIONS or found.id is None:
        return [Reply(text(lang, "escalation.usage"))]
    return apply_action(ctx, found.id, action, reason)


def show(ctx: Context, esc_id: int) -> list[Reply]:
    """One alert in full with its buttons, as it would have come alone (a person's button in a list of alerts)."""
    esc = ctx.session.get(Escalation, esc_id)
    if esc is None:
        return [Reply(text(ctx.language, "escalation.not_found", id=esc_id))]
    if not may_act(ctx.session, ctx.sender.officer, esc):
        return [Reply(text(ctx.language, "escalation.not_allowed", id=esc_id))]
    if esc.state == EscalationState.resolved:
        return [Reply(text(ctx.language, "escalation.already", **_outcome(ctx.language, esc, ctx.session, ctx.zone)))]
    had_it = [o for r in ALERTS[esc.kind].ladder[:esc.rung] for o in rung_readers(ctx.session, esc, r)]
    alert = _alert(ctx.session, esc, ctx.sender.officer, ctx.zone, had_it)
    return [Reply(alert.text, buttons=alert.buttons, kind="escalation", sms_hint=alert.sms_hint)]


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
    if esc.acknowledged_at is None or action == "ack":
        esc.acknowledged_at, esc.acknowledged_by = now, officer.id
    esc.next_step_at = None
    if action == "ack":  # an outcome is still owed: a reminder when it has not come in time, then the next rung
        esc.state, esc.reminded_at = EscalationState.acknowledged, None
        esc.next_step_at = now + ctx.policy.escalation.outcome
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


def open_alerts(officer: Officer):
    """(Escalation, Supervisee) rows of the unresolved alerts `officer` answers for: an assistant's own, a
    supervisor's township's (and those stepped up to them), every one for an administrator."""
    query = (select(Escalation, Supervisee).join(Supervisee, Supervisee.id == Escalation.supervisee_id)
             .where(Escalation.state != EscalationState.resolved))
    mine = (Escalation.officer_id == officer.id) | (Escalation.supervisor_id == officer.id)
    if officer.role == Role.supervisor:
        return query.where(mine | (Supervisee.township == officer.township))
    if officer.role != Role.admin:
        return query.where(mine)
    return query


async def open_list(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/open [PAGE]: unresolved alerts, oldest first, each named by its kind; an assistant's own, a supervisor's
    township, every one for an administrator; paged, and the count is the whole count."""
    lang, officer = ctx.language, ctx.sender.officer
    page = int(ctx.args) if ctx.args.isascii() and ctx.args.isdigit() and 0 < int(ctx.args) < 10_000 else 1
    query = open_alerts(officer)
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
