"""Small builders for test data, written through the same code the CLI uses."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from content.areas import load_areas
from content.policy import Policy, load_policy
from handlers.router import Router, default_router
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


def county_router(policy: Policy | None = None, language: str = "zh-CN") -> Router:
    """The service's routing table for the sample county: the default policy and areas, Shanghai time."""
    return default_router(policy=policy or load_policy(), areas=load_areas(), zone=ZoneInfo("Asia/Shanghai"),
                          default_language=language)
