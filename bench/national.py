"""National scale on PostgreSQL: 700,000 enrolled, a sweep with 1% due and the holiday greeting to everyone.

    python bench/national.py --postgres URL [--people 700000]

The roster and three days of planned obligations (2.25 per person, as the
default policy plans them) are written set-based with generate_series, since
setting up is not what is measured. Then: an idle sweep, a sweep with 1% of
people due (7,000 prompts), and the greeting enqueue for all 700,000 (then its
re-run, which must queue nothing). A schema of its own, dropped after.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from content.policy import load_policy  # noqa: E402
from handlers import greetings  # noqa: E402
from scheduler.sweep import SweepConfig, sweep  # noqa: E402
from storage import queries  # noqa: E402
from storage.db import migrate, session_scope  # noqa: E402
from storage.models import Supervisee  # noqa: E402
from tests.conftest import KEYRING, make_engine, pg_schema  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2027, 3, 1, 10, 0, tzinfo=SH).astimezone(UTC)


def setup(engine, n: int) -> None:
    with session_scope(engine) as s:
        officer = queries.add_officer(s, name="o", township="t", role="assistant", now=NOW).id
    horizon = NOW + timedelta(days=3)
    # Names and numbers are encrypted (storage.crypto), so the rows are made here, not by generate_series.
    table = Supervisee.__table__
    levels = ["strict", "ordinary", "ordinary", "lenient"]
    for start in range(1, n + 1, 20_000):
        rows = [dict(case_number=f"N{i:08d}", name=f"p{i}", phone=f"+86139{i:08d}",
                     phone_index=KEYRING.blind(f"+86139{i:08d}"), language="en" if i % 10 == 0 else "zh-CN",
                     category="probation", level=levels[i % 4], township=f"t{i % 300}", officer_id=officer,
                     supervision_start=date(2026, 1, 1), supervision_end=date(2030, 1, 1), status="active",
                     preferred_channel="telegram" if i % 2 == 0 else "sms", planned_until=horizon,
                     created_at=NOW, updated_at=NOW) for i in range(start, min(n, start + 19_999) + 1)]
        with engine.begin() as c:
            c.execute(table.insert(), rows)
    with engine.begin() as c:
        c.execute(text("UPDATE supervisee SET telegram_chat_id = id + 1000000 WHERE preferred_channel = 'telegram'"))
        # Three days of check-ins, 9 of them per 4 people (strict daily, ordinary twice a week, lenient weekly).
        c.execute(text("""
            INSERT INTO obligation (supervisee_id, kind, period_key, due_at, window_end_at, remind_at, state,
                                    next_check_at, created_at, location_required)
            SELECT s.id, 'checkin', 'd' || k, d.due, d.due + interval '4 hours', d.due + interval '2 hours',
                   'planned', d.due, :now, false
            FROM supervisee s
            CROSS JOIN generate_series(1, 3) AS k
            CROSS JOIN LATERAL (SELECT :now + k * interval '1 day' - interval '1 hour' AS due) d
            WHERE s.level = 'strict' OR (s.level = 'ordinary' AND k <= 2) OR (s.level = 'lenient' AND k = 1)"""),
                  dict(now=NOW))
        c.execute(text("ANALYZE"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--postgres", required=True)
    ap.add_argument("--people", type=int, default=700_000)
    args = ap.parse_args()
    admin = make_engine(args.postgres)
    with pg_schema(admin, "checkin_bench") as url:
        engine = make_engine(url)
        migrate(engine)
        t0 = time.perf_counter()
        setup(engine, args.people)
        with engine.connect() as c:
            obligations = c.execute(text("SELECT count(*) FROM obligation")).scalar_one()
        print(f"setup: {args.people:,} people, {obligations:,} obligations in {time.perf_counter() - t0:.0f} s",
              flush=True)
        cfg = SweepConfig(load_policy(), SH)
        t0 = time.perf_counter()
        rep = sweep(engine, NOW, cfg)
        print(
            f"idle sweep: {(time.perf_counter() - t0) * 1000:.0f} ms (planned {rep.planned}, prompted {rep.prompted})",
            flush=True,
        )
        due = NOW + timedelta(minutes=1)
        with engine.begin() as c:
            c.execute(text("""UPDATE obligation SET due_at = :due, next_check_at = :due,
                                  remind_at = :due + interval '2 hours', window_end_at = :due + interval '4 hours'
                              WHERE id IN (SELECT id FROM obligation WHERE period_key = 'd1' ORDER BY id LIMIT :k)"""),
                      dict(due=due, k=args.people // 100))
            c.execute(text("ANALYZE obligation"))
        t0 = time.perf_counter()
        rep = sweep(engine, due, cfg)
        print(f"1% due sweep: {(time.perf_counter() - t0) * 1000:.0f} ms ({rep.prompted:,} prompted)", flush=True)
        holiday = greetings.find_holiday("CN", today=date(2027, 1, 1), name="spring_festival")
        for attempt in ("greeting enqueue", "greeting re-run"):
            t0 = time.perf_counter()
            with session_scope(engine) as s:
                result = greetings.enqueue_bulk(s, key=greetings.greeting_key(holiday), kind="greeting",
                                                section="greeting", template=holiday.slug, now=due,
                                                audience=greetings.Audience(), holiday=holiday)
            print(f"{attempt}: {result.queued:,} queued in {time.perf_counter() - t0:.1f} s", flush=True)
        engine.dispose()
    admin.dispose()


if __name__ == "__main__":
    main()
