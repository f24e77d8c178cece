"""Test fixtures: every database test runs on SQLite and, where reachable, on PostgreSQL.

CHECKIN_TEST_POSTGRES_URL   the server to use (default postgresql://postgres@127.0.0.1:5432/test)
CHECKIN_TEST_REQUIRE_POSTGRES=1   an unreachable server fails the run instead of skipping (CI sets it)

Each run creates its own PostgreSQL schema and drops it at the end; each SQLite
test gets its own file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from storage.crypto import Keyring, new_key
from storage.db import make_engine as _make_engine
from storage.db import migrate
from storage.models import SQLModel

PG_URL = os.environ.get("CHECKIN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("CHECKIN_TEST_REQUIRE_POSTGRES", "") not in ("", "0", "false", "no")
NOW = datetime(2027, 3, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai

# This run's encryption keys: the engines below hold them, and the CLI and the
# service processes the tests start read them from the environment.
os.environ.setdefault("CHECKIN_DATA_KEYS", new_key())
os.environ.setdefault("CHECKIN_INDEX_KEY", new_key())
KEYRING = Keyring.parse(os.environ["CHECKIN_DATA_KEYS"], os.environ["CHECKIN_INDEX_KEY"])


def make_engine(url: str, keyring: Keyring | None = KEYRING, **kwargs) -> Engine:
    """storage.db.make_engine with this run's keys."""
    return _make_engine(url, keyring, **kwargs)


@dataclass
class DB:
    """A migrated, empty database for one test."""

    kind: str
    url: str
    engine: Engine


def _pg_admin() -> Engine | None:
    engine = make_engine(PG_URL, pool_pre_ping=False)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return engine
    except Exception as exc:  # unreachable, refused, bad credentials
        engine.dispose()
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (CHECKIN_TEST_REQUIRE_POSTGRES) but {PG_URL} failed: {exc}")
        return None


@contextmanager
def pg_schema(admin: Engine, prefix: str = "checkin_test"):
    """A new schema on the server, as a URL whose connections use it; dropped on exit."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(admin.url.render_as_string(hide_password=False))
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def _require_pg() -> Engine:
    admin = _pg_admin()
    if admin is None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    return admin


@pytest.fixture(scope="session")
def pg_schema_url():
    """A fresh schema on the PostgreSQL server for this run, migrated, dropped at the end."""
    admin = _require_pg()
    with pg_schema(admin) as url:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """One migrated SQLite file; each test copies it."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection to close checkpoints and removes the WAL file
    assert not path.with_name(path.name + "-wal").exists()
    return path


def _truncate(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path) -> DB:
    """A migrated, empty database: SQLite file, then PostgreSQL schema."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "checkin.db"
        shutil.copy(template, path)
        url = f"sqlite:///{path}"
        engine = make_engine(url)
    else:
        url = request.getfixturevalue("pg_schema_url")
        engine = make_engine(url)
        _truncate(engine)
    yield DB(request.param, url, engine)
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request, tmp_path):
    """The URL of a database with no tables at all (a new SQLite file, a new schema)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin = _require_pg()
    with pg_schema(admin, "checkin_empty") as url:
        yield url
    admin.dispose()


def clear_env(monkeypatch) -> None:
    """Drop the service's settings from the environment (tests set their own); this run's keys stay."""
    for name in list(os.environ):
        if name in ("CHECKIN_DATA_KEYS", "CHECKIN_INDEX_KEY"):
            continue
        if name.startswith(("CHECKIN_", "TELEGRAM_", "TWILIO_")) and not name.startswith("CHECKIN_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def env(monkeypatch, db, tmp_path):
    """Environment for CLI runs against `db`; no .env file is read from the repo."""
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    monkeypatch.setenv("CHECKIN_DATABASE_URL", db.url)
    return db


# ---- sample data -----------------------------------------------------------------

HEADER = "case_number,name,phone,language,category,level,township,officer_id,supervision_start,supervision_end"
CATEGORIES = ["probation"] * 10 + ["parole"] * 5 + ["medical_parole"] * 2 + ["deprivation"] * 3 + ["control"]
LEVELS = ["strict", "ordinary", "ordinary", "lenient"]


def roster_csv(n: int, officer_ids: list[int], *, townships=("红果镇", "两河镇", "平关镇"), start=1) -> str:
    """A valid roster of `n` people, deterministic: case JZ27xxxxx, phones 139 0000 xxxx."""
    lines = [HEADER]
    for i in range(start, start + n):
        lines.append(",".join([
            f"JZ27{i:05d}",
            f"测试人{i}" if i % 3 else f"Person {i}",
            f"139 {i // 10000:04d} {i % 10000:04d}",
            "en" if i % 3 == 0 else "zh-CN",
            CATEGORIES[i % len(CATEGORIES)],
            LEVELS[i % len(LEVELS)],
            townships[i % len(townships)],
            str(officer_ids[i % len(officer_ids)]),
            str(date(2026, 1 + i % 12, 1 + i % 28)),
            str(date(2028, 1 + i % 12, 1 + i % 28)),
        ]))
    return "\n".join(lines) + "\n"
