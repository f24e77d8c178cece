"""The one injected clock: real, fixed (tests) or fast (rehearsals, the demo)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current aware UTC time."""

    def now(self) -> datetime: ...


class RealClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> datetime:
        self._at += delta
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)


class FastClock:
    """Starts at `start` and runs `speed` times faster than the process's monotonic clock."""

    def __init__(self, start: datetime, speed: float, monotonic=time.monotonic) -> None:
        self._start = start.astimezone(UTC)
        self._speed = speed
        self._monotonic = monotonic
        self._t0 = monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(self._monotonic() - self._t0) * self._speed)
