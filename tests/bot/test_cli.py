"""The `checkin` command line, end to end through typer on both databases."""

from __future__ import annotations

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from storage.db import head_revision, session_scope
from storage.models import EnrolmentCode, Leave, LocationCheck, Message, Officer
from tests.conftest import clear_env, roster_csv

runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})


def run(*args, input=None, ok=True):
    result = runner.invoke(app, list(args), input=input, env={"COLUMNS": "200"})
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def seeded(env, tmp_path):
    run("init")
    boss = run("officer", "add", "--name", "张主任", "--township", "红果镇", "--role", "supervisor").output.strip()
    li = run("officer", "add", "--name", "李娜", "--township", "红果镇", "--supervisor", boss,
             "--phone", "138 0000 1111").output.strip()
    roster = tmp_path / "r.csv"
    roster.write_text(roster_csv(6, [int(li)]), encoding="utf-8")
    run("roster", "import", str(roster))
    return env, int(boss), int(li)


def test_init_on_an_empty_database_then_again(empty_url, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    monkeypatch.setenv("CHECKIN_DATABASE_URL", empty_url)
    assert f"migrated from empty to revision {head_revision()}" in run("init").output
    assert "up to date" in run("init").output


def test_commands_before_init_say_so(env, tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKIN_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    result = run("officer", "list", ok=False)
    assert result.exit_code == 2 and "checkin init" in result.output


def test_officer_add_and_list(seeded):
    db, boss, li = seeded
    listing = run("officer", "list").output
    assert "张主任" in listing and "李娜" in listing and "supervisor" in listing
    with session_scope(db.engine) as s:
        assert s.get(Officer, li).phone == "+8613800001111"
        assert s.get(Officer, li).supervisor_id == boss


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--phone", "12345"], "--phone='12345'"),
        (["--language", "fr"], "--language='fr'"),
        (["--supervisor", "999"], "--supervisor=999"),
        (["--role", "boss"], "boss"),
    ],
)
def test_officer_add_refuses_bad_values(seeded, args, expect):
    result = run("officer", "add", "--name", "X", "--township", "Y", *args, ok=False)
    assert result.exit_code == 2 and expect in result.output


def test_roster_list_filters(seeded):
    out = run("roster", "list", "--township", "两河镇").output
    assert "JZ2700001" in out and "JZ2700002" not in out and "2 people" in out


def test_enroll_link_issues_a_fresh_code(seeded, monkeypatch):
    db, _, _ = seeded
    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", "county_checkin_bot")
    out = run("enroll-link", "JZ2700001").output
    with session_scope(db.engine) as s:
        (code,) = s.exec(select(EnrolmentCode)).all()
    assert code.code in out and f"https://t.me/county_checkin_bot?start={code.code.replace('-', '')}" in out
    assert "+8613900000001" in out
    assert run("enroll-link", "NOPE", ok=False).exit_code == 2
    officer_out = run("enroll-link", "officer:2").output
    assert "Enrolment code for officer:2" in officer_out and "SMS" not in officer_out


def test_console_conversation_as_person_then_officer(seeded):
    db, _, li = seeded
    out = run("console", "--as", "JZ2700001", input="/help\n找协管员 明天去医院\n").output
    assert "you › /help" in out and "发 /help 查看本说明" in out
    assert "已转告李娜" in out
    officer_view = run("console", "--as", f"officer:{li}", input="/list\n").output
    # The officer has a phone, so the note went out by SMS, not to the console mailbox.
    assert "明天去医院" not in officer_view and "您负责 6 人" in officer_view
    with session_scope(db.engine) as s:
        note = s.exec(select(Message).where(Message.kind == "contact")).one()
        assert (note.channel, note.address, note.status) == ("sms", "+8613800001111", "queued")


def test_console_unknown_identity(seeded):
    assert run("console", "--as", "JZ0000000", ok=False).exit_code == 2


