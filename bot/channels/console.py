"""The console channel: talk to the service from a terminal as one person."""

from __future__ import annotations

import uuid

from rich.console import Console

from scheduler.channels import SendResult
from storage.outbox import Outgoing


class ConsoleChannel:
    """Prints outbound messages; remembers the last buttons so a digit can press one."""

    name = "console"
    rate = 1000.0

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.last_buttons: list[tuple[str, str]] = []

    async def send(self, message: Outgoing) -> SendResult:
        self.console.print(f"[bold cyan]checkin ›[/] {message.body}", markup=True, soft_wrap=True)
        buttons = message.payload.get("buttons") or []
        self.last_buttons = [(label, data) for label, data in buttons]  # digits press the latest buttons only
        if buttons:
            for i, (label, _) in enumerate(self.last_buttons, 1):
                self.console.print(f"   [{i}] {label}", markup=False)
        if message.payload.get("request_location"):
            self.console.print("   (share a location as: @LAT,LON)", markup=False)
        return SendResult(provider_id=f"console-{uuid.uuid4().hex[:16]}")

    def button_for(self, typed: str) -> str | None:
        """The callback data of button number `typed`, if one was offered."""
        if typed.isdigit() and 1 <= int(typed) <= len(self.last_buttons):
            return self.last_buttons[int(typed) - 1][1]
        return None
