"""Leave to travel: the request (one message, or step by step), the officer's decision, the trip and the report back.

A person asks with `/leave` (Telegram) or `LEAVE` / `请假` (SMS), either all in
one message (`请假 贵阳 12-01 12-05 看望母亲`) or step by step (destination,
dates, reason). The officer approves, moving the allowed area to the
destination (when it names a known area) or suspending the area check for
those dates, or refuses; by button, by text (`批准 12`, `拒绝 12 原因`,
`APPROVE 12 SUSPEND`), or from the command line. Check-ins go on during leave.
On the last day the person is reminded to report back (`销假` / `BACK`); no
report back by the policy's grace period escalates.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from sqlmodel import Session, col, select

from content.areas import Areas
from content.catalog import text
from content.formatting import day_and_time
from content.policy import Policy
from handlers.alerts import note_facts
from handlers.contract import Button, Context, Inbound, Recipient, Reply, SenderKind, target
from handlers.delivery import deliver
from handlers.escalation import close, close_open, open_escalation
from handlers.officer import can_see
from storage import audit
from storage.models import (
    ConversationState,
    Escalation,
    EscalationKind,
    EscalationState,
    Leave,
    LeaveState,
    Officer,
    Resolution,
    Supervisee,
)

log = logging.getLogger(__name__)

MODES = ("move", "suspend")
CANCEL = {"/cancel", "cancel", "取消", "cancel leave", "取消请假"}  # "cancel" alone opts out by SMS
# Officers' typed decisions: APPROVE 12 [MOVE|SUSPEND], REFUSE 12 [reason]
APPROVE_WORDS = ("approve", "/approve", "批准")
REFUSE_WORDS = ("refuse", "/refuse", "拒绝", "不批准")
MODE_WORDS = {"move": "move", "移动": "move", "目的地": "move", "suspend": "suspend", "暂停": "suspend"}
MAX_DESTINATION, MAX_REASON = 200, 500

_BETWEEN = re.compile(r"\s*(?:-|~|—|–|至|到|to|till|until)?\s*", re.I)
_DATE = re.compile(r"(?:(\d{4})\s*[-/.年]\s*)?(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*[日号]?")


class LeaveError(ValueError):
    """A request that cannot be made or decided; `key` and `params` render the explanation."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key, self.params = key, params

    def render(self, lang: str) -> str:
        return text(lang, f"leave.{self.key}", **self.params)


@dataclass(frozen=True)
class Request:
    destination: str
    starts_on: date
    ends_on: date
    reason: str


def _day(y: str | None, m: str, d: str, today: date) -> date:
    month, day_ = int(m), int(d)
    year = int(y) if y else today.year
    try:
        found = date(year, month, day_)
    except ValueError:
        raise LeaveError("bad_date", value=f"{m}-{d}" if not y else f"{y}-{m}-{d}") from None
    if not y and found < today - timedelta(days=31):  # "01-05" asked in December is next January
        found = date(year + 1, month, day_)
    return found


def parse_dates(words: str, today: date) -> tuple[tuple[date, date] | None, str, str]:
    """The first one or two dates in `words`, with the text before and after them."""
    found = list(_DATE.finditer(words))
    if not found:
        return None, words.strip(), ""
    first = found[0]
    start = _day(*first.groups(), today)
    end_match = first
    end = start
    if len(found) > 1 and _BETWEEN.fullmatch(words[first.end():found[1].start()]):
        end_match = found[1]
        end = _day(*found[1].groups(), today)
    before = words[:first.start()].strip(" ,，;；")
    after = words[end_match.end():].strip(" ,，;；")
    return (start, end), before, after


def parse(words: str, today: date) -> Request:
    """`DESTINATION FROM [TO] REASON` from one message; errors name what is missing or wrong."""
    dates, before, after = parse_dates(words, today)
    if dates is None:
        raise LeaveError("no_dates")
    if not before:
        raise LeaveError("no_destination")
    if not after:
        raise LeaveError("no_reason")
    return Request(before[:MAX_DESTINATION], dates[0], dates[1], after[:MAX_REASON])


