"""The officer's side beyond alerts: one person's recent contact, and messages to a person through the service."""

from __future__ import annotations

import json
import logging

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, func, select

from content.catalog import text
from content.formatting import day_and_time, phone_national
from handlers.contract import Context, Inbound, Recipient, Reply, SenderKind, row_id
from handlers.delivery import outcome
from handlers.location import requirement
from storage import audit, queries
from storage.models import (
    ChannelName,
    Escalation,
    EscalationState,
    Leave,
    LeaveState,
    LocationCheck,
    Message,
    Obligation,
    ObligationState,
    Officer,
    Role,
    Status,
    Supervisee,
    WrittenReport,
)

log = logging.getLogger(__name__)



def can_see(session: Session, officer: Officer, person: Supervisee) -> bool:
    """An assistant sees their own caseload, a supervisor their township, an administrator everyone."""
    if officer.role == Role.admin:
        return True
    if officer.role == Role.supervisor:
        if person.township == officer.township:
            return True
        assigned = session.get(Officer, person.officer_id)
        return assigned is not None and assigned.supervisor_id == officer.id
    return person.officer_id == officer.id


def person_in_scope(ctx: Context, case_number: str) -> tuple[Supervisee | None, list[Reply]]:
    person = queries.supervisee_by_case(ctx.session, case_number) if case_number else None
    if person is None:
        return None, [Reply(text(ctx.language, "officer.no_case", case=case_number or "?"))]
    if not can_see(ctx.session, ctx.sender.officer, person):
        log.info("officer %s refused supervisee %s", ctx.sender.officer.id, person.id)
        return None, [Reply(text(ctx.language, "officer.not_yours", case=case_number))]
    return person, []


THREAD_CHUNK = 200  # messages read at a time while filling the pages of a thread


