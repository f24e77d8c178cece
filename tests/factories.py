"""Small builders for test data, written through the same code the CLI uses."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.engine import Engine

from storage import queries
from storage.db import session_scope
from storage.models import Officer, Supervisee


def officer(engine: Engine, now: datetime, **kw) -> Officer:
    """Add an officer; name, township and role default to an assistant in 红果镇."""
    kw.setdefault("name", "李娜")
    kw.setdefault("township", "红果镇")
    kw.setdefault("role", "assistant")
    with session_scope(engine) as s:
        return queries.add_officer(s, now=now, **kw)


def supervisee(engine: Engine, now: datetime, officer_id: int, **kw) -> Supervisee:
    """Add one person under supervision."""
    values = dict(
        case_number="JZ2013041", name="王伟", phone="+8613812345678", language="zh-CN",
        category="probation", level="strict", township="红果镇", officer_id=officer_id,
        supervision_start=date(2026, 1, 1), supervision_end=date(2028, 1, 1), status="active",
        created_at=now, updated_at=now,
    )
    values.update(kw)
    with session_scope(engine) as s:
        person = Supervisee(**values)
        s.add(person)
        s.flush()
        return person
