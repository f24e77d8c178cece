"""`checkin audit ...`: the audit trail."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.base import audit_app, fail, office_language, out, runtime, say
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
        fail(say("audit.broken", entry=verdict.first_bad, reason=verdict.reason, count=verdict.entries), 1)
    missing = sorted(wanted - verdict.seen)
    if missing:
        fail(say("audit.cut_short", missing=", ".join(missing), count=verdict.entries, head=verdict.head), 1)
    out.print(say("audit.intact_purged" if verdict.purged else "audit.intact", count=verdict.entries,
                  purged=verdict.purged, head=verdict.head), markup=False)


@audit_app.command("show")
def audit_show(case: Annotated[str, typer.Option("--case", help="Case number")]) -> None:
    """One person's history: every officer's and administrator's action on them, oldest first."""
    rt = runtime()
    z = rt.settings.zone
    with session_scope(rt.engine) as session:
        person = queries.supervisee_by_case(session, case)
        if person is None:
            fail(say("audit.no_case", case=repr(case)), 2)
        rows = []
        for e in audit.history(session, person.id):
            who = e.actor
            if e.actor.startswith("officer:"):
                officer = session.get(Officer, int(e.actor.split(":")[1]))
                who = f"{officer.name} ({e.actor})" if officer else e.actor
            rows.append([str(e.id), e.at.astimezone(z).strftime("%Y-%m-%d %H:%M"), e.action, who, e.subject or "",
                         say("audit.purged") if e.details is None else e.details if e.details != "{}" else ""])
    columns = [Column("#", key=True, justify="right"), Column(say("audit.col_when"), key=True),
               Column(say("audit.col_action"), key=True), Column(say("audit.col_who"), key=True, wrap=True),
               Column(say("audit.col_on")), Column(say("audit.col_details"), wrap=True)]
    out.print(fitted(columns, rows, width=out.width, lang=office_language(),
                     title=say("audit.listed", case=case)))
