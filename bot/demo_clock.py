"""The demo's fast clock that waits while the county is busy, and how the demo tells it is."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from sqlalchemy import select

from storage.models import Direction, Message, MessageStatus


class Stopwatch:
    """Monotonic seconds that stand still while held: the demo's fast clock waits while the county is busy.

    At thousands of times real speed, a burst of answers that the service needs a
    second to handle would take simulated hours; holding the clock while messages
    are on their way (and letting it run between bursts) keeps every answer inside
    its window, as its persona meant, whatever the machine's speed.
    """

    MAX_HOLD = 60.0  # real seconds: never hold longer at a stretch (something stuck must not stop the demo)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held_since: float | None = None
        self._held = 0.0

    def __call__(self) -> float:
        with self._lock:
            now = time.monotonic()
            return (self._held_since if self._held_since is not None else now) - self._held

    def hold(self, busy: bool) -> None:
        """Stand still while `busy` (up to MAX_HOLD at a stretch), run otherwise."""
        with self._lock:
            now = time.monotonic()
            if busy and self._held_since is None:
                self._held_since = now
            elif self._held_since is not None and (not busy or now - self._held_since > self.MAX_HOLD):
                self._held += now - self._held_since
                self._held_since = None


def outbox_busy(engine, now: datetime) -> bool:
    """Messages due and not yet handed to a channel (or being handed)."""
    with engine.connect() as conn:
        return conn.execute(
            select(Message.id).where(Message.direction == Direction.outbound,
                                     Message.status.in_([MessageStatus.queued, MessageStatus.sending]),
                                     Message.next_attempt_at <= now).limit(1)).first() is not None
