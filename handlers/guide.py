"""/help for each kind of sender, and a person's note to their officer."""

from __future__ import annotations

from content.catalog import text
from handlers.contract import Context, Inbound, Recipient, Reply, SenderKind
from storage.models import Officer, Role


def _officer_of(ctx: Context) -> Officer:
    return ctx.session.get(Officer, ctx.sender.supervisee.officer_id)



async def help_supervisee(inbound: Inbound, ctx: Context) -> list[Reply]:
    """What a supervisee can do."""
    return [Reply(text(ctx.language, "help.supervisee", officer=_officer_of(ctx).name))]


async def help_officer(inbound: Inbound, ctx: Context) -> list[Reply]:
    """What an officer can do: supervisors and administrators also transfer and end cases."""
    senior = ctx.sender.officer.role in (Role.supervisor, Role.admin)
    return [Reply(text(ctx.language, "help.supervisor" if senior else "help.officer"))]


def forward(ctx: Context, note: str) -> Reply:
    """A person's words, passed on to their officer as a message the officer can answer by replying."""
    person, officer = ctx.sender.supervisee, _officer_of(ctx)
    cap = ctx.policy.limits.forward_chars  # so that the officer's message stays readable on a phone
    if len(note) > cap:
        note = note[:cap] + "…"
    return Reply(text(officer.language, "contact.officer_notice", name=person.name, case_number=person.case_number,
                      township=person.township, text=note),
                 to=Recipient(SenderKind.officer, officer.id), kind="contact", about=person.id)


async def contact_officer(inbound: Inbound, ctx: Context) -> list[Reply]:
    """`找协管员 TEXT` / `officer TEXT`: pass a note to the assigned officer."""
    note = ctx.args
    if not note:
        return [Reply(text(ctx.language, "contact.empty"))]
    return [Reply(text(ctx.language, "contact.sent", officer=_officer_of(ctx).name)), forward(ctx, note)]
