"""What the outbox drain needs from a channel adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from storage.outbox import Outgoing


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the message under this id."""

    provider_id: str | None


class SendError(Exception):
    """A send failed; `code` is the provider's error code when it gave one."""

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class TransientSendError(SendError):
    """Worth retrying later (rate limit, 5xx, time-out); `retry_after` in seconds if told."""

    def __init__(self, detail: str, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail, code)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Retrying will not help (blocked bot, opted-out number, invalid address)."""


class Channel(Protocol):
    """A channel adapter as the drain sees it."""

    name: str
    rate: float  # messages per second
    # optional: `concurrency`, how many addresses may have a send in flight at once (default 1)

    async def send(self, message: Outgoing) -> SendResult: ...
