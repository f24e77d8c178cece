"""Check-ins: the prompt and reminder the sweep sends, and the answer that closes the obligation."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, tzinfo

from sqlmodel import Session, col, select

from content.catalog import catalogue, text
from content.formatting import hm, when
from handlers.cadence import checkin_slots
from handlers.contract import Button, Context, Inbound, Recipient, Reply, SenderKind, target
from handlers.escalation import close_for_late_answer, open_escalation
from handlers.guide import forward
from storage.models import (
    OPEN_OBLIGATION,
    EscalationKind,
    Obligation,
    ObligationKind,
    ObligationState,
    Officer,
    Supervisee,
)

log = logging.getLogger(__name__)

OK, HELP = "ok", "help"
# What a person may type instead of pressing a button (SMS: "1" / "2").
TYPED = {"1": OK, "ok": OK, "好": OK, "正常": OK, "报到": OK, "checkin": OK, "/checkin": OK,
         "2": HELP, "help me": HELP, "求助": HELP,
         # the second key of the location keyboard sends its label as text
         "我需要联系协管员": HELP, "i need my officer": HELP}


def _words(lang: str) -> dict[str, str]:
    return {"today": catalogue(lang)["when.today"], "tomorrow": catalogue(lang)["when.tomorrow"]}


def location_keyboard(lang: str) -> dict:
    """Telegram: a reply keyboard whose first key shares the location and whose second asks for the officer."""
    return {"location_label": text(lang, "location.button_share"), "keyboard": [text(lang, "checkin.button_help")]}


def prompt(ob: Obligation, person: Supervisee, zone: tzinfo) -> Reply:
    """Today's check-in, with the two answers as buttons (or, where a location is required, the share key)."""
    lang = person.language
    if ob.location_required:
        return Reply(text(lang, "location.prompt", deadline=hm(ob.window_end_at, zone)), request_location=True,
                     keyboard=location_keyboard(lang), to=Recipient(SenderKind.supervisee, person.id),
                     kind="checkin_prompt")
    return Reply(
        text(lang, "checkin.prompt", deadline=hm(ob.window_end_at, zone)),
        buttons=[Button(text(lang, "checkin.button_ok"), f"checkin:{ob.id}:{OK}"),
                 Button(text(lang, "checkin.button_help"), f"checkin:{ob.id}:{HELP}")],
        to=Recipient(SenderKind.supervisee, person.id), kind="checkin_prompt",
        sms_hint=text(lang, "checkin.sms_hint"),
    )


def reminder(ob: Obligation, person: Supervisee, zone: tzinfo) -> Reply:
    """The one reminder, with the same buttons."""
    first = prompt(ob, person, zone)
    key = "checkin.reminder"
    if ob.location_required:
        key = "location.reminder_partial" if ob.partial_at else "location.reminder"
    first.text = text(person.language, key, deadline=hm(ob.window_end_at, zone))
    first.kind = "checkin_reminder"
    return first


def next_due(session: Session, person_id: int, kind: str, after: datetime) -> Obligation | None:
    """The person's next planned obligation of `kind` after `after`."""
    return session.exec(
        select(Obligation)
        .where(Obligation.supervisee_id == person_id, Obligation.kind == kind,
               Obligation.state == ObligationState.planned, Obligation.due_at > after)
        .order_by(Obligation.due_at)
    ).first()


def current(session: Session, person_id: int, now: datetime) -> Obligation | None:
    """The check-in a typed answer is for: the open prompted one, else the latest missed one from the last day."""
    open_one = session.exec(
        select(Obligation)
        .where(Obligation.supervisee_id == person_id, Obligation.kind == ObligationKind.checkin,
               col(Obligation.state).in_([ObligationState.prompted, ObligationState.reminded]))
        .order_by(col(Obligation.due_at).desc())
    ).first()
    if open_one is not None:
        return open_one
    latest = session.exec(
        select(Obligation)
        .where(Obligation.supervisee_id == person_id, Obligation.kind == ObligationKind.checkin,
               Obligation.due_at <= now)
        .order_by(col(Obligation.due_at).desc())
    ).first()
    return latest if latest is not None and latest.state != ObligationState.planned else None


def _next_text(ctx: Context) -> str | None:
    """When the next check-in is: planned already, else as the policy will plan it."""
    person = ctx.sender.supervisee
    nxt = next_due(ctx.session, person.id, ObligationKind.checkin, ctx.now)
    due = nxt.due_at if nxt else None
    if due is None and ctx.policy is not None:
        coming = checkin_slots(ctx.policy, person.level, ctx.person_zone, ctx.now, ctx.now + timedelta(days=8))
        due = next((s.due_at for s in coming if s.due_at > ctx.now
                    and s.due_at.astimezone(ctx.person_zone).date() <= person.supervision_end), None)
    return when(due, ctx.person_zone, ctx.language, ctx.now, _words(ctx.language)) if due else None


