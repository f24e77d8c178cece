"""A small sample county (3 townships, 6 officers and an administrator, 40 people) for the demo and for trying."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from handlers.roster import COLUMNS, import_roster
from storage import queries
from storage.db import session_scope
from storage.models import Officer

TOWNSHIPS = ("红果镇", "两河镇", "平关镇")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "霞")
CATEGORIES = ("probation",) * 5 + ("parole",) * 2 + ("medical_parole", "deprivation", "control")
LEVELS = ("strict", "ordinary", "ordinary", "lenient")


def sample_roster(officer_ids: dict[str, list[int]], people: int = 40) -> str:
    """The sample county's roster as contract CSV; officer ids by township."""
    lines = [",".join(COLUMNS)]
    for i in range(1, people + 1):
        township = TOWNSHIPS[i % 3]
        english = i % 8 == 0
        name = f"Sample Person {i}" if english else SURNAMES[i % 20] + GIVEN[(i * 7) % 16] + GIVEN[i % 16]
        lines.append(",".join([
            f"JZ2027{i:03d}", name, f"139 1000 {i:04d}", "en" if english else "zh-CN",
            CATEGORIES[i % len(CATEGORIES)], LEVELS[i % len(LEVELS)], township,
            str(officer_ids[township][0]),
            date(2026, 1 + i % 12, 1 + i % 27).isoformat(), date(2027, 7 + i % 6, 1 + i % 27).isoformat(),
        ]))
    return "\n".join(lines) + "\n"


def seed(engine: Engine, now: datetime) -> bool:
    """Seed the sample county once; False when officers already exist."""
    with session_scope(engine) as session:
        if session.exec(select(func.count()).select_from(Officer)).one():
            return False
        ids: dict[str, list[int]] = {}
        for n, township in enumerate(TOWNSHIPS):
            boss = queries.add_officer(session, name=f"{SURNAMES[n]}主任", township=township,
                                       role="supervisor", now=now)
            aide = queries.add_officer(session, name=f"{SURNAMES[n + 5]}协管员", township=township,
                                       role="assistant", supervisor_id=boss.id, now=now)
            ids[township] = [aide.id, boss.id]
        # Alerts nobody in a township acts on end with the county's administrators.
        queries.add_officer(session, name="县局管理员", township="县司法局", role="admin", now=now)
        result = import_roster(session, sample_roster(ids), now=now)
        if not result.ok:  # the sample is ours: a failure here is a bug
            raise RuntimeError("sample roster invalid: " + "; ".join(map(str, result.errors)))
    return True
