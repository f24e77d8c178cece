"""Personal data: encrypted at rest, found by blind index, readable across key rotation, purged after retention."""

from __future__ import annotations

import logging
import os
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from handlers import compliance, greetings, purge
from handlers.contract import Inbound, Location
from scheduler.drain import Outbox
from storage import audit, queries, rekey
from storage.crypto import DecryptError, Keyring, KeyringError, new_key
from storage.db import session_scope
from storage.models import (
    AuditEntry,
    Conversation,
    Escalation,
    Leave,
    LocationCheck,
    Message,
    Obligation,
    SQLModel,
    Supervisee,
    Warning_,
    WrittenReport,
)
from tests.conftest import KEYRING, make_engine
from tests.scheduler.test_outbox import RecordingChannel
from tests.sim import County, local

REPORT = "周一到周五在城南砖厂上班，老板姓陈"
LEAVE_REASON = "看望住院的母亲"
WARNING = "连续两天未报到"
SAID = "明天上午九点来司法所"
POINT = (27.123456, 106.654321)


async def _activity(c: County) -> None:
    """A day of the small county touching every kind of personal data."""
    c.sweep(local(2027, 3, 1, 9))
    await c.sms(c.strict, "1", local(2027, 3, 1, 9, 5))
    await c.sms(c.strict, "汇报", local(2027, 3, 1, 10))
    await c.sms(c.strict, REPORT, local(2027, 3, 1, 10, 1))
    await c.sms(c.strict, "完成", local(2027, 3, 1, 10, 2))
    await c.sms(c.lenient, "report half-written, never finished", local(2027, 3, 1, 10, 3))  # a draft in conversation
    await c.sms(c.strict, f"请假 贵阳 3-10 3-12 {LEAVE_REASON}", local(2027, 3, 1, 11))
    await c.send("telegram", "5001", local(2027, 3, 1, 11, 30), "拒绝 1 时间不合适")
    await c.send("telegram", "5001", local(2027, 3, 1, 12), f"/warn JZ-S {WARNING}")
    await c.send("telegram", "5001", local(2027, 3, 1, 12, 5), f"/say JZ-S {SAID}")
    await c.router.handle(c.engine, Inbound("telegram", "7002", location=Location(*POINT, 12.0)), local(2027, 3, 1, 13))
    for now in (local(2027, 3, 2, 9), local(2027, 3, 2, 13)):
        c.sweep(now)  # 刘芳 does not answer: an escalation to 李娜 naming her
    with session_scope(c.engine) as s:
        h = greetings.find_holiday("CN", today=date(2027, 3, 1), name="labour_day")
        greetings.enqueue_bulk(s, key="greet:test", kind="greeting", section="greeting", template=h.slug,
                               now=local(2027, 3, 2, 14), audience=greetings.Audience(), holiday=h)
    channels = {"sms": RecordingChannel("sms"), "telegram": RecordingChannel("telegram")}
    assert (await Outbox(c.engine, channels).drain(local(2027, 3, 2, 14, 1))).sent >= 3  # rendered as they go


def _secrets(c: County) -> list[str]:
    phones = [p.phone for p in (c.strict, c.ordinary, c.lenient)]
    return [*phones, *(p[3:] for p in phones), "王伟", "刘芳", "Tom Lee", "李娜", "张主任",
            REPORT, LEAVE_REASON, WARNING, SAID, "half-written", f"{POINT[0]}", f"{POINT[1]}"]


def _every_stored_value(engine) -> str:
    """Every column of every row, as the database returns it (no decryption)."""
    parts = []
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


