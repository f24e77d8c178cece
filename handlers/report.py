"""Written reports: the prompt the sweep sends, and the conversation that collects the report."""

from __future__ import annotations

import logging
from datetime import tzinfo

from sqlmodel import col, select

from content.catalog import text
from content.formatting import day_and_time
from handlers.contract import Button, Context, Inbound, Recipient, Recording, Reply, SenderKind
from handlers.escalation import close_for_late_answer
from storage.models import (
    ConversationState,
    Message,
    Obligation,
    ObligationKind,
    ObligationState,
    Officer,
    Supervisee,
    WrittenReport,
)

log = logging.getLogger(__name__)

DONE_WORDS = {"done", "/done", "完成", "好了", "结束"}
# "cancel" alone is an SMS opt-out keyword (Twilio's and ours): SMS users are told "cancel report".
CANCEL_WORDS = {"cancel", "/cancel", "取消", "cancel report", "取消汇报"}


def prompt(ob: Obligation, person: Supervisee, zone: tzinfo, *, reminder: bool = False, period: str = "week") -> Reply:
    """The report prompt or its reminder, with the deadline."""
    deadline = day_and_time(ob.window_end_at, zone, person.language)
    key = "report.reminder" if reminder else ("report.prompt_week" if period == "week" else "report.prompt_month")
    return Reply(text(person.language, key, deadline=deadline), to=Recipient(SenderKind.supervisee, person.id),
                 kind="report_reminder" if reminder else "report_prompt")


async def start(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/report, 汇报: start collecting a report; text after the keyword is the first part."""
    # Text on the keyword's line is the first part, without the keyword.
    ctx.set_state(ConversationState.report, {"parts": [], "first": ctx.args})
    return [Reply(text(ctx.language, "report.start"),
                  buttons=[Button(text(ctx.language, "report.button_done"), "report:done")])]


async def collect(inbound: Inbound, ctx: Context) -> list[Reply]:
    """In the report conversation: a part, done, or cancel."""
    word = inbound.text.strip().lower()
    data = ctx.state_data()
    if inbound.button == "report:done" or word in DONE_WORDS:
        return finish(ctx, data.get("parts", []), data.get("first", ""))
    if word in CANCEL_WORDS:
        ctx.set_state(ConversationState.idle)
        return [Reply(text(ctx.language, "report.cancelled"))]
    if inbound.button:  # an old or forged report button: nothing to add to
        return [Reply(text(ctx.language, "fallback.not_understood"))]
    if inbound.text.strip():
        parts = data.get("parts", []) + [ctx.message_id]
        if len(parts) >= ctx.policy.limits.report_parts:
            return finish(ctx, parts, data.get("first", ""))
        ctx.set_state(ConversationState.report, {**data, "parts": parts})
    return []


def finish(ctx: Context, part_ids: list[int], first: str = "") -> list[Reply]:
    """Store the report, close the open report obligation, give a receipt."""
    session, person = ctx.session, ctx.sender.supervisee
    bodies = [first] if first else []
    bodies += [m.body for m in session.exec(
        select(Message).where(col(Message.id).in_(part_ids)).order_by(Message.id))] if part_ids else []
    if not bodies:
        return [Reply(text(ctx.language, "report.empty"))]
    ctx.set_state(ConversationState.idle)
    report = _file(ctx, "\n\n".join(bodies), len(bodies))
    return [Reply(text(ctx.language, "report.received", parts=len(bodies), receipt=report.receipt)),
            officer_notice(ctx, report, person)]


async def spoken(inbound: Inbound, ctx: Context) -> list[Reply]:
    """A report spoken in a call (key 3, recorded by the provider): filed as a report, the officer told."""
    rec, lang = inbound.recording, ctx.language
    report = _file(ctx, text(lang, "report.spoken_body", seconds=rec.seconds), 1, recording=rec)
    return [Reply(text(lang, "report.received_spoken", receipt=report.receipt)),
            officer_notice(ctx, report, ctx.sender.supervisee)]


def _file(ctx: Context, body: str, parts: int, recording: Recording | None = None) -> WrittenReport:
    """Store a report and close the open report obligation (late when past its window); the report."""
    session, person, now = ctx.session, ctx.sender.supervisee, ctx.now
    ob = session.exec(
        select(Obligation)
        .where(Obligation.supervisee_id == person.id, Obligation.kind == ObligationKind.report,
               Obligation.due_at <= now,
               col(Obligation.state).in_([ObligationState.planned, ObligationState.prompted,
                                          ObligationState.reminded, ObligationState.missed]))
        .order_by(col(Obligation.due_at).desc())
    ).first()
    report = WrittenReport(supervisee_id=person.id, obligation_id=ob.id if ob else None,
                           receipt="pending", parts=parts, body=body, submitted_at=now,
                           recording_url=recording.url if recording else None,
                           recording_seconds=recording.seconds if recording else None)
    session.add(report)
    session.flush()
    report.receipt = f"R-{now.astimezone(ctx.person_zone).year}-{report.id:04d}"
    if ob is not None:
        if ob.state == ObligationState.missed or now > ob.window_end_at:
            ob.state = ObligationState.late
            close_for_late_answer(session, ob, now, ctx.zone)
        else:
            ob.state = ObligationState.done
        ob.answered_at, ob.next_check_at = now, None
        session.add(ob)
    person.last_contact_kind = "report"
    log.info("%s report %s from supervisee %s (%s parts, obligation %s)", "spoken" if recording else "written",
             report.id, person.id, parts, ob.id if ob else None)
    return report


FIRST_LINES = 200  # characters of a report shown in the officer's notice and list


def officer_notice(ctx: Context, report: WrittenReport, person: Supervisee) -> Reply:
    """The officer is sent the report's receipt and first lines, and how to read all of it (a spoken one: its
    length, and where to listen)."""
    officer = ctx.session.get(Officer, person.officer_id)
    first = report.body if len(report.body) <= FIRST_LINES else report.body[:FIRST_LINES] + "…"
    key = "report.officer_notice_spoken" if report.recording_url else "report.officer_notice"
    return Reply(text(officer.language, key, receipt=report.receipt, id=report.id,
                      name=person.name, case_number=person.case_number, township=person.township,
                      parts=report.parts, first=first, seconds=report.recording_seconds),
                 to=Recipient(SenderKind.officer, officer.id), kind="report_notice", about=person.id)
