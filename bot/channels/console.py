"""The console channel: talk to the service from a terminal as one person."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from datetime import datetime

from rich.console import Console
from sqlalchemy.engine import Engine

from content.catalog import DEFAULT_LANGUAGE, text
from handlers.contract import Inbound, Location
from handlers.router import Router
from scheduler.channels import SendResult
from scheduler.drain import Outbox
from storage.outbox import Outgoing


class ConsoleChannel:
    """Prints outbound messages; remembers the last buttons so a digit can press one."""

    name = "console"
    rate = 1000.0

    def __init__(self, console: Console | None = None, lang: str = DEFAULT_LANGUAGE) -> None:
        self.console = console or Console(highlight=False)
        self.lang = lang  # the terminal's own words (the messages are in the person's language)
        self.last_buttons: list[tuple[str, str]] = []

    async def send(self, message: Outgoing) -> SendResult:
        self.console.print(f"[bold cyan]checkin ›[/] {message.body}", markup=True, soft_wrap=True)
        buttons = message.payload.get("buttons") or []
        self.last_buttons = [(label, data) for label, data in buttons]  # digits press the latest buttons only
        if buttons:
            for i, (label, _) in enumerate(self.last_buttons, 1):
                self.console.print(f"   [{i}] {label}", markup=False)
        if message.payload.get("request_location"):
            self.console.print("   " + text(self.lang, "office.console.share_location"), markup=False)
        return SendResult(provider_id=f"console-{uuid.uuid4().hex[:16]}")

    def button_for(self, typed: str) -> str | None:
        """The callback data of button number `typed`, if one was offered."""
        if typed.isdigit() and 1 <= int(typed) <= len(self.last_buttons):
            return self.last_buttons[int(typed) - 1][1]
        return None

    def inbound(self, address: str, line: str, now: datetime) -> Inbound:
        """A typed line as a message: a digit presses a button, `@LAT,LON` shares a point, else text."""
        button = self.button_for(line)
        if button is not None:
            return Inbound(self.name, address, text=line, button=button, received_at=now)
        if line.startswith("@") and "," in line:
            try:
                lat, lon = (float(x) for x in line[1:].split(",", 1))
                return Inbound(self.name, address, location=Location(lat, lon), received_at=now)
            except ValueError:
                pass
        return Inbound(self.name, address, text=line, received_at=now)


async def converse(router: Router, engine: Engine, now: Callable[[], datetime], address: str,
                   recipient: tuple[str, int], name: str, out: Console, lang: str = DEFAULT_LANGUAGE) -> None:
    """Read lines from the terminal as `address`, handle each, and print what comes back, until end of input; the
    terminal's own words in `lang`."""
    channel = ConsoleChannel(out, lang)
    outbox = Outbox(engine, {"console": channel})
    interactive = sys.stdin.isatty()
    out.print(text(lang, "office.console.talking_as", name=name, address=address), style="dim", markup=False)
    await outbox.drain(now(), recipient=recipient)
    while True:
        try:
            line = input("you › " if interactive else "")
        except EOFError:
            break
        line = line.strip()
        if not line:
            continue
        if not interactive:
            out.print(f"you › {line}", markup=False)
        await router.handle(engine, channel.inbound(address, line, now()), now())
        await outbox.drain(now(), recipient=recipient)
