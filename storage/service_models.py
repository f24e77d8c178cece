"""The service's own state, for operators: when each recurring job last ran (the sweep), and how long it took."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Field, Session, SQLModel

from storage.columns import _ts


class Heartbeat(SQLModel, table=True):
    """The last run of one recurring job (`sweep`): `checkin doctor`, `/healthz` and `/metrics` read it."""

    name: str = Field(primary_key=True, max_length=32)
    at: datetime | None = _ts(nullable=False)  # the service clock's time of the run
    seconds: float = 0.0  # how long it took (real seconds)


def beat(session: Session, name: str, at: datetime, seconds: float) -> None:
    """Record a run of `name` (one row per job, updated in place)."""
    done = session.execute(update(Heartbeat).where(Heartbeat.name == name).values(at=at, seconds=seconds))
    if not done.rowcount:
        session.add(Heartbeat(name=name, at=at, seconds=seconds))


def last_beat(session: Session, name: str) -> Heartbeat | None:
    return session.get(Heartbeat, name)