async def test_the_database_holds_no_plaintext_personal_data(db):
    c = County(db)
    await _activity(c)
    with session_scope(c.engine) as s:  # all of it was stored, and reads back
        assert s.exec(select(WrittenReport)).one().body == REPORT
        assert s.exec(select(Leave)).one().reason == LEAVE_REASON
        assert s.exec(select(Warning_)).one().reason == WARNING
        assert s.exec(select(LocationCheck)).one().latitude == POINT[0]
        assert "half-written" in s.exec(select(Conversation).where(Conversation.state != "idle")).one().data
        bodies = [m.body for m in s.exec(select(Message))]
        assert any(SAID in b for b in bodies) and any("Tom Lee" in b for b in bodies)
        assert sum(1 for m in s.exec(select(Message)) if m.address == c.strict.phone) > 3
    stored = _every_stored_value(c.engine)
    assert [x for x in _secrets(c) if x in stored] == []
    assert stored.count("c1:") > 50  # encrypted values are there, under this run's key
    if db.kind == "sqlite":  # and the file itself, write-ahead log included
        c.engine.dispose()
        path = Path(db.url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
        assert [x for x in _secrets(c) if x.encode("utf-8") in raw] == []


async def test_lookups_by_phone_go_through_the_blind_index(db):
    c = County(db)
    with session_scope(c.engine) as s:
        found = queries.supervisee_by_phone(s, "+8613800000001")
        assert found.id == c.strict.id and found.phone_index == KEYRING.blind("+8613800000001")
        assert queries.supervisee_by_phone(s, "+8613800000009") is None
        assert queries.officer_by_phone(s, "+8613800000001") is None
    other = make_engine(db.url, Keyring([KEYRING.data_keys[0]], Keyring.generate().index_key))
    with session_scope(other) as s:  # the same data, another index key: the index means nothing
        assert queries.supervisee_by_phone(s, "+8613800000001") is None
    other.dispose()
    reply = await c.sms(c.strict, "1", local(2027, 3, 1, 9, 5))  # the router finds the sender by it
    assert not reply.error and "下次报到" in reply.replies[0].text  # known: not the unknown-sender reply
    with session_scope(c.engine) as s:
        assert s.exec(select(Message).where(Message.direction == "in")).one().supervisee_id == c.strict.id


def _snapshot(engine) -> dict:
    out = {}
    with session_scope(engine) as s:
        for model in (Supervisee, Message, WrittenReport, Leave, Warning_, LocationCheck, Conversation, AuditEntry,
                      Escalation):
            out[model.__name__] = sorted(repr(sorted(r.model_dump().items())) for r in s.exec(select(model)))
    return out


async def test_key_rotation_keeps_everything_readable(db):
    c = County(db)
    await _activity(c)
    before = _snapshot(c.engine)
    new = Keyring([Keyring.generate().data_keys[0], *KEYRING.data_keys], KEYRING.index_key)
    both = make_engine(db.url, new)
    assert _snapshot(both) == before  # the new ring reads what the old key wrote
    report = rekey.reencrypt(both, batch=7)  # small batches: several transactions per table
    assert report.rewritten["message.body"] > 10 and report.rewritten["supervisee.name"] == 3
    assert set(report.keys_in_use) == {new.primary}
    assert rekey.reencrypt(both).rewritten == {}  # nothing left: a second run rewrites nothing
    both.dispose()
    only_new = make_engine(db.url, Keyring([new.data_keys[0]], KEYRING.index_key))
    assert _snapshot(only_new) == before
    with session_scope(only_new) as s:
        assert queries.supervisee_by_phone(s, c.strict.phone).name == "王伟"
        assert audit.verify(s).ok
    only_new.dispose()
    with pytest.raises(DecryptError, match="not in CHECKIN_DATA_KEYS"):
        _snapshot(c.engine)  # the old key alone no longer reads anything


async def test_keys_commands_rotate_a_key_file(db, env, tmp_path, monkeypatch):
    keyfile = tmp_path / "checkin.keys"  # this run's keys, moved from the environment into a key file
    keyfile.write_text("".join(f"{name}={os.environ[name]}\n" for name in ("CHECKIN_DATA_KEYS", "CHECKIN_INDEX_KEY")))
    monkeypatch.delenv("CHECKIN_DATA_KEYS")
    monkeypatch.delenv("CHECKIN_INDEX_KEY")
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en", "COLUMNS": "200"})
    c = County(db)
    await _activity(c)
    before = _snapshot(c.engine)
    added = runner.invoke(app, ["keys", "add"])
    assert added.exit_code == 0, added.output
    assert "Restart the service" in added.output
    rotated = runner.invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert "no longer used: removed from" in rotated.output
    assert oct(keyfile.stat().st_mode & 0o777) == "0o600"
    values = dict(line.split("=", 1) for line in keyfile.read_text().splitlines() if "=" in line)
    ring = Keyring.parse(values["CHECKIN_DATA_KEYS"], values["CHECKIN_INDEX_KEY"])
    assert len(ring.data_keys) == 1 and ring.data_keys[0] != KEYRING.data_keys[0]
    engine = make_engine(db.url, ring)
    after = _snapshot(engine)
    assert len(after.pop("AuditEntry")) == len(before.pop("AuditEntry")) + 1 and after == before
    with session_scope(engine) as s:
        last = s.exec(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert (last.action, last.actor, last.subject) == ("keys.rotate", "cli", f"key:{ring.primary}")
        assert audit.verify(s).ok
    reindexed = runner.invoke(app, ["keys", "rotate", "--new-index-key"])
    assert reindexed.exit_code == 0, reindexed.output
    assert re.search(r"recomputed 3 phone indexes; reset \d+ conversations", reindexed.output), reindexed.output
    values = dict(line.split("=", 1) for line in keyfile.read_text().splitlines() if "=" in line)
    ring = Keyring.parse(values["CHECKIN_DATA_KEYS"], values["CHECKIN_INDEX_KEY"])
    engine = make_engine(db.url, ring)
    with session_scope(engine) as s:
        assert queries.supervisee_by_phone(s, c.strict.phone).case_number == "JZ-S"
    engine.dispose()


def test_keys_are_checked_and_errors_name_them():
    ring = Keyring.generate()
    token = ring.encrypt("supervisee.name", "王伟")
    assert ring.decrypt("supervisee.name", token) == "王伟" and token != ring.encrypt("supervisee.name", "王伟")
    with pytest.raises(DecryptError, match="belongs elsewhere"):
        ring.decrypt("supervisee.phone", token)  # moved to another column
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(DecryptError, match="altered"):
        ring.decrypt("supervisee.name", tampered)
    with pytest.raises(DecryptError, match="not encrypted"):
        ring.decrypt("supervisee.name", "王伟")
    with pytest.raises(KeyringError, match="CHECKIN_DATA_KEYS item 2"):
        Keyring.parse(f"{new_key()},short", new_key())
    with pytest.raises(KeyringError, match="CHECKIN_INDEX_KEY"):
        Keyring.parse(new_key(), "")
    assert ring.blind("+8613800000001") == ring.blind("+8613800000001") != Keyring.generate().blind("+8613800000001")


def test_without_keys_the_cli_says_what_to_do(env, monkeypatch, tmp_path):
    monkeypatch.delenv("CHECKIN_DATA_KEYS")
    monkeypatch.delenv("CHECKIN_INDEX_KEY")
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en", "COLUMNS": "200"})
    listed = runner.invoke(app, ["roster", "list"])
    assert listed.exit_code == 2 and "no encryption keys" in listed.output
    refused = runner.invoke(app, ["init"])  # a database with data and no keys: nothing is made up
    assert refused.exit_code == 2 and "no keys to read it" in refused.output and not (tmp_path / "checkin.keys").exists()
    monkeypatch.setenv("CHECKIN_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    made = runner.invoke(app, ["init"])  # a new database: init makes its key file
    assert made.exit_code == 0 and "made new encryption keys in checkin.keys" in made.output, made.output
    assert oct((tmp_path / "checkin.keys").stat().st_mode & 0o777) == "0o600"
    assert runner.invoke(app, ["roster", "list"]).exit_code == 0
    monkeypatch.setenv("CHECKIN_DATA_KEYS", new_key())
    half = runner.invoke(app, ["roster", "list"])
    assert half.exit_code == 2 and "CHECKIN_INDEX_KEY" in half.output


async def test_purge_removes_personal_data_and_keeps_the_report(db):
    c = County(db)
    await _activity(c)
    with session_scope(c.engine) as s:  # 王伟's supervision ended at the end of March 2027
        s.execute(update(Supervisee).where(Supervisee.id == c.strict.id)
                  .values(supervision_end=date(2027, 3, 31), status="ended"))
    later = local(2032, 4, 2, 10)  # five years and two days on
    with session_scope(c.engine) as s:
        figures = compliance.report(s, "2027-03", zone=c.cfg.zone, policy=c.policy, now=later)
    with session_scope(c.engine) as s:
        dry = purge.purge(s, now=later, years=5, zone=c.cfg.zone, dry_run=True)
        s.rollback()
    assert dry.people == [c.strict.id] and dry.notified == 1
    assert dry.removed["written_reports"] == 1 and dry.removed["leave"] == 1 and dry.removed["messages"] > 5
    assert any("王伟" in row for row in _snapshot(c.engine)["Supervisee"])  # the dry run changed nothing
    with session_scope(c.engine) as s:
        done = purge.purge(s, now=later, years=5, zone=c.cfg.zone)
    assert done.removed == dry.removed and done.people == dry.people
    with session_scope(c.engine) as s:
        wang = s.get(Supervisee, c.strict.id)
        assert (wang.name, wang.phone, wang.phone_index, wang.case_number) == ("", None, None, f"purged-{wang.id}")
        assert wang.purged_at == later and wang.township == "红果镇" and wang.level == "strict"
        assert s.exec(select(WrittenReport)).all() == [] and s.exec(select(Leave)).all() == []
        assert [w.reason for w in s.exec(select(Warning_))] == [""]
        assert s.exec(select(Obligation).where(Obligation.supervisee_id == wang.id)).all()  # counted, kept
        (notice,) = s.exec(select(Message).where(Message.kind == purge.NOTICE_KIND)).all()
        assert notice.address == c.strict.phone and "2027-03-31" in notice.body and notice.supervisee_id is None
        assert queries.supervisee_by_phone(s, c.strict.phone) is None
        assert queries.supervisee_by_phone(s, c.lenient.phone).name == "Tom Lee"  # others untouched
        assert s.exec(select(Message).where(Message.supervisee_id == c.ordinary.id)).all()
        verdict = audit.verify(s)
        assert verdict.ok and verdict.purged >= 3  # the refusal, the warning, the message in his name
        assert audit.history(s, wang.id)[-1].action == "purge"
        after = compliance.report(s, "2027-03", zone=c.cfg.zone, policy=c.policy, now=later)
    assert after == figures
    stored = _every_stored_value(c.engine)
    assert [x for x in ("王伟", REPORT, LEAVE_REASON, WARNING, SAID) if x in stored] == []  # gone, not just encrypted
    with session_scope(c.engine) as s:
        s.execute(update(Message).where(Message.kind == purge.NOTICE_KIND).values(status="delivered"))
    rep = c.sweep(later + timedelta(minutes=5))
    assert rep.purge_notices_scrubbed == 1
    with session_scope(c.engine) as s:
        assert purge.purge(s, now=later, years=5, zone=c.cfg.zone).people == []  # once


async def test_purge_command(db, env):
    c = County(db)
    await _activity(c)
    with session_scope(c.engine) as s:
        s.execute(update(Supervisee).where(Supervisee.id == c.lenient.id)
                  .values(supervision_end=date(2020, 1, 31), status="ended"))
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en", "COLUMNS": "200"})
    dry = runner.invoke(app, ["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "1 people; 1 still reachable would be sent a last message" in dry.output
    with session_scope(c.engine) as s:
        assert s.get(Supervisee, c.lenient.id).purged_at is None
    done = runner.invoke(app, ["purge"])
    assert done.exit_code == 0 and "were sent a last message" in done.output
    with session_scope(c.engine) as s:
        assert s.get(Supervisee, c.lenient.id).name == ""
    again = runner.invoke(app, ["purge"])
    assert "0 people" in again.output


async def test_logs_carry_ids_not_phones_names_or_text(db, caplog):
    caplog.set_level(logging.DEBUG)
    c = County(db)
    await _activity(c)
    with session_scope(c.engine) as s:
        purge.purge(s, now=local(2033, 1, 1), years=5, zone=c.cfg.zone, dry_run=True)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) > 10  # the flows did log
    leaked = [(x, line) for line in lines for x in _secrets(c) if x in line]
    assert leaked == []
