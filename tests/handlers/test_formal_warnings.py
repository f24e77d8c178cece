"""The warnings ledger: recorded with a reason, the person told, amendments as new entries, scopes."""

from __future__ import annotations

from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from handlers import formal_warnings
from storage.db import session_scope
from storage.models import Warning_
from tests.sim import County, local

runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})


async def test_warning_by_chat_is_told_listed_and_scoped(db):
    c = County(db)
    t = local(2027, 3, 2, 10)
    await c.send("telegram", "5001", t, "/warn JZ-L three check-ins missed in a row")
    assert c.out(address="5001", kind="reply")[-1].body.startswith("已记录警告 #")
    told = c.out(kind="warning", address=c.lenient.phone)[0].body
    assert told == "Officer 李娜 has given you a warning. Reason: three check-ins missed in a row. If you have questions, contact your officer."
    await c.send("telegram", "5002", t, "警告 JZ-S 不在本镇")  # another township's officer
    assert c.out(address="5002", kind="reply")[-1].body == "JZ-S 不在您的管辖范围内。"
    await c.send("telegram", "5001", t, "警告记录 JZ-L")
    listing = c.out(address="5001", kind="reply")[-1].body
    assert listing.startswith("Tom Lee的警告（有效 1 条）") and "three check-ins missed" in listing
    await c.send("telegram", "5001", t, "/warn JZ-L")
    assert "用法" in c.out(address="5001", kind="reply")[-1].body


def test_cli_add_correct_withdraw_never_deletes(env):
    c = County(env)
    run = lambda *a: runner.invoke(app, list(a), env={"COLUMNS": "200"})  # noqa: E731
    first = run("warning", "add", "JZ-S", "--officer", str(c.li.id), "--reason", "未按时报到")
    assert first.exit_code == 0, first.output
    with session_scope(env.engine) as s:
        wid = s.exec(select(Warning_)).one().id
    assert run("warning", "correct", str(wid), "--officer", str(c.li.id), "--reason", "连续两天未报到").exit_code == 0
    listing = run("warning", "list", "JZ-S").output
    assert "连续两天未报到" in listing and "standing" in listing and "correction" in listing
    assert run("warning", "correct", str(wid), "--officer", str(c.li.id), "--reason", "已核实有病假",
               "--withdraw").exit_code == 0
    assert "withdrawn" in run("warning", "list", "JZ-S").output
    with session_scope(env.engine) as s:
        entries = s.exec(select(Warning_).order_by(Warning_.id)).all()
        assert [e.kind for e in entries] == ["warning", "correction", "withdrawal"]
        assert entries[0].reason == "未按时报到"  # the original stands as written
        assert formal_warnings.standing_ids(s, local(2027, 1, 1), local(2030, 1, 1)) == {}
    told = [m.body for m in c.out(kind="warning")]
    assert told[0].startswith("协管员李娜对您作出警告。原因：未按时报到") and "已更正" in told[1] and "已撤销" in told[2]
    refused = run("warning", "add", "JZ-S", "--officer", str(c.other.id), "--reason", "x")
    assert refused.exit_code == 2 and "not in officer" in refused.output
    assert run("warning", "add", "JZ-S", "--officer", str(c.li.id), "--reason", "  ").exit_code == 2