def test_demo_seeds_the_sample_county_once_and_talks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    out = run("demo", "--console", "--dir", str(tmp_path / "d"), input="/help\n").output
    assert "Seeded the sample county" in out and "发 /help 查看本说明" in out
    again = run("demo", "--console", "--dir", str(tmp_path / "d"), "--as", "officer:2", input="/list\n").output
    assert "Seeded" not in again and "您负责 13 人" in again
    monkeypatch.setenv("CHECKIN_DATABASE_URL", f"sqlite:///{tmp_path / 'd' / 'checkin.db'}")
    wrong = run("roster", "list", ok=False)  # this run's keys are not the demo's
    assert wrong.exit_code == 2 and "cannot be decrypted with these keys" in wrong.output
    monkeypatch.delenv("CHECKIN_DATA_KEYS")
    monkeypatch.delenv("CHECKIN_INDEX_KEY")
    monkeypatch.setenv("CHECKIN_KEY_FILE", str(tmp_path / "d" / "checkin.keys"))  # as the demo says
    assert "40 people" in run("roster", "list").output


def test_enroll_link_asks_telegram_for_the_bot_name(seeded, monkeypatch):
    import asyncio
    import threading

    from bot.sandbox.telegram_api import FakeTelegram

    fake, loop, ready = FakeTelegram(), asyncio.new_event_loop(), threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fake.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
        monkeypatch.setenv("TELEGRAM_BASE_URL", fake.base_url)
        out = run("enroll-link", "JZ2700001").output
        assert "https://t.me/checkin_test_bot?start=" in out
        assert [method for method, _ in fake.calls] == ["getMe"]
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _persona_rows(out: str) -> list[tuple[int, int, int]]:
    """(prompts, meant %, achieved %) from the demo's persona table."""
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 5 and cells[0].endswith("%") and cells[2].isdigit():
            rows.append((int(cells[2]), int(cells[3].rstrip("%")), int(cells[4].rstrip("%"))))
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("sms", ["twilio", "tencent"])
def test_demo_simulates_the_whole_service(tmp_path, monkeypatch, sms):
    """The demo as a user runs it: a process of its own, a clean stderr, people who answer as they mean to; its
    SMS through Twilio's stand-in or Tencent Cloud's (approved templates, TC3-signed). The first speaks the office's
    default language, Chinese; the second English (CHECKIN_LANGUAGE=en)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "bot.cli", "demo", "--dir", str(tmp_path / "d"), "--days", "3",
                           "--seconds", "15", "--sms", sms], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "100", "PYTHONPATH": str(root),
                               **({"CHECKIN_LANGUAGE": "en"} if sms == "tencent" else {})}, cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no traceback, no library's INFO line between the progress bar and the tables
    if sms == "twilio":
        assert "发出的消息" in out and "提醒" in out and "月度报表" in out and "全县" in out
        assert "位置报到：" in out and "请假：" in out and "已模拟 " in out
        # The console on the demo's database: its address, and a sign-in for an officer and for the administrator.
        assert "工作台（加 --serve）：http://127.0.0.1:8080/console/" in out
        assert "协管员：以 " in out and "管理员：以 " in out
        assert "outbound messages" not in out and "compliance" not in out
    else:
        assert "outbound messages" in out and "escalations" in out and "compliance 20" in out
        assert "location check-ins:" in out and "leave:" in out
        assert "Simulated " in out and "the compliance report for " in out
        assert "The web console (with --serve): http://127.0.0.1:8080/console/" in out
        assert "an assistant officer: sign in as " in out and "the administrator: sign in as " in out
    assert list(tmp_path.glob("**/officer-*-totp.png"))
    personas = _persona_rows(out)
    assert len(personas) == 10 and sum(p[0] for p in personas) > 40
    for prompts, meant, achieved in personas:  # answers land inside their window, as the persona meant
        assert abs(meant - achieved) <= 5, personas
    from sqlmodel import func

    from tests.conftest import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'd' / 'checkin.db'}")
    with session_scope(engine) as s:
        channels = dict(s.exec(select(Message.channel, func.count()).where(
            Message.direction == "out", Message.status.in_(["sent", "delivered", "undelivered"]))
            .group_by(Message.channel)).all())
        inbound = s.exec(select(func.count()).select_from(Message).where(Message.direction == "in")).one()
        points = s.exec(select(func.count()).select_from(LocationCheck)).one()
        asked = s.exec(select(func.count()).select_from(Leave)).one()
    engine.dispose()
    assert points > 0 and asked > 0  # strict people on Telegram shared locations; someone asked for leave
    assert channels.get("telegram", 0) > 20 and channels.get("sms", 0) > 20 and inbound > 20
    assert channels.get("voice", 0) >= 3  # two people on voice: their check-ins by phone call
