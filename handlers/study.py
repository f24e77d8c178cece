"""Study: send a module (a few short messages and a quiz), take the answers, credit minutes, tally the month."""

from __future__ import annotations

import logging
import string
from datetime import datetime, tzinfo

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from content.catalog import text
from content.formatting import day_and_time, duration
from content.study import Module, module, order
from handlers.contract import Button, Context, Inbound, Recipient, Reply, SenderKind, target, zone_of
from handlers.delivery import deliver
from storage import queries
from storage.models import Obligation, ObligationState, StudyProgress, Supervisee

log = logging.getLogger(__name__)

LETTERS = string.ascii_uppercase


def month_start(now: datetime, zone: tzinfo) -> datetime:
    """The first instant of `now`'s month, local to `zone`."""
    return now.astimezone(zone).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_minutes(session: Session, person_id: int, now: datetime, zone: tzinfo) -> int:
    """Minutes credited to a person this month."""
    total = session.exec(
        select(func.coalesce(func.sum(StudyProgress.minutes), 0)).where(
            StudyProgress.supervisee_id == person_id, StudyProgress.state == "passed",
            StudyProgress.passed_at >= month_start(now, zone))
    ).one()
    return int(total)


def credited(start: datetime, end: datetime) -> ColumnElement:
    """Study minutes credited in [start, end) to the `Supervisee` row of the enclosing query (0 when none): an
    expression, so that a tally over the roster is counted by the database, not held in memory."""
    return func.coalesce(
        select(func.sum(StudyProgress.minutes))
        .where(StudyProgress.supervisee_id == Supervisee.id, StudyProgress.state == "passed",
               StudyProgress.passed_at >= start, StudyProgress.passed_at < end)
        .correlate(Supervisee).scalar_subquery(), 0)


def minutes_credited(session: Session, start: datetime, end: datetime, ids: list[int] | None = None) -> dict[int, int]:
    """Study minutes credited in [start, end) per person under supervision (optionally only `ids`)."""
    return queries.supervised_tally(session, credited(start, end), ids)


def _next_module_id(session: Session, person_id: int) -> str:
    """The first module in teaching order the person has passed least often."""
    passed = dict(session.exec(
        select(StudyProgress.module_id, func.count()).where(StudyProgress.supervisee_id == person_id,
                                                            StudyProgress.state == "passed")
        .group_by(StudyProgress.module_id)).all())
    ids = order()
    return min(ids, key=lambda m: (passed.get(m, 0), ids.index(m)))


def _pending(session: Session, person_id: int) -> StudyProgress | None:
    return session.exec(
        select(StudyProgress).where(StudyProgress.supervisee_id == person_id, StudyProgress.state == "sent")
        .order_by(col(StudyProgress.id).desc())
    ).first()


def _quiz_reply(m: Module, progress: StudyProgress, person: Supervisee) -> Reply:
    q = m.quiz[progress.question]
    choices = "  ".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(q.choices))
    return Reply(
        text(person.language, "study.quiz", q=q.q, choices=choices),
        buttons=[Button(f"{LETTERS[i]}. {c}", f"study:{progress.id}:{progress.question}:{i + 1}")
                 for i, c in enumerate(q.choices)],
        to=Recipient(SenderKind.supervisee, person.id), kind="study_quiz",
    )


def lesson(m: Module, progress: StudyProgress, person: Supervisee) -> list[Reply]:
    """The module's parts, then its current question."""
    parts = [
        Reply(text(person.language, "study.part", title=m.title, n=i + 1, total=len(m.parts), text=part),
              to=Recipient(SenderKind.supervisee, person.id), kind="study_lesson")
        for i, part in enumerate(m.parts)
    ]
    return parts + [_quiz_reply(m, progress, person)]


def _send(session: Session, replies: list[Reply], progress: StudyProgress, now: datetime, round_key: str) -> None:
    for i, reply in enumerate(replies):
        deliver(session, reply, now=now, dedupe_key=f"study:{progress.id}:{round_key}:{i}")


