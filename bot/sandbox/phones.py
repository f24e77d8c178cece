"""What both SMS stand-ins (Twilio's, Tencent Cloud's) keep as the phone network: what was sent to whom, the numbers
that opted out, and a way to wait for a message to arrive."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class SentMessages:
    """The messages the service sent (each with a `to`), oldest first."""

    def __init__(self) -> None:
        self.sent: list = []
        self.unsubscribed: set[str] = set()
        self._changed = asyncio.Condition()

    def unsubscribe(self, phone: str) -> None:
        """The person opted out with the carrier (STOP, 退订): sends to the number fail with the provider's code."""
        self.unsubscribed.add(phone)

    def to(self, phone: str) -> list:
        """What the service sent to `phone`, oldest first."""
        return [m for m in self.sent if m.to == phone]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _arrived(self) -> None:
        async with self._changed:
            self._changed.notify_all()
