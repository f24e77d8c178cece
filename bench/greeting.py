"""Time the set-based enqueue of a holiday greeting, and a re-run that must queue nothing.

    python bench/greeting.py [--sizes 1297,100000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sweep import enrol  # noqa: E402
from handlers import greetings  # noqa: E402
from storage.db import migrate, session_scope  # noqa: E402
from tests.conftest import make_engine, pg_schema  # noqa: E402


def run(url: str, n: int) -> tuple[float, float, int]:
    engine = make_engine(url)
    migrate(engine)
    now = datetime(2027, 2, 6, 1, tzinfo=UTC)
    enrol(engine, n, now)
    holiday = greetings.find_holiday("CN", today=date(2027, 1, 1), name="spring_festival")
    timings, queued = [], 0
    for _ in range(2):
        t0 = time.perf_counter()
        with session_scope(engine) as s:
            result = greetings.enqueue_bulk(s, key=greetings.greeting_key(holiday), kind="greeting",
                                            section="greeting", template=holiday.slug, now=now,
                                            audience=greetings.Audience(), holiday=holiday)
        timings.append(time.perf_counter() - t0)
        queued = queued or result.queued
    engine.dispose()
    return timings[0], timings[1], queued


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1297,100000")
    ap.add_argument("--postgres")
    args = ap.parse_args()
    for n in (int(x) for x in args.sizes.split(",")):
        first, again, queued = run(f"sqlite:///{tempfile.mkdtemp()}/g.db", n)
        print(f"sqlite     {n:7d} people: enqueue {first:6.2f} s ({queued} rows), re-run {again:6.2f} s")
        if args.postgres:
            admin = make_engine(args.postgres)
            with pg_schema(admin, "bench") as url:
                first, again, queued = run(url, n)
            admin.dispose()
            print(f"postgresql {n:7d} people: enqueue {first:6.2f} s ({queued} rows), re-run {again:6.2f} s")


if __name__ == "__main__":
    main()