def prepare(session: Session, person: Supervisee, now: datetime,
            obligation: Obligation | None = None) -> tuple[StudyProgress, list[Reply]]:
    """The person's pending module (or the next one, recorded as sent) and its messages."""
    progress = _pending(session, person.id)
    if progress is None:
        progress = StudyProgress(supervisee_id=person.id, module_id=_next_module_id(session, person.id),
                                 obligation_id=obligation.id if obligation else None, sent_at=now)
        session.add(progress)
        session.flush()
    elif obligation is not None and progress.obligation_id is None:
        progress.obligation_id = obligation.id
    return progress, lesson(module(person.language, progress.module_id), progress, person)


def send_module(session: Session, person: Supervisee, now: datetime, obligation: Obligation) -> StudyProgress:
    """The week's module through the outbox (a module not yet passed is sent again instead of a new one)."""
    progress, replies = prepare(session, person, now, obligation)
    _send(session, replies, progress, now, f"ob{obligation.id}")
    log.info("study module sent to supervisee %s (progress %s)", person.id, progress.id)
    return progress


def reminder(ob: Obligation, person: Supervisee, zone: tzinfo) -> Reply:
    """The weekly study's one reminder."""
    return Reply(
        text(person.language, "study.reminder", deadline=day_and_time(ob.window_end_at, zone, person.language)),
        to=Recipient(SenderKind.supervisee, person.id),
        kind="study_reminder",
    )


async def next_lesson(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/study, STUDY, 学习: the pending quiz's lesson again, or the next module, now, where they asked."""
    _, replies = prepare(ctx.session, ctx.sender.supervisee, ctx.now)
    return replies


async def answer(inbound: Inbound, ctx: Context) -> list[Reply]:
    """A quiz answer: a button `study:ID:Q:CHOICE`, or a letter typed (`A`, `b`)."""
    person, s, now, lang = ctx.sender.supervisee, ctx.session, ctx.now, ctx.language
    if inbound.button:
        found = target(inbound.button, "")
        question, picked = found.arg(0), found.arg(1)
        progress = s.get(StudyProgress, found.id) if len(found.rest) == 2 and found.id else None
        if progress is None or progress.supervisee_id != person.id or progress.state != "sent" \
                or not (question.isascii() and question.isdigit()) or int(question) != progress.question \
                or not (picked.isascii() and picked.isdigit() and len(picked) < 4):
            return [Reply(text(lang, "study.none_pending"))]
        choice = int(picked)
    else:
        progress = _pending(s, person.id)
        if progress is None:
            return [Reply(text(lang, "study.none_pending"))]
        choice = LETTERS.index(ctx.keyword.upper()) + 1
    m = module(person.language, progress.module_id)
    if choice != m.quiz[progress.question].answer:
        progress.attempts += 1
        progress.question = 0
        s.add(progress)
        log.info("study progress %s: wrong answer, lesson sent again", progress.id)
        return [Reply(text(lang, "study.wrong")), *lesson(m, progress, person)]
    if progress.question + 1 < len(m.quiz):
        progress.question += 1
        s.add(progress)
        return [_quiz_reply(m, progress, person)]
    progress.state, progress.passed_at, progress.minutes = "passed", now, m.minutes
    s.add(progress)
    if progress.obligation_id:
        ob = s.get(Obligation, progress.obligation_id)
        if ob.state not in (ObligationState.done, ObligationState.excused):
            ob.state = ObligationState.done if now <= ob.window_end_at else ObligationState.late
            ob.answered_at, ob.next_check_at = now, None
            s.add(ob)
    s.flush()
    person.last_contact_kind = "study"
    required = ctx.policy.study.monthly_minutes if ctx.policy else 480
    month = month_minutes(s, person.id, now, zone_of(person, ctx.zone))
    log.info("study progress %s passed: %s minutes", progress.id, m.minutes)
    return [Reply(text(lang, "study.passed", minutes=m.minutes, month=duration(month, lang),
                       required=duration(required, lang)))]


def shortfall_reminder(person: Supervisee, minutes: int, required: int) -> Reply:
    """This month's study so far, and what is missing."""
    lang = person.language
    return Reply(text(lang, "study.shortfall", month=duration(minutes, lang),
                      missing=duration(max(0, required - minutes), lang), required=duration(required, lang)),
                 to=Recipient(SenderKind.supervisee, person.id), kind="study_shortfall")


def letters(choices: int = 4) -> tuple[str, ...]:
    """Router keywords for a lone letter answering a quiz (`$`: the whole message, not a first word)."""
    return tuple(LETTERS[i].lower() + "$" for i in range(choices))