def validate(session: Session, policy: Policy, person: Supervisee, req: Request, today: date) -> None:
    """Dates in order, not in the past, within the policy's length, inside supervision, not overlapping."""
    first_day = today + timedelta(days=policy.leave.min_notice_days)
    if req.starts_on < first_day:
        raise LeaveError("too_soon", first=first_day.isoformat())
    if req.ends_on < req.starts_on:
        raise LeaveError("end_before_start", start=req.starts_on.isoformat(), end=req.ends_on.isoformat())
    days = (req.ends_on - req.starts_on).days + 1
    if days > policy.leave.max_days:
        raise LeaveError("too_long", days=days, max=policy.leave.max_days)
    if req.starts_on > person.supervision_end:
        raise LeaveError("after_supervision", end=person.supervision_end.isoformat())
    clash = session.exec(select(Leave).where(
        Leave.supervisee_id == person.id, col(Leave.state).in_([LeaveState.requested, LeaveState.approved]),
        Leave.starts_on <= req.ends_on, Leave.ends_on >= req.starts_on)).first()
    if clash is not None:
        raise LeaveError("overlaps", id=clash.id, start=clash.starts_on.isoformat(), end=clash.ends_on.isoformat())


def create(session: Session, areas: Areas, policy: Policy, person: Supervisee, req: Request, now: datetime,
           today: date) -> Leave:
    """Record a valid request and alert the officer (buttons: approve moving the area, approve suspending, refuse)."""
    validate(session, policy, person, req, today)
    dest = areas.find(req.destination)
    home = areas.home(policy.location.home_area)
    leave = Leave(supervisee_id=person.id, officer_id=person.officer_id, destination=req.destination,
                  destination_area=dest.key if dest is not None and dest.key != home.key else None,
                  starts_on=req.starts_on, ends_on=req.ends_on, reason=req.reason,
                  state=LeaveState.requested, requested_at=now)
    session.add(leave)
    session.flush()
    officer = session.get(Officer, person.officer_id)
    deliver(session, officer_alert(leave, person, officer, areas), now=now, dedupe_key=f"leave:{leave.id}:officer")
    log.info("leave %s requested by supervisee %s", leave.id, person.id)
    return leave


def officer_alert(leave: Leave, person: Supervisee, officer: Officer, areas: Areas) -> Reply:
    lang = officer.language
    dest = areas.get(leave.destination_area)
    buttons = []
    if dest is not None:
        buttons.append(Button(text(lang, "leave.button_move", area=dest.name(lang)), f"leave:{leave.id}:move"))
    buttons += [Button(text(lang, "leave.button_suspend"), f"leave:{leave.id}:suspend"),
                Button(text(lang, "leave.button_refuse"), f"leave:{leave.id}:refuse")]
    body = text(lang, "leave.officer_alert", id=leave.id, name=person.name, case_number=person.case_number,
                township=person.township, destination=leave.destination, start=leave.starts_on.isoformat(),
                end=leave.ends_on.isoformat(), days=(leave.ends_on - leave.starts_on).days + 1, reason=leave.reason,
                area=dest.name(lang) if dest else text(lang, "leave.area_unknown"))
    return Reply(body, buttons=buttons, to=Recipient(SenderKind.officer, officer.id), kind="leave_request",
                 sms_hint=text(lang, "leave.sms_hint", id=leave.id))


# ---- the person's side -------------------------------------------------------------


def _today(ctx: Context) -> date:
    return ctx.now.astimezone(ctx.person_zone).date()


def _submitted(ctx: Context, leave: Leave) -> list[Reply]:
    officer = ctx.session.get(Officer, leave.officer_id)
    return [Reply(text(ctx.language, "leave.submitted", id=leave.id, destination=leave.destination,
                       start=leave.starts_on.isoformat(), end=leave.ends_on.isoformat(), officer=officer.name))]