async def case(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/case CASE [PAGE]: who, last contact, this month, open alerts, then the thread in and out, newest first,
    in full and paged to fit one chat message (`/case CASE 2` the next page)."""
    lang, s = ctx.language, ctx.session
    words = ctx.args.split()
    person, refusal = person_in_scope(ctx, words[0] if words else "")
    if person is None:
        return refusal
    page = _page_number(words[1] if len(words) > 1 else "")
    card = _card(ctx, person)
    budget = ctx.policy.limits.page_chars
    total = s.exec(select(func.count()).select_from(Message).where(Message.supervisee_id == person.id)).one()
    pages = _thread_pages(ctx, person, first_budget=max(budget - len("\n".join(card)), budget // 3),
                          budget=budget, wanted=page)
    page = min(page, len(pages))
    shown, first = pages[page - 1], sum(len(p) for p in pages[:page - 1])
    lines = card if page == 1 else card[:1]
    if shown:
        lines.append(text(lang, "officer.thread_header", first=first + 1, last=first + len(shown), total=total))
        lines += shown
    else:
        lines.append(text(lang, "officer.thread_empty"))
    if first + len(shown) < total:
        lines.append(text(lang, "officer.thread_more", case_number=person.case_number, next=page + 1))
    return [Reply("\n".join(lines))]


def _page_number(word: str) -> int:
    return int(word) if word.isascii() and word.isdigit() and 0 < int(word) < 100_000 else 1


def _who(lang: str, person: Supervisee) -> dict:
    return dict(name=person.name, case_number=person.case_number, level=text(lang, f"level.{person.level}"),
                township=person.township, status=text(lang, f"status.{person.status}"))


def _card(ctx: Context, person: Supervisee) -> list[str]:
    """The top of page one: who, last contact and how to reach them, this month, location and leave."""
    lang, s, zone = ctx.language, ctx.session, ctx.zone
    month_start = ctx.now.astimezone(zone).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    counts = dict(s.exec(
        select(Obligation.state, func.count()).where(Obligation.supervisee_id == person.id,
                                                     Obligation.due_at >= month_start, Obligation.due_at <= ctx.now)
        .group_by(Obligation.state)).all())
    open_alerts = s.exec(select(func.count()).select_from(Escalation).where(
        Escalation.supervisee_id == person.id, Escalation.state != EscalationState.resolved)).one()
    last = (day_and_time(person.last_contact_at, zone, lang) if person.last_contact_at
            else text(lang, "escalation.never"))
    lines = [
        text(lang, "officer.case_header", **_who(lang, person)),
        text(lang, "officer.case_contact", last=last, phone=phone_national(person.phone) or "-",
             telegram=text(lang, "escalation.telegram_yes" if person.telegram_chat_id and not person.telegram_blocked_at
                           else "escalation.telegram_no")),
        text(lang, "officer.case_month", done=counts.get(ObligationState.done, 0) + counts.get(ObligationState.late, 0),
             missed=counts.get(ObligationState.missed, 0), alerts=open_alerts),
    ]
    if person.paused_until is not None:
        lines.append(text(lang, "case.card_paused", start=person.paused_from.isoformat(),
                          end=person.paused_until.isoformat(), reason=person.pause_reason or "-"))
    if person.status == Status.ended and person.ended_reason:
        lines.append(text(lang, "end_reason.card", reason=text(lang, f"end_reason.{person.ended_reason}"),
                          end=person.supervision_end.isoformat()))
    return lines + _location_lines(ctx, person)


def _thread_line(ctx: Context, m: Message) -> str:
    """One message of the thread: when, which way, the whole text (a location or a button said as such)."""
    body = m.body
    if not body and m.kind == "location":
        body = text(ctx.language, "officer.thread_location")
    elif not body and m.kind == "button":
        body = text(ctx.language, "officer.thread_button")
    arrow = "←" if m.direction == "in" else "→"
    if m.channel == ChannelName.voice:  # a call, or a key pressed in one: how the call went
        body = f"📞 {body}"
    ended = outcome(m, ctx.language, ctx.zone)
    return f"{day_and_time(m.created_at, ctx.zone, ctx.language)} {arrow} {body}" + (f" ({ended})" if ended else "")


def _thread_pages(ctx: Context, person: Supervisee, *, first_budget: int, budget: int, wanted: int) -> list[list[str]]:
    """The person's messages, newest first, cut into pages of at most `budget` characters (the first page has
    less room, under the card); filled up to page `wanted` and one message beyond, no further.

    A message longer than a page gets a page of its own, whole (a chat message holds 4,096 characters).
    """
    pages: list[list[str]] = [[]]
    room, offset = first_budget, 0
    while True:
        chunk = ctx.session.exec(select(Message).where(Message.supervisee_id == person.id)
                                 .order_by(col(Message.created_at).desc(), col(Message.id).desc())
                                 .offset(offset).limit(THREAD_CHUNK)).all()
        for m in chunk:
            line = _thread_line(ctx, m)
            if pages[-1] and len(line) + 1 > room:
                if len(pages) == wanted:
                    return pages
                pages.append([])
                room = budget
            pages[-1].append(line)
            room -= len(line) + 1
        if len(chunk) < THREAD_CHUNK:
            return pages
        offset += THREAD_CHUNK


FIND_LIMIT = 20  # people listed by one /find


def matches(person: Supervisee, words: str) -> bool:
    """Part of the name or case number (any case), or the phone's last digits (four or more)."""
    needle = words.strip().casefold()
    digits = needle.isascii() and needle.isdigit() and len(needle) >= 4
    return (needle in person.name.casefold() or needle in person.case_number.casefold()
            or (digits and (person.phone or "").endswith(needle)))


