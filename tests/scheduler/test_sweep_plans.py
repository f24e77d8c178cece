"""An idle sweep finds what is due through indexes, not by reading the roster, whatever SQLite's statistics say.

SQLite keeps one average per index: when every person has the same status and the same plan (a roster just
imported, all active, all planned to the same horizon) a plain index looks useless and the planner scans the table.
The sweep's lookups for the few rows among many use partial indexes (migration 0017), and write the values into
the statement so that SQLite can see the index applies. Here every statement of a sweep is explained, on a roster
analysed in that worst shape, and none may scan the people or their obligations.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, text
from sqlmodel import select

import scheduler.sweep as sweep_module
from content.policy import load_policy
from scheduler.sweep import SweepConfig, sweep
from storage import queries
from storage.db import session_scope
from storage.models import Broadcast, Obligation, Supervisee
from tests.sim import SH, County, local

NOW = datetime(2027, 3, 2, 3, 0, tzinfo=SH).astimezone(UTC)  # a night hour: nothing due, no daily work
PEOPLE = 2000


def _uniform_roster(engine) -> None:
    with session_scope(engine) as s:
        officer = queries.add_officer(s, name="o", township="t", role="assistant", now=NOW).id
    horizon = NOW + timedelta(days=3)
    with engine.begin() as c:
        c.execute(Supervisee.__table__.insert(), [dict(
            case_number=f"P{i:06d}", name=f"p{i}", language="zh-CN", category="probation", level="ordinary",
            township="t", officer_id=officer, supervision_start=date(2026, 1, 1), supervision_end=date(2030, 1, 1),
            status="active", preferred_channel="sms", planned_until=horizon, created_at=NOW, updated_at=NOW)
            for i in range(PEOPLE)])
        ids = [r[0] for r in c.execute(text("SELECT id FROM supervisee"))]
        c.execute(Obligation.__table__.insert(), [dict(  # two check-ins each, over four days
            supervisee_id=pid, kind="checkin", period_key=f"d{k}", due_at=due, window_end_at=due,
            state="planned", next_check_at=due, created_at=NOW, location_required=False)
            for pid in ids for k in (1, 2) for due in [NOW + timedelta(days=k + pid % 2)]])
        c.execute(text("ANALYZE"))


def test_an_idle_sweep_scans_neither_the_roster_nor_the_obligations(db):
    if db.kind != "sqlite":
        pytest.skip("SQLite's planner: PostgreSQL keeps per-value statistics")
    _uniform_roster(db.engine)
    seen: list[tuple[str, object]] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            seen.append((statement, parameters))

    report = sweep(db.engine, NOW, SweepConfig(load_policy(), SH))
    event.remove(db.engine, "before_cursor_execute", record)
    assert report.prompted == 0 and report.planned_people == 0
    scans = []
    with db.engine.connect() as c:
        for statement, parameters in seen:
            for row in c.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters):
                if row[3].startswith(("SCAN supervisee", "SCAN obligation")):
                    scans.append((row[3], statement.split("FROM", 1)[-1][:200]))
    assert len(seen) >= 5, "the sweep's statements were not seen"
    assert scans == []


def test_the_check_finds_a_scan_where_there_is_one(db):
    """The probe: a lookup by a value almost every row has, bound as a parameter, is a scan under these statistics."""
    if db.kind != "sqlite":
        pytest.skip("SQLite only")
    _uniform_roster(db.engine)
    with db.engine.connect() as c:
        plan = [r[3] for r in c.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT * FROM obligation JOIN supervisee ON supervisee.id = obligation.supervisee_id"
            " WHERE obligation.state IN (?, ?, ?) AND obligation.next_check_at <= ?"
            " ORDER BY obligation.next_check_at, obligation.id LIMIT 500",
            ("planned", "prompted", "reminded", "2027-03-01 00:00:00"))]
    assert any(p.startswith(("SCAN supervisee", "SCAN obligation")) for p in plan), plan


def test_monthly_shortfall_goes_in_groups_and_reminds_each_person_once(db, monkeypatch):
    """On the 20th most of a large roster may be behind: the sweep reminds them a group per transaction (here one
    person per group), everyone once, and records the month's run once with the whole count."""
    monkeypatch.setattr(sweep_module, "SHORTFALL_AT_ONCE", 1)
    c = County(db)
    report = c.sweep(local(2027, 3, 20, 9, 0))
    people = {c.strict.phone, c.lenient.phone, "7002"}
    assert report.study_reminded == report.service_reminded == 3
    assert {m.address for m in c.out(kind="study_shortfall")} == people
    assert {m.address for m in c.out(kind="service_shortfall")} == people
    with session_scope(db.engine) as s:
        runs = {b.key: b.queued for b in s.exec(select(Broadcast).where(Broadcast.template == "remind"))}
    assert runs == {"study-remind:2027-03": 3, "service-remind:2027-03": 3}
    again = c.sweep(local(2027, 3, 20, 9, 5))
    assert again.study_reminded == again.service_reminded == 0
    assert len(c.out(kind="study_shortfall")) == 3