async def answer(inbound: Inbound, ctx: Context) -> list[Reply]:
    """A check-in answer, by button `checkin:ID:ok|help` or typed (`1`, `2`, `报到`)."""
    person, lang, session, now = ctx.sender.supervisee, ctx.language, ctx.session, ctx.now
    zone = ctx.person_zone
    if inbound.button:
        found = target(inbound.button, "")
        choice = found.arg(0) if found.arg(0) in (OK, HELP) else OK
        ob = session.get(Obligation, found.id) if found.id else None
        if ob is None or ob.supervisee_id != person.id or ob.kind != ObligationKind.checkin:
            ob = current(session, person.id, now)
    else:
        choice = TYPED.get(ctx.keyword, OK)
        ob = current(session, person.id, now)
    if ob is None:
        nxt = _next_text(ctx)
        return [Reply(text(lang, "checkin.none_open", next=nxt) if nxt else text(lang, "checkin.none_open_no_next"))]
    if ob.state in (ObligationState.done, ObligationState.late, ObligationState.excused, ObligationState.partial):
        return [Reply(text(lang, "checkin.already"))]
    if ob.location_required and choice == OK and ob.state in OPEN_OBLIGATION and now <= ob.window_end_at:
        # "I am fine" without the location the check-in needs: partial, until the location comes
        ob.partial_at = ob.partial_at or now
        session.add(ob)
        person.last_contact_kind = "checkin"
        log.info("obligation %s answered without its location (supervisee %s)", ob.id, person.id)
        return [Reply(text(lang, "location.need", deadline=hm(ob.window_end_at, zone)), request_location=True,
                      keyboard=location_keyboard(lang))]
    on_time = settle(session, ob, person, now, ctx.zone)
    officer = session.get(Officer, person.officer_id)
    replies: list[Reply] = []
    if on_time and choice == HELP:
        replies.append(Reply(text(lang, "checkin.received_help", officer=officer.name)))
    elif on_time:
        replies.append(received(ctx))
    else:
        replies.append(Reply(text(lang, "checkin.late", deadline=hm(ob.window_end_at, zone), officer=officer.name)))
    if choice == HELP:  # "I need my officer" is an escalation at once, not a note
        open_escalation(session, person, EscalationKind.asked_officer, now, ctx.policy, ctx.zone, obligation=ob)
    if ob.location_required:
        replies[0].remove_keyboard = True
    return replies


def received(ctx: Context) -> Reply:
    """"Received", with when the next check-in is."""
    nxt = _next_text(ctx)
    return Reply(
        text(ctx.language, "checkin.received", next=nxt) if nxt else text(ctx.language, "checkin.received_last")
    )


def settle(session: Session, ob: Obligation, person: Supervisee, now: datetime, zone: tzinfo) -> bool:
    """Close an answered check-in: done inside its window (True), late after it (False, closing the alert)."""
    person.last_contact_kind = "checkin"
    session.add(person)
    if ob.state in OPEN_OBLIGATION and now <= ob.window_end_at:
        ob.state, ob.answered_at, ob.next_check_at = ObligationState.done, now, None
        log.info("obligation %s done (supervisee %s)", ob.id, person.id)
        session.add(ob)
        return True
    ob.state, ob.answered_at, ob.next_check_at = ObligationState.late, now, None
    log.info("obligation %s answered late (supervisee %s)", ob.id, person.id)
    close_for_late_answer(session, ob, now, zone)
    session.add(ob)
    return False


async def free_text(inbound: Inbound, ctx: Context) -> list[Reply]:
    """A person's text that matched nothing is never lost: it answers a waiting check-in, and anything longer
    than a bare word is passed on to the officer, who can answer it by replying."""
    person, body = ctx.sender.supervisee, inbound.text.strip()
    if not body or body.startswith("/"):  # a sticker, or a command we do not have: nothing to pass on
        return [Reply(text(ctx.language, "fallback.not_understood"))]
    waiting = ctx.session.exec(
        select(Obligation).where(Obligation.supervisee_id == person.id, Obligation.kind == ObligationKind.checkin,
                                 col(Obligation.state).in_([ObligationState.prompted, ObligationState.reminded]),
                                 Obligation.window_end_at >= ctx.now)
    ).first()
    officer = ctx.session.get(Officer, person.officer_id)
    if waiting is None:
        return [Reply(text(ctx.language, "contact.passed_on", officer=officer.name)), forward(ctx, body)]
    replies = await answer(Inbound(inbound.channel, inbound.address, text="ok"), ctx)
    if len(body) > ctx.policy.limits.bare_answer_chars:
        replies[0].text += "\n" + text(ctx.language, "contact.also_passed_on", officer=officer.name)
        replies.append(forward(ctx, body))
    return replies
