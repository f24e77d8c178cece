"""Officer accounts: edit, deactivate with the caseload handed over; a departed officer can do nothing."""

from __future__ import annotations

import getpass

from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from storage.db import session_scope
from storage.models import AuditEntry, Escalation, Leave, Officer, Supervisee
from tests.sim import County, local, steps

runner = CliRunner(env={"CHECKIN_LANGUAGE": "en", "COLUMNS": "200"})


def cli(*args, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_edit_changes_only_what_is_given_and_audits_the_fields(db, env):
    c = County(db)
    assert "changed phone, language" in cli("officer", "edit", str(c.li.id), "--phone", "139 0000 7777",
                                            "--language", "en")
    with session_scope(c.engine) as s:
        li = s.get(Officer, c.li.id)
        assert (li.phone, li.language, li.name, li.township) == ("+8613900007777", "en", "李娜", "红果镇")
        entry = s.exec(select(AuditEntry)).one()
    assert (entry.actor, entry.action, entry.subject) == (f"cli:{getpass.getuser()}", "officer.edit",
                                                          f"officer:{c.li.id}")
    assert "7777" not in (entry.details or "")  # which fields changed, never their values
    assert "nothing to change" in cli("officer", "edit", str(c.li.id), "--language", "en")
    taken = cli("officer", "edit", str(c.li.id), "--telegram-id", "5002", code=2)
    assert "--telegram-id=5002: already used by officer" in taken
    assert "--language='fr'" in cli("officer", "edit", str(c.li.id), "--language", "fr", code=2)
    assert "no officer with id 999" in cli("officer", "edit", "999", "--name", "x", code=2)


async def test_deactivate_hands_everything_over_and_ends_access_at_once(db, env):
    c = County(db)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 13, 30)):
        c.sweep(now)  # open alerts for 李娜's people
    await c.sms(c.strict, "请假 贵阳 3-10 3-12 探亲", local(2027, 3, 1, 14))
    refused = cli("officer", "deactivate", str(c.li.id), code=2)
    assert "still supervises 3 people: give --reassign-to ID" in refused
    assert "must be another active assistant" in cli("officer", "deactivate", str(c.li.id), "--reassign-to",
                                                     str(c.admin.id), code=2)
    done = cli("officer", "deactivate", str(c.li.id), "--reassign-to", str(c.other.id))
    assert f"to officer {c.other.id}: 3 people" in done
    with session_scope(c.engine) as s:
        assert not s.get(Officer, c.li.id).active
        assert {p.officer_id for p in s.exec(select(Supervisee))} == {c.other.id}
        open_alerts = [e for e in s.exec(select(Escalation)) if e.state != "resolved"]
        assert open_alerts and {e.officer_id for e in open_alerts} == {c.other.id}
        assert s.exec(select(Leave)).one().officer_id == c.other.id
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "officer.deactivate")).one()
    assert entry.subject == f"officer:{c.li.id}"
    handled = await c.send("telegram", "5001", local(2027, 3, 1, 15), "/list")  # 李娜's chat: a stranger's now
    assert "本服务仅供社区矫正对象使用" in handled.replies[0].text
    await c.send("telegram", "5002", local(2027, 3, 1, 15), "/list")  # 赵强 has them
    assert "您负责 3 人" in c.out(address="5002", kind="reply")[-1].body
    assert "already deactivated" in cli("officer", "deactivate", str(c.li.id), code=2)
    listing = cli("officer", "list")
    assert any(line.split("│")[1].strip() == str(c.li.id) and line.rstrip("│ ").endswith("no")
               for line in listing.splitlines() if line.startswith("│"))
