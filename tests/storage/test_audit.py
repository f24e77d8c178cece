"""The audit trail: officers' and administrators' actions chained by hash; verify finds edits, deletions, reordering."""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from storage import audit
from storage.db import session_scope
from storage.models import AuditEntry
from tests.sim import County, local


async def _actions(c: County) -> None:
    """A morning's work for 李娜: an alert acknowledged, a warning, a message, a leave refused."""
    for now in (local(2027, 3, 1, 9), local(2027, 3, 1, 13)):
        c.sweep(now)
    esc = next(e for e in c.escalations() if e.supervisee_id == c.strict.id)
    await c.send("telegram", "5001", local(2027, 3, 1, 13, 10), f"知悉 {esc.id}")
    await c.send("telegram", "5001", local(2027, 3, 1, 13, 20), "/warn JZ-S 连续两天未报到")
    await c.send("telegram", "5001", local(2027, 3, 1, 13, 30), "/say JZ-S 明天上午来一趟")
    await c.sms(c.strict, "请假 贵阳 3-10 3-12 探亲", local(2027, 3, 1, 14))
    await c.send("telegram", "5001", local(2027, 3, 1, 14, 30), "拒绝 1 时间不合适")
    await c.send("telegram", "5002", local(2027, 3, 1, 14, 40), "/warn JZ-S 越权")  # refused: not recorded


def _entries(c: County) -> list[AuditEntry]:
    with session_scope(c.engine) as s:
        return list(s.exec(select(AuditEntry).order_by(AuditEntry.id)))


async def test_officer_actions_are_chained(db):
    c = County(db)
    await _actions(c)
    entries = _entries(c)
    assert [e.action for e in entries] == ["escalation.ack", "warning.add", "message.sent", "leave.refuse"]
    assert {e.actor for e in entries} == {f"officer:{c.li.id}"} and {e.supervisee_id for e in entries} == {c.strict.id}
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    assert "时间不合适" in entries[-1].details and "明天上午" not in entries[2].details  # no message text kept
    with session_scope(c.engine) as s:
        assert audit.verify(s) == audit.Verdict(True, 4)


def _broken(c: County) -> audit.Verdict:
    with session_scope(c.engine) as s:
        return audit.verify(s)


async def test_verify_finds_an_edited_entry(db):
    c = County(db)
    await _actions(c)
    second = _entries(c)[1]
    with c.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entry SET details = :d WHERE id = :i"), dict(d='{"reason": "无"}', i=second.id))
    verdict = _broken(c)
    assert (verdict.ok, verdict.first_bad, verdict.entries) == (False, second.id, 1)
    assert "changed" in verdict.reason


async def test_verify_finds_a_deleted_entry(db):
    c = County(db)
    await _actions(c)
    entries = _entries(c)
    with c.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE id = :i"), dict(i=entries[1].id))
    verdict = _broken(c)
    assert (verdict.ok, verdict.first_bad) == (False, entries[2].id) and "removed" in verdict.reason


async def test_verify_finds_reordered_entries(db):
    c = County(db)
    await _actions(c)
    a, b = _entries(c)[1:3]
    columns = ("at", "actor", "action", "supervisee_id", "subject", "details", "prev_hash", "hash")
    with c.engine.begin() as conn:  # swap the two entries' contents, keeping their ids: a reordering
        conn.execute(text("UPDATE audit_entry SET hash = :h WHERE id = :a"), dict(h="e" * 64, a=a.id))  # unique
        for target, source in ((b, a), (a, b)):
            conn.execute(text(f"UPDATE audit_entry SET {', '.join(f'{k} = :{k}' for k in columns)} WHERE id = :id"),
                         dict(id=target.id, **{k: getattr(source, k) for k in columns}))
    verdict = _broken(c)
    assert (verdict.ok, verdict.first_bad) == (False, a.id)


async def test_audit_commands(db, env):
    c = County(db)
    await _actions(c)
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en", "COLUMNS": "200"})
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "audit trail intact: 4 entries" in ok.output
    shown = runner.invoke(app, ["audit", "show", "--case", "JZ-S"])
    assert shown.exit_code == 0 and "leave.refuse" in shown.output and "李娜" in shown.output
    with c.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entry WHERE action = 'warning.add'"))
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1 and "audit trail broken at entry 3" in broken.output


async def test_verify_prints_the_head_and_expect_finds_a_cut_off_tail(db, env):
    c = County(db)
    await _actions(c)
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en", "COLUMNS": "200"})
    ok = runner.invoke(app, ["audit", "verify"])
    head = ok.output.split("head ")[1].split()[0]
    with session_scope(c.engine) as s:
        last = s.exec(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert ok.exit_code == 0 and head == last.hash and "4 entries" in ok.output
    assert runner.invoke(app, ["audit", "verify", "--expect", head]).exit_code == 0
    with c.engine.begin() as conn:  # the last entry removed: the rest still links up
        conn.execute(text("DELETE FROM audit_entry WHERE id = (SELECT max(id) FROM audit_entry)"))
    plain = runner.invoke(app, ["audit", "verify"])
    assert plain.exit_code == 0 and "3 entries" in plain.output  # undetectable without the earlier head
    cut = runner.invoke(app, ["audit", "verify", "--expect", head])
    assert cut.exit_code == 1 and "cut short" in cut.output and head in cut.output


def test_a_cli_action_for_an_officer_is_recorded_as_the_operator_acting_for_them(db, env):
    import getpass

    c = County(db)
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en", "COLUMNS": "200"})
    done = runner.invoke(app, ["warning", "add", "JZ-S", "--officer", str(c.li.id), "--reason", "连续三天未报到"])
    assert done.exit_code == 0, done.output
    with session_scope(c.engine) as s:
        entry = s.exec(select(AuditEntry)).one()
    assert entry.actor == f"cli:{getpass.getuser()} for officer:{c.li.id}" and entry.action == "warning.add"
