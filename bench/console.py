"""The web console's pages on the server: the caseload of a whole county and a person with a year of messages.

    python bench/console.py [--people 1300] [--messages 1460] [--runs 20] [--postgres URL]

An administrator (who sees everyone) signs in; then each page is asked for `--runs` times through Starlette's
TestClient (the whole app: session lookup, scope, queries, decryption, the template): median and slowest, in ms.
Goal (docs/benchmarks.md): under 200 ms each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyotp  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from bench.sweep import enrol  # noqa: E402
from bot.office import auth  # noqa: E402
from bot.office.app import office_routes  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.web import make_app  # noqa: E402
from handlers import officer_accounts  # noqa: E402
from scheduler.clock import FixedClock  # noqa: E402
from storage import queries  # noqa: E402
from storage.db import migrate, session_scope  # noqa: E402
from storage.models import Message, Officer, Supervisee  # noqa: E402
from tests.conftest import make_engine, pg_schema  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2027, 3, 1, 20, 0, tzinfo=SH).astimezone(UTC)
PASSWORD = "benchmark password"


def prepare(url: str, people: int, messages: int) -> tuple[str, str, str]:
    engine = make_engine(url)
    migrate(engine)
    enrol(engine, people, NOW - timedelta(days=400))
    secret = auth.new_totp_secret()
    with session_scope(engine) as s:
        admin = queries.add_officer(s, name="管理员", township="县", role="admin", now=NOW)
        officer_accounts.set_password(s, s.get(Officer, admin.id), PASSWORD, NOW, actor="bench", totp_secret=secret)
        person = s.exec(select(Supervisee).order_by(Supervisee.id)).scalars().first()
        rows = [dict(direction="in" if i % 2 else "out", channel="sms", address="+8613900000000",
                     supervisee_id=person.id, kind="text" if i % 2 else "checkin_prompt",
                     body=("今天在砖厂上班，一切正常。" if i % 2 else "今天的报到时间到了。请在 13:00 前回复。"),
                     status="handled" if i % 2 else "sent", attempts=0,
                     created_at=NOW - timedelta(hours=6 * (messages - i)), updated_at=NOW)
                for i in range(messages)]  # a year of check-ins and answers
        for i in range(0, len(rows), 1000):
            s.execute(insert(Message), rows[i:i + 1000])
        return str(admin.id), person.case_number, secret


def timed(client: TestClient, path: str, runs: int) -> tuple[float, float]:
    client.get(path)  # warm: templates compiled, caches filled
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(times), max(times)


def run(url: str, people: int, messages: int, runs: int) -> dict:
    admin_id, case, secret = prepare(url, people, messages)
    engine = make_engine(url)
    clock = FixedClock(NOW)
    rt = Runtime(load_settings(database_url=url), engine, clock)
    routes, errors = office_routes(rt)
    client = TestClient(make_app(clock, {}, routes, errors), follow_redirects=False)
    signed = client.post("/console/login", data={"login": admin_id, "password": PASSWORD,
                                                 "code": pyotp.TOTP(secret).at(NOW), "next": "/console/"})
    assert signed.status_code == 303, signed.text
    out = {}
    for label, path in (("caseload (first page of all)", "/console/people"),
                        ("caseload searched by last digits", "/console/people?q=0042"),
                        (f"a person with {messages} messages", f"/console/people/{case}"),
                        ("inbox", "/console/")):
        out[label] = timed(client, path, runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1300)
    parser.add_argument("--messages", type=int, default=1460)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", help="a PostgreSQL URL (a schema of its own is made and dropped)")
    args = parser.parse_args()
    if args.postgres:
        with pg_schema(make_engine(args.postgres)) as url:
            figures = run(url, args.people, args.messages, args.runs)
        db = "PostgreSQL"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            figures = run(f"sqlite:///{tmp}/console.db", args.people, args.messages, args.runs)
        db = "SQLite"
    print(f"{db}, {args.people} people, {args.runs} runs each")
    for label, (median, worst) in figures.items():
        print(f"  {label:38} median {median:6.1f} ms   slowest {worst:6.1f} ms")


if __name__ == "__main__":
    main()