async def request(inbound: Inbound, ctx: Context) -> list[Reply]:
    """`/leave` alone starts the questions; `/leave DESTINATION FROM TO REASON` asks at once."""
    words = ctx.args.strip()
    if not words:
        ctx.set_state(ConversationState.leave, {"step": "destination"})
        return [Reply(text(ctx.language, "leave.ask_destination"))]
    try:
        req = parse(words, _today(ctx))
        leave = create(ctx.session, ctx.areas, ctx.policy, ctx.sender.supervisee, req, ctx.now, _today(ctx))
    except LeaveError as exc:
        return [Reply(exc.render(ctx.language) + "\n" + text(ctx.language, "leave.usage"))]
    return _submitted(ctx, leave)


async def collect(inbound: Inbound, ctx: Context) -> list[Reply]:
    """The step-by-step request: destination, then dates, then reason; `取消` / CANCEL stops it."""
    lang, body = ctx.language, inbound.text.strip()
    data = ctx.state_data()
    if body.lower() in CANCEL:
        ctx.set_state(ConversationState.idle)
        return [Reply(text(lang, "leave.cancelled"))]
    if not body:
        return [Reply(text(lang, f"leave.ask_{data.get('step', 'destination')}"))]
    step = data.get("step", "destination")
    if step == "destination":
        ctx.set_state(ConversationState.leave, {"step": "dates", "destination": body[:MAX_DESTINATION]})
        return [Reply(text(lang, "leave.ask_dates"))]
    if step == "dates":
        try:
            dates, _, _ = parse_dates(body, _today(ctx))
        except LeaveError as exc:
            return [Reply(exc.render(lang) + "\n" + text(lang, "leave.ask_dates"))]
        if dates is None:
            return [Reply(text(lang, "leave.no_dates") + "\n" + text(lang, "leave.ask_dates"))]
        ctx.set_state(
            ConversationState.leave,
            {**data, "step": "reason", "start": dates[0].isoformat(), "end": dates[1].isoformat()},
        )
        return [Reply(text(lang, "leave.ask_reason"))]
    req = Request(data["destination"], date.fromisoformat(data["start"]), date.fromisoformat(data["end"]),
                  body[:MAX_REASON])
    ctx.set_state(ConversationState.idle)
    try:
        leave = create(ctx.session, ctx.areas, ctx.policy, ctx.sender.supervisee, req, ctx.now, _today(ctx))
    except LeaveError as exc:
        return [Reply(exc.render(lang) + "\n" + text(lang, "leave.usage"))]
    return _submitted(ctx, leave)


async def report_back(inbound: Inbound, ctx: Context) -> list[Reply]:
    """`销假` / BACK: the person is back from approved leave (or calls off leave not yet begun)."""
    person, session, lang, now = ctx.sender.supervisee, ctx.session, ctx.language, ctx.now
    today = _today(ctx)
    leave = session.exec(select(Leave).where(
        Leave.supervisee_id == person.id, col(Leave.state).in_([LeaveState.approved, LeaveState.requested]))
        .order_by(Leave.starts_on)).first()
    if leave is None:
        return [Reply(text(lang, "leave.nothing_to_end"))]
    officer = session.get(Officer, leave.officer_id)
    if leave.starts_on > today or leave.state == LeaveState.requested:
        leave.state = LeaveState.cancelled
        key_person, key_officer = "leave.cancelled_by_person", "leave.officer_cancelled"
        _close_undecided(session, leave, now)
    else:
        leave.state, leave.returned_at = LeaveState.returned, now
        key_person, key_officer = "leave.returned", "leave.officer_returned"
        _close_not_returned(session, leave, now)
    session.add(leave)
    person.last_contact_kind = "leave"
    log.info("leave %s %s by supervisee %s", leave.id, leave.state, person.id)
    return [
        Reply(text(lang, key_person, id=leave.id, officer=officer.name)),
        Reply(text(officer.language, key_officer, id=leave.id, name=person.name, case_number=person.case_number,
                   destination=leave.destination, time=day_and_time(now, ctx.zone, officer.language)),
              to=Recipient(SenderKind.officer, officer.id), kind="leave_update"),
    ]


def _close_not_returned(session: Session, leave: Leave, now: datetime) -> None:
    close_open(session, leave.supervisee_id, EscalationKind.leave_not_returned, Resolution.answered_late, now)


