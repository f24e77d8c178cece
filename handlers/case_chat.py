"""The life of a case from an officer's chat: /pause, /resume, /level, /transfer, /end (handlers.case_life does it)."""

from __future__ import annotations

from collections.abc import Callable

from content.catalog import text
from handlers import case_life
from handlers.case_life import Actor, CaseError
from handlers.contract import Context, Inbound, Reply, row_id
from handlers.officer import person_in_scope
from storage.models import EndReason, Officer, Role, Supervisee

LEVEL_WORDS = {"严管": "strict", "普管": "ordinary", "宽管": "lenient"}
END_WORDS = {"期满": "ended", "解矫": "ended", "撤销": "revoked", "收监": "revoked", "迁出": "moved_out",
             "死亡": "died"}
SUPERVISORS_ONLY = (Role.supervisor, Role.admin)


def _actor(ctx: Context) -> Actor:
    return Actor(f"officer:{ctx.sender.officer.id}", ctx.sender.officer)


def _run(ctx: Context, usage: str, change: Callable[[Supervisee, list[str]], tuple[list[Reply], str]],
         *, supervisors_only: bool = False) -> list[Reply]:
    """Find the case named first (in the officer's scope), apply `change` to it with the remaining words."""
    lang, words = ctx.language, ctx.args.split()
    if not words:
        return [Reply(text(lang, f"case.usage_{usage}"))]
    if supervisors_only and ctx.sender.officer.role not in SUPERVISORS_ONLY:
        return [Reply(text(lang, "case.error_supervisors_only", command=f"/{usage}"))]
    person, refusal = person_in_scope(ctx, words[0])
    if person is None:
        return refusal
    try:
        replies, done = change(person, words[1:])
    except CaseError as exc:
        return [Reply(exc.render(lang) + "\n" + text(lang, f"case.usage_{usage}"))]
    return [Reply(done), *replies]


async def pause(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/pause CASE FROM TO reason, or /pause CASE DAYS reason."""
    def change(person: Supervisee, words: list[str]):
        start, end = case_life.pause_dates(words, ctx.now.astimezone(ctx.zone).date())
        reason = " ".join(words[1:] if words and words[0].isdigit() else words[2:])
        replies = case_life.pause(ctx.session, person, start, end, reason, actor=_actor(ctx), now=ctx.now,
                                  zone=ctx.zone)
        return replies, text(ctx.language, "case.done_pause", name=person.name, case_number=person.case_number,
                             start=start.isoformat(), end=end.isoformat())
    return _run(ctx, "pause", change)


async def resume(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/resume CASE."""
    def change(person: Supervisee, words: list[str]):
        replies = case_life.resume(ctx.session, person, actor=_actor(ctx), now=ctx.now, zone=ctx.zone)
        return replies, text(ctx.language, "case.done_resume", name=person.name, case_number=person.case_number)
    return _run(ctx, "resume", change)


async def level(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/level CASE strict|ordinary|lenient (or 严管/普管/宽管)."""
    def change(person: Supervisee, words: list[str]):
        wanted = LEVEL_WORDS.get(words[0], words[0]) if words else ""
        replies = case_life.set_level(ctx.session, person, wanted, actor=_actor(ctx), now=ctx.now)
        return replies, text(ctx.language, "case.done_level", name=person.name, case_number=person.case_number,
                             level=text(ctx.language, f"level.{person.level}"))
    return _run(ctx, "level", change)


async def transfer(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/transfer CASE OFFICER_ID: supervisors and administrators."""
    def change(person: Supervisee, words: list[str]):
        officer_id = row_id(words[0]) if words else None
        to = ctx.session.get(Officer, officer_id) if officer_id else None
        if to is None:
            raise CaseError("no_officer", value=words[0] if words else "-")
        replies = case_life.transfer(ctx.session, person, to, actor=_actor(ctx), now=ctx.now)
        return replies, text(ctx.language, "case.done_transfer", name=person.name, case_number=person.case_number,
                             officer=to.name, township=to.township)
    return _run(ctx, "transfer", change, supervisors_only=True)


async def end(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/end CASE ended|revoked|moved_out|died [note]: supervisors and administrators."""
    def change(person: Supervisee, words: list[str]):
        reason = END_WORDS.get(words[0], words[0]) if words else ""
        replies = case_life.end(ctx.session, person, reason, " ".join(words[1:]), actor=_actor(ctx), now=ctx.now,
                                zone=ctx.zone)
        return replies, text(ctx.language, "case.done_end", name=person.name, case_number=person.case_number,
                             reason=text(ctx.language, f"end_reason.{EndReason(reason)}"))
    return _run(ctx, "end", change, supervisors_only=True)
