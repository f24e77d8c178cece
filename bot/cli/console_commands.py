"""`checkin console --as ...`: talk to the service from the terminal."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from bot.channels.console import converse
from bot.cli.base import app, fail, office_language, out, person_or_officer, runtime, say
from bot.runtime import Runtime
from handlers.addressing import console_address
from storage.db import session_scope
from storage.models import Officer


@app.command()
def console(
    as_: Annotated[str, typer.Option("--as", help="CASE_NUMBER, or officer:ID")],
) -> None:
    """Talk to the service as that person from the terminal."""
    console_as(runtime(), as_)


def console_as(rt: Runtime, as_: str) -> None:
    """Open the console as a supervisee (case number) or `officer:ID`."""
    with session_scope(rt.engine) as session:
        who = person_or_officer(session, as_)
        if who is None:
            fail(say("console.no_such", value=repr(as_)), 2)
        address = console_address(who)
        recipient = ("officer" if isinstance(who, Officer) else "supervisee", who.id)
    asyncio.run(converse(rt.router, rt.engine, rt.clock.now, address, recipient, who.name, out, office_language()))