def _close_undecided(session: Session, leave: Leave, now: datetime) -> None:
    """The request was decided or withdrawn: its waiting alert, if any, is settled."""
    for esc in session.exec(select(Escalation).where(
            Escalation.supervisee_id == leave.supervisee_id, Escalation.kind == EscalationKind.leave_undecided,
            Escalation.state != EscalationState.resolved)):
        if note_facts(esc.note).get("leave") == leave.id:
            close(session, esc, Resolution.decided, now)


# ---- the officer's side ------------------------------------------------------------


def decide(session: Session, leave: Leave, officer: Officer, decision: str, now: datetime, areas: Areas,
           note: str = "", *, actor: str | None = None) -> list[Reply]:
    """Approve (`move` or `suspend`) or `refuse` a request; returns the message to the person.

    Raises LeaveError when the officer may not decide, the request is already
    decided, or `move` is asked for a destination that is not a known area.
    """
    person = session.get(Supervisee, leave.supervisee_id)
    if not can_see(session, officer, person):
        raise LeaveError("not_allowed", id=leave.id)
    if leave.state != LeaveState.requested:
        raise LeaveError("already_decided", id=leave.id, state=text(officer.language, f"leave.state_{leave.state}"))
    if decision == "move" and areas.get(leave.destination_area) is None:
        raise LeaveError("no_area", id=leave.id, destination=leave.destination)
    leave.decided_at, leave.decided_by, leave.decision_note = now, officer.id, (note or None) and note[:500]
    lang = person.language
    if decision == "refuse":
        leave.state = LeaveState.refused
        body = text(lang, "leave.refused", id=leave.id, destination=leave.destination,
                    note=text(lang, "leave.refused_note", note=note) if note else "", officer=officer.name)
    else:
        leave.state, leave.mode = LeaveState.approved, decision
        dest = areas.get(leave.destination_area)
        check = (text(lang, "leave.check_move", area=dest.name(lang)) if decision == "move"
                 else text(lang, "leave.check_suspend"))
        body = text(
            lang,
            "leave.approved",
            id=leave.id,
            destination=leave.destination,
            start=leave.starts_on.isoformat(),
            end=leave.ends_on.isoformat(),
            check=check,
        )
    session.add(leave)
    _close_undecided(session, leave, now)
    audit.append(session, actor=actor or f"officer:{officer.id}", now=now,
                 action="leave.refuse" if decision == "refuse" else "leave.approve", supervisee_id=person.id,
                 subject=f"leave:{leave.id}",
                 details={"mode": leave.mode, "note": note[:500]} if note else {"mode": leave.mode})
    log.info("leave %s %s by officer %s", leave.id, leave.state, officer.id)
    return [Reply(body, to=Recipient(SenderKind.supervisee, person.id), kind="leave_decision")]


def _decision_label(lang: str, leave: Leave) -> str:
    return text(lang, f"leave.decided_{leave.mode if leave.state == LeaveState.approved else leave.state}")


async def act(inbound: Inbound, ctx: Context) -> list[Reply]:
    """An officer decides: button `leave:ID:move|suspend|refuse`, or `批准 ID [移动|暂停]` / `拒绝 ID [原因]`."""
    lang = ctx.language
    found = target(inbound.button, ctx.args)
    if found is None:
        return [Reply(text(lang, "leave.officer_usage"))]
    decision, note, rest = found.arg(0), "", found.arg(0)
    if not inbound.button:
        if ctx.keyword in REFUSE_WORDS:
            decision, note = "refuse", rest
        else:
            decision = MODE_WORDS.get(rest.split(maxsplit=1)[0].lower(), "") if rest else ""
    leave = ctx.session.get(Leave, found.id) if found.id else None
    if leave is None:
        return [Reply(text(lang, "leave.not_found", id=found.ref or "?"))]
    if decision in ("", "approve"):  # approval without a mode: move when the destination is known, else suspend
        decision = "move" if ctx.areas.get(leave.destination_area) else "suspend"
    if decision not in (*MODES, "refuse"):
        return [Reply(text(lang, "leave.officer_usage"))]
    try:
        to_person = decide(ctx.session, leave, ctx.sender.officer, decision, ctx.now, ctx.areas, note)
    except LeaveError as exc:
        return [Reply(exc.render(lang))]
    done = Reply(text(lang, "leave.decided", id=leave.id, decision=_decision_label(lang, leave),
                      officer=ctx.sender.officer.name), edit_origin=True)
    return [done, *to_person]


