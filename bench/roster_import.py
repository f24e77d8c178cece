"""Time a 1,300-row roster import and an unchanged re-import, on SQLite and (if given) PostgreSQL.

    python bench/roster_import.py [--rows 1300] [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from handlers.roster import import_roster  # noqa: E402
from storage import queries  # noqa: E402
from storage.db import migrate, session_scope  # noqa: E402
from tests.conftest import make_engine, pg_schema, roster_csv  # noqa: E402


def run(url: str, rows: int) -> tuple[float, float]:
    engine = make_engine(url)
    migrate(engine)
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        ids = [queries.add_officer(s, name=f"o{i}", township="t", role="assistant", now=now).id for i in range(39)]
    data = roster_csv(rows, ids)
    t0 = time.perf_counter()
    with session_scope(engine) as s:
        assert import_roster(s, data, now=now).created == rows
    t1 = time.perf_counter()
    with session_scope(engine) as s:
        assert import_roster(s, data, now=now).unchanged == rows
    t2 = time.perf_counter()
    engine.dispose()
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1300)
    ap.add_argument("--postgres")
    args = ap.parse_args()
    for name, url in [("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db")]:
        report(name, url, args.rows)
    if args.postgres:
        admin = make_engine(args.postgres)
        with pg_schema(admin, "bench") as url:
            report("postgresql", url, args.rows)


def report(name: str, url: str, rows: int) -> None:
    first, again = run(url, rows)
    print(f"{name:10s} import {rows} rows: {first:.2f} s   unchanged re-import: {again:.2f} s")

if __name__ == "__main__":
    main()