async def find(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/find WORDS: people in the officer's scope by part of a name or case number, or a phone's last digits.

    Names and numbers are stored encrypted, so the scope's rows are read and matched here: an assistant's
    caseload is a few dozen, a county's a few thousand.
    """
    lang, query = ctx.language, ctx.args.strip()
    if not query:
        return [Reply(text(lang, "officer.find_usage"))]
    ids = visible_people(ctx.session, ctx.sender.officer)
    q = select(Supervisee).where(col(Supervisee.purged_at).is_(None))
    if ids is not None:
        q = q.where(col(Supervisee.id).in_(ids or [0]))
    found = [p for p in ctx.session.exec(q.order_by(Supervisee.case_number)).all() if matches(p, query)]
    if not found:
        return [Reply(text(lang, "officer.find_none", query=query))]
    lines = [text(lang, "officer.find_header", count=min(len(found), FIND_LIMIT), total=len(found))]
    lines += [text(lang, "officer.find_line", **_who(lang, p), phone=phone_national(p.phone) or "-")
              for p in found[:FIND_LIMIT]]
    return [Reply("\n".join(lines))]


def _location_lines(ctx: Context, person: Supervisee) -> list[str]:
    """Whether location check-ins apply (SMS-only people are exempt), the last point, current leave."""
    lang, s = ctx.language, ctx.session
    need = requirement(ctx.policy, person) if ctx.policy else "not_required"
    lines = [text(lang, f"location.case_{need}", level=text(lang, f"level.{person.level}"))]
    last = s.exec(select(LocationCheck).where(LocationCheck.supervisee_id == person.id)
                  .order_by(col(LocationCheck.taken_at).desc())).first()
    if last is not None:
        area = ctx.areas.get(last.area)
        inside = (text(lang, "location.case_unchecked") if last.inside is None
                  else text(lang, "location.case_inside") if last.inside
                  else text(lang, "location.case_outside", distance=f"{(last.distance_m or 0) / 1000:.1f}"))
        lines.append(text(lang, "location.case_last", at=day_and_time(last.taken_at, ctx.zone, lang),
                          where=area.name(lang) if area else text(lang, "location.unknown_area"), inside=inside))
    leave = s.exec(select(Leave).where(Leave.supervisee_id == person.id,
                                       col(Leave.state).in_([LeaveState.requested, LeaveState.approved]))
                   .order_by(Leave.starts_on)).first()
    if leave is not None:
        lines.append(text(lang, "location.case_leave", id=leave.id, destination=leave.destination,
                          start=leave.starts_on.isoformat(), end=leave.ends_on.isoformat(),
                          state=text(lang, f"leave.state_{leave.state}")))
    return lines


async def say(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/say CASE text: a message to the person through the service, in the officer's name."""
    parts = ctx.args.split(maxsplit=1)
    if len(parts) < 2:
        return [Reply(text(ctx.language, "officer.say_usage"))]
    person, refusal = person_in_scope(ctx, parts[0])
    if person is None:
        return refusal
    return relay(ctx, person, parts[1].strip())


def relay(ctx: Context, person: Supervisee, body: str) -> list[Reply]:
    """A message to the person in the signed-in officer's name (the chat's /say and reply, the console's)."""
    officer = ctx.sender.officer
    if len(body) > ctx.policy.limits.say_chars:
        body = body[:ctx.policy.limits.say_chars] + "…"
    audit.append(ctx.session, actor=f"officer:{officer.id}", action="message.sent", now=ctx.now,
                 supervisee_id=person.id, details={"characters": len(body)})
    log.info("officer %s sent a message to supervisee %s", officer.id, person.id)
    return [
        Reply(text(person.language, "officer.to_person", officer=officer.name, text=body),
              to=Recipient(SenderKind.supervisee, person.id), kind="officer_message"),
        Reply(text(ctx.language, "officer.say_sent", name=person.name)),
    ]


def _pages(body: str, size: int) -> list[str]:
    """`body` cut into pages of at most `size` characters, at a line break where there is one."""
    pages, rest = [], body
    while len(rest) > size:
        cut = rest.rfind("\n", size // 2, size)
        cut = cut if cut > 0 else size
        pages.append(rest[:cut])
        rest = rest[cut:].lstrip("\n")
    return pages + [rest]


def visible_clause(officer: Officer) -> ColumnElement | None:
    """Which `Supervisee` rows `officer` may see, as a condition; None for an administrator (everyone)."""
    if officer.role == Role.admin:
        return None
    if officer.role == Role.supervisor:
        under = select(Officer.id).where(Officer.supervisor_id == officer.id)
        return (Supervisee.township == officer.township) | col(Supervisee.officer_id).in_(under)
    return Supervisee.officer_id == officer.id


def visible_people(session: Session, officer: Officer) -> list[int] | None:
    """Ids of the people `officer` may see; None for an administrator (everyone)."""
    visible = visible_clause(officer)
    if visible is None:
        return None
    return list(session.exec(select(Supervisee.id).where(visible)).all())


async def reports(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/reports [CASE]: the latest written reports of the officer's people (or of one person), newest first."""
    lang, s = ctx.language, ctx.session
    q = select(WrittenReport, Supervisee).join(Supervisee, Supervisee.id == WrittenReport.supervisee_id)
    if ctx.args:
        person, refusal = person_in_scope(ctx, ctx.args.split(maxsplit=1)[0])
        if person is None:
            return refusal
        q = q.where(WrittenReport.supervisee_id == person.id)
    else:
        ids = visible_people(ctx.session, ctx.sender.officer)
        if ids is not None:
            q = q.where(col(WrittenReport.supervisee_id).in_(ids or [0]))
    total = s.exec(select(func.count()).select_from(q.subquery())).one()
    rows = s.exec(q.order_by(col(WrittenReport.submitted_at).desc(), col(WrittenReport.id).desc()).limit(20)).all()
    if not rows:
        return [Reply(text(lang, "report.list_empty"))]
    lines = [text(lang, "report.list_header", count=len(rows), total=total)]
    for r, p in rows:
        first = r.body.replace("\n", " ")
        lines.append(text(lang, "report.list_line", id=r.id, receipt=r.receipt, name=p.name, case_number=p.case_number,
                          when=day_and_time(r.submitted_at, ctx.zone, lang),
                          first=first if len(first) <= 40 else first[:40] + "…"))
    return [Reply("\n".join(lines))]


async def report_show(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/report N [PAGE]: one written report in full, a page at a time."""
    lang, words = ctx.language, ctx.args.split()
    report_id = row_id(words[0].lstrip("#")) if words else None
    if report_id is None:
        return [Reply(text(lang, "report.show_usage"))]
    report = ctx.session.get(WrittenReport, report_id)
    person = ctx.session.get(Supervisee, report.supervisee_id) if report else None
    if person is None:
        return [Reply(text(lang, "report.not_found", id=report_id))]
    if not can_see(ctx.session, ctx.sender.officer, person):
        return [Reply(text(lang, "officer.not_yours", case=person.case_number))]
    pages = _pages(report.body, ctx.policy.limits.page_chars)
    page = min(max(int(words[1]) if len(words) > 1 and words[1].isascii() and words[1].isdigit() else 1, 1),
               len(pages))
    body = text(lang, "report.page", receipt=report.receipt, name=person.name, case_number=person.case_number,
                when=day_and_time(report.submitted_at, ctx.zone, lang), page=page, pages=len(pages),
                text=pages[page - 1])
    if page < len(pages):
        body += "\n" + text(lang, "report.next_page", id=report.id, next=page + 1)
    return [Reply(body)]


async def fallback(inbound: Inbound, ctx: Context) -> list[Reply]:
    """An officer's text that matched no command: a reply to an alert goes to that person; else help."""
    if inbound.reply_to_message_id is not None and inbound.text.strip():
        row = ctx.session.exec(select(Message).where(
            Message.channel == inbound.channel, Message.direction == "out",
            Message.provider_id == f"{inbound.address}:{inbound.reply_to_message_id}")).first()
        esc_person = None
        if row is not None and row.kind == "escalation":
            esc_id = _alert_id(row.payload)
            esc = ctx.session.get(Escalation, esc_id) if esc_id else None
            esc_person = ctx.session.get(Supervisee, esc.supervisee_id) if esc else None
        elif row is not None and row.kind in ("contact", "report_notice"):  # a passed-on message or a report
            about = row_id(str(json.loads(row.payload or "{}").get("about", "")))
            esc_person = ctx.session.get(Supervisee, about) if about else None
        if esc_person is not None:
            if not can_see(ctx.session, ctx.sender.officer, esc_person):
                return [Reply(text(ctx.language, "officer.not_yours", case=esc_person.case_number))]
            return relay(ctx, esc_person, inbound.text.strip())
    return [Reply(text(ctx.language, "fallback.officer"))]


def _alert_id(payload: str | None) -> int | None:
    """The escalation id carried by an alert's buttons (`esc:ID:action`)."""
    for _, data in json.loads(payload or "{}").get("buttons", []):
        parts = data.split(":")
        if parts[0] == "esc" and len(parts) > 1 and row_id(parts[1]):
            return row_id(parts[1])
    return None


async def officer_caseload(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/list: the officer's active people."""
    people = queries.caseload(ctx.session, ctx.sender.officer.id)
    lang = ctx.language
    if not people:
        return [Reply(text(lang, "officer.caseload_empty"))]
    lines = [text(lang, "officer.caseload_header", count=len(people))]
    lines += [
        text(lang, "officer.caseload_line", name=p.name, case_number=p.case_number,
             level=text(lang, f"level.{p.level}"))
        for p in people
    ]
    return [Reply("\n".join(lines))]