async def pending(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/leaves: requests waiting for this officer, and leave going on now."""
    lang, officer, s = ctx.language, ctx.sender.officer, ctx.session
    rows = s.exec(select(Leave, Supervisee).join(Supervisee, Supervisee.id == Leave.supervisee_id)
                  .where(col(Leave.state).in_([LeaveState.requested, LeaveState.approved]))
                  .order_by(Leave.starts_on).limit(200)).all()
    mine = [(lv, p) for lv, p in rows if can_see(s, officer, p)][:30]
    if not mine:
        return [Reply(text(lang, "leave.list_empty"))]
    lines = [text(lang, "leave.list_header", count=len(mine))]
    for lv, p in mine:
        lines.append(text(lang, "leave.list_line", id=lv.id, name=p.name, case_number=p.case_number,
                          destination=lv.destination, start=lv.starts_on.isoformat(), end=lv.ends_on.isoformat(),
                          state=text(lang, f"leave.state_{lv.state}")))
    return [Reply("\n".join(lines))]


# ---- the sweep's side --------------------------------------------------------------


def due_steps(session: Session, now: datetime, policy: Policy, zone_for, county_zone: tzinfo,
              country: str = "CN") -> tuple[int, int, int]:
    """Last-day reminders to report back, alerts for no report back after the grace period, and alerts for
    requests nobody decided within `[leave] decide_hours`.

    `zone_for(person)` is the person's time zone. Returns (reminded, escalated, undecided).
    """
    reminded = escalated = undecided = 0
    soon = now.astimezone(county_zone).date() + timedelta(days=1)  # a day's margin for people in other zones
    rows = session.exec(select(Leave, Supervisee).join(Supervisee, Supervisee.id == Leave.supervisee_id)
                        .where(Leave.state == LeaveState.approved, Leave.ends_on <= soon,
                               col(Leave.reminded_at).is_(None) | col(Leave.escalated_at).is_(None))).all()
    for leave, person in rows:
        zone = zone_for(person)
        local = now.astimezone(zone)
        if leave.reminded_at is None and leave.ends_on <= local.date() and local.time() >= policy.leave.remind_time:
            deliver(session, Reply(text(person.language, "leave.last_day", id=leave.id, destination=leave.destination),
                                   to=Recipient(SenderKind.supervisee, person.id), kind="leave_reminder"),
                    now=now, dedupe_key=f"leave:{leave.id}:last_day")
            leave.reminded_at = now
            session.add(leave)
            reminded += 1
        back_by = datetime.combine(leave.ends_on + timedelta(days=1), time(0), zone) + policy.leave.return_grace
        if leave.escalated_at is None and now >= back_by:
            leave.escalated_at = now
            session.add(leave)
            if open_escalation(session, person, EscalationKind.leave_not_returned, now, policy, county_zone,
                               facts={"leave": leave.id, "destination": leave.destination,
                                      "ends_on": leave.ends_on.isoformat()}, country=country):
                escalated += 1
    waiting = session.exec(select(Leave, Supervisee).join(Supervisee, Supervisee.id == Leave.supervisee_id)
                           .where(Leave.state == LeaveState.requested, col(Leave.undecided_alert_at).is_(None),
                                  col(Leave.requested_at) <= now - policy.leave.decide)).all()
    for leave, person in waiting:
        facts = {"leave": leave.id, "destination": leave.destination, "starts_on": leave.starts_on.isoformat(),
                 "ends_on": leave.ends_on.isoformat(),
                 "requested": leave.requested_at.isoformat()}
        # One such alert per person at a time: a second request waits until the first is settled.
        if open_escalation(session, person, EscalationKind.leave_undecided, now, policy, county_zone,
                           facts=facts, country=country):
            leave.undecided_alert_at = now
            session.add(leave)
            undecided += 1
    return reminded, escalated, undecided
