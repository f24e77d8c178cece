"""`checkin doctor` against the stand-ins: all well, then each failure made on purpose, named with what to do."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.doctor import examine, readiness
from bot.sandbox.loopback import LoopbackServer, free_port
from bot.sandbox.telegram_api import FakeTelegram
from bot.sandbox.twilio_api import FakeTwilio
from bot.settings import load_settings
from bot.web import make_app
from scheduler.clock import FixedClock
from storage import outbox
from storage.db import migrate, session_scope
from storage.service_models import beat
from tests.conftest import clear_env
from tests.sim import County, local

NOW = local(2027, 3, 1, 10)


class Server:
    """A county's server: the database, a sweep a minute ago, the stand-ins, the service's /livez on loopback."""

    def __init__(self, db, tg: FakeTelegram, tw: FakeTwilio, port: int) -> None:
        self.db, self.tg, self.tw, self.port = db, tg, tw, port
        self.county = County(db)
        with session_scope(db.engine) as s:
            beat(s, "sweep", NOW - timedelta(minutes=1), 0.05)
        tg.webhook = {"url": f"http://127.0.0.1:{port}/telegram/webhook"}

    def settings(self, **changed):
        return load_settings(**{**dict(
            database_url=self.db.url, public_url=f"http://127.0.0.1:{self.port}",
            telegram_bot_token=self.tg.token, telegram_base_url=self.tg.base_url,
            twilio_account_sid=self.tw.account_sid, twilio_auth_token=self.tw.auth_token,
            twilio_from_number=self.tw.number, twilio_api_base_url=self.tw.base_url), **changed})

    def levels(self, **changed) -> dict[str, tuple[str, str]]:
        return {f.check: (f.level, f"{f.says('en')} {f.fix('en')}") for f in examine(self.settings(**changed), NOW)}


@pytest.fixture
async def server(db, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    tg, tw = FakeTelegram(), FakeTwilio()
    await tg.start()
    await tw.start()
    port = free_port()
    web = LoopbackServer(make_app(FixedClock(NOW), {}))
    await web.start(port=port)
    try:
        yield Server(db, tg, tw, port)
    finally:
        await web.stop()
        await tw.stop()
        await tg.stop()


def _failed(levels: dict) -> set[str]:
    return {check for check, (level, _) in levels.items() if level == "fail"}


async def test_all_well_then_each_provider_failure_named(server):
    import asyncio

    got = await asyncio.to_thread(server.levels)
    assert _failed(got) == set() and got["telegram"][0] == "ok" and got["twilio number"][0] == "ok", got
    assert got["sweep"] == ("ok", "last ran 1 min ago, in 0.05 s ")
    wrong_token = await asyncio.to_thread(server.levels, telegram_bot_token="999:WRONG")
    assert _failed(wrong_token) == {"telegram"} and "TELEGRAM_BOT_TOKEN" in wrong_token["telegram"][1]
    server.tg.webhook = None
    polling = await asyncio.to_thread(server.levels)
    assert _failed(polling) == {"telegram webhook"} and "registered: none (polling)" in polling["telegram webhook"][1]
    bad_twilio = await asyncio.to_thread(server.levels, twilio_auth_token="wrong")
    assert _failed(bad_twilio) == {"telegram webhook", "twilio"} and "HTTP 401" in bad_twilio["twilio"][1]
    not_ours = await asyncio.to_thread(server.levels, twilio_voice_from="+15005550099")
    assert _failed(not_ours) == {"telegram webhook", "twilio voice number"}
    unreachable = await asyncio.to_thread(server.levels, public_url="http://127.0.0.1:9")
    assert "public url" in _failed(unreachable) and "reverse proxy" in unreachable["public url"][1]


async def test_the_database_the_keys_the_outbox_and_the_sweep(server, monkeypatch, tmp_path):
    import asyncio

    from storage.models import Message

    with session_scope(server.db.engine) as s:  # a message due two hours ago, never sent
        mid = outbox.enqueue(s, channel="sms", address="+8613800000001", body="x", now=NOW - timedelta(hours=2))
        assert s.get(Message, mid).status == "queued"
        beat(s, "sweep", NOW - timedelta(minutes=25), 0.1)
    got = await asyncio.to_thread(server.levels)
    assert {"outbox", "sweep"} <= _failed(got)
    assert "waited 2 h 0 min" in got["outbox"][1] and "last ran 25 min ago" in got["sweep"][1]
    ready, facts = readiness(server.db.engine, NOW)
    assert not ready and facts["sweep_age_seconds"] == 1500
    from storage.crypto import new_key

    monkeypatch.setenv("CHECKIN_DATA_KEYS", new_key())  # not the keys this database was written with
    other = await asyncio.to_thread(server.levels)
    assert other["keys"][0] == "fail" and "cannot open the stored data" in other["keys"][1]


async def test_the_key_file_its_mode_and_relative_paths(server, monkeypatch, tmp_path):
    import asyncio

    keys = tmp_path / "checkin.keys"
    keys.write_text(f"CHECKIN_DATA_KEYS={os.environ['CHECKIN_DATA_KEYS']}\n"
                    f"CHECKIN_INDEX_KEY={os.environ['CHECKIN_INDEX_KEY']}\n")
    keys.chmod(0o644)
    monkeypatch.delenv("CHECKIN_DATA_KEYS")
    monkeypatch.delenv("CHECKIN_INDEX_KEY")
    got = await asyncio.to_thread(server.levels, key_file="checkin.keys")
    assert got["key file"][0] == "fail" and f"chmod 600 {keys.name}" in got["key file"][1]
    assert got["paths"][0] == "warn" and "CHECKIN_KEY_FILE=checkin.keys" in got["paths"][1]
    keys.chmod(0o600)
    fixed = await asyncio.to_thread(server.levels, key_file=str(keys))
    assert fixed["key file"][0] == "ok" and fixed["paths"][0] == "ok" and fixed["keys"][0] == "ok"


async def test_a_database_behind_its_migrations_fails_and_the_command_exits_1(server, monkeypatch):
    import asyncio

    from alembic import command

    from storage.db import alembic_config

    command.downgrade(alembic_config(server.db.engine), "0019")
    for name, value in dict(CHECKIN_DATABASE_URL=server.db.url, TELEGRAM_BOT_TOKEN=server.tg.token,
                            CHECKIN_CLOCK=f"{NOW.isoformat()}@1",
                            TELEGRAM_BASE_URL=server.tg.base_url,
                            CHECKIN_PUBLIC_URL=f"http://127.0.0.1:{server.port}").items():
        monkeypatch.setenv(name, value)
    done = await asyncio.to_thread(CliRunner(env={"CHECKIN_LANGUAGE": "en"}).invoke, app, ["doctor"], env={"COLUMNS": "200"})
    assert done.exit_code == 1, done.output
    assert "FAIL database" in done.output and "is at revision 0019, this version needs 0020" in done.output
    assert "run `checkin init`" in done.output and "1 check(s) failed" in done.output
    migrate(server.db.engine)
    well = await asyncio.to_thread(CliRunner(env={"CHECKIN_LANGUAGE": "en"}).invoke, app, ["doctor"], env={"COLUMNS": "200"})
    assert well.exit_code == 0 and "all well" in well.output, well.output


async def test_the_tencent_templates_are_checked(server, tmp_path):
    import asyncio

    from content.sms_templates import DEFAULT_FILE

    tencent = dict(sms_provider="tencent", tencent_secret_id="AKID", tencent_secret_key="k", tencent_sms_app_id="1",
                   sms_sign_name="示例县司法局", twilio_account_sid=None)
    got = await asyncio.to_thread(server.levels, **tencent)
    assert got["sms templates"] == ("ok", "match the messages ") and "twilio" not in got
    drifted = tmp_path / "t.toml"
    drifted.write_text(DEFAULT_FILE.read_text(encoding="utf-8").replace("这次报到已经收到了", "报到已收到"),
                       encoding="utf-8")
    bad = await asyncio.to_thread(server.levels, **tencent, sms_templates_file=str(drifted))
    assert bad["sms templates"][0] == "fail" and "checkin sms templates check" in bad["sms templates"][1]
