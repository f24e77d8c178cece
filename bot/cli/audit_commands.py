"""`checkin audit ...`: the audit trail."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.base import audit_app, fail, out, runtime
from bot.tables import Column, fitted
from storage import audit, queries
from storage.db import session_scope
from storage.models import Officer


@audit_app.command("verify")
def audit_verify(
    expect: Annotated[list[str] | None, typer.Option(
        "--expect", help="A head hash printed by an earlier verify: it must still be in the chain")] = None,
) -> None:
    """Check the whole chain: any changed, deleted or reordered entry is found, and the first one named.

    Prints the head hash and the count; keep them (a daily timer's log will do). `--expect HASH` then
    finds a chain cut at its end, which links up by itself.
    """
    rt = runtime()
    wanted = frozenset(h.strip() for h in expect or [])
    with session_scope(rt.engine) as session:
        verdict = audit.verify(session, expect=wanted)
    if not verdict.ok:
        fail(f"audit trail broken at entry {verdict.first_bad}: {verdict.reason} "
              f"({verdict.entries} entries before it are intact)", 1)
    missing = sorted(wanted - verdict.seen)
    if missing:
        fail(f"audit trail cut short: {', '.join(missing)} (an earlier head) is no longer in the chain of "
             f"{verdict.entries} entries, whose head is now {verdict.head}: entries were removed from its end", 1)
    purged = f" ({verdict.purged} with details removed by a purge)" if verdict.purged else ""
    out.print(f"audit trail intact: {verdict.entries} entries{purged}; head {verdict.head}")


@audit_app.command("show")
def audit_show(case: Annotated[str, typer.Option("--case", help="Case number")]) -> None:
    """One person's history: every officer's and administrator's action on them, oldest first."""
    rt = runtime()
    z = rt.settings.zone
    with session_scope(rt.engine) as session:
        person = queries.supervisee_by_case(session, case)
        if person is None:
            fail(f"--case={case!r}: no such case number", 2)
        rows = []
        for e in audit.history(session, person.id):
            who = e.actor
            if e.actor.startswith("officer:"):
                officer = session.get(Officer, int(e.actor.split(":")[1]))
                who = f"{officer.name} ({e.actor})" if officer else e.actor
            rows.append([str(e.id), e.at.astimezone(z).strftime("%Y-%m-%d %H:%M"), e.action, who, e.subject or "",
                         "(purged)" if e.details is None else e.details if e.details != "{}" else ""])
    columns = [Column("#", key=True, justify="right"), Column("when", key=True), Column("action", key=True),
               Column("who", key=True, wrap=True), Column("on"), Column("details", wrap=True)]
    out.print(fitted(columns, rows, width=out.width, title=f"audit trail of {case}"))
