"""The life of a case, on a simulated clock: pause and resume, level, language, time zone, channel, transfer,
early end, and lost contact found, escalated and cleared by the sweep; from the chat, the CLI and the roster."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date

import pytest
from sqlmodel import select, update
from typer.testing import CliRunner

from bot.cli import app
from handlers import compliance
from storage.db import session_scope
from storage.models import AuditEntry, Escalation, Leave, Supervisee
from tests.sim import SH, County, local, steps

runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})


def states(c: County, person, kind: str = "checkin", upto=None) -> dict[str, str]:
    return {o.period_key: o.state for o in c.obligations(person, kind) if upto is None or o.due_at < upto}


def audit_actions(c: County) -> list[tuple[str, str, str]]:
    with session_scope(c.engine) as s:
        return [(a.actor, a.action, a.subject) for a in s.exec(select(AuditEntry).order_by(AuditEntry.id))]


async def li(c: County, words: str, now) -> str:
    return "\n".join(r.text for r in (await c.send("telegram", "5001", now, words)).replies if r.to is None)


async def test_a_pause_excuses_everything_in_it_and_the_report_counts_the_person_apart(db):
    c = County(db)
    assert (await li(c, "/pause JZ-S 2027-03-02 2027-03-04 住院", local(2027, 3, 1, 20))) == (
        "✅ 王伟（JZ-S）从 2027-03-02 到 2027-03-04 暂停报到，期间不会提醒也不会记为未报到。")
    (told,) = c.out(kind="case_change", supervisee_id=c.strict.id)
    assert told.body.startswith("您的报到从 2027-03-02 到 2027-03-04 暂停。")
    for now in steps(local(2027, 3, 2, 8), local(2027, 3, 6, 14), minutes=30):
        c.sweep(now)
        t = now.astimezone(SH)
        if (t.hour, t.minute) == (9, 30) and t.day >= 5:
            await c.sms(c.strict, "1", now)
    assert states(c, c.strict, upto=local(2027, 3, 7)) == {
        "2027-03-02": "excused", "2027-03-03": "excused", "2027-03-04": "excused",
        "2027-03-05": "done", "2027-03-06": "done"}
    assert not [m for m in c.out(kind="checkin_prompt", supervisee_id=c.strict.id)
                if m.created_at < local(2027, 3, 5)]  # not prompted while paused
    assert not [e for e in c.escalations() if e.supervisee_id == c.strict.id]
    card = await li(c, "/case JZ-S", local(2027, 3, 3, 20))
    assert "暂停中：2027-03-02 至 2027-03-04，原因：住院" in card
    with session_scope(c.engine) as s:
        line = {f.township: f for f in compliance.report(s, "2027-03", zone=SH, policy=c.policy,
                                                         now=local(2027, 3, 3, 20))}["红果镇"]
    assert (line.paused, line.active) == (1, 2)  # 王伟 apart; 刘芳 and Tom Lee active
    assert ("officer:2", "case.pause", "case:JZ-S") in audit_actions(c)


async def test_resume_ends_a_pause_early_and_bad_pauses_are_refused_with_the_reason(db):
    c = County(db)
    await li(c, "/pause JZ-S 30 住院", local(2027, 3, 1, 8))
    with session_scope(c.engine) as s:
        assert s.get(Supervisee, c.strict.id).paused_until == date(2027, 3, 30)
    assert (await li(c, "/resume JZ-S", local(2027, 3, 3, 8))) == "✅ 王伟（JZ-S）恢复报到。"
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 4, 14), minutes=30):
        c.sweep(now)
    assert states(c, c.strict, upto=local(2027, 3, 5)) == {
        "2027-03-01": "excused", "2027-03-02": "excused", "2027-03-03": "missed", "2027-03-04": "missed"}
    assert (await li(c, "/resume JZ-S", local(2027, 3, 4, 15))).startswith("JZ-S 没有在暂停中。")
    refused = await li(c, "/pause JZ-S 2027-03-10 2027-03-05 住院", local(2027, 3, 4, 15))
    assert refused.startswith("结束日期 2027-03-05 早于开始日期 2027-03-10。\n用法：/pause")
    assert (await li(c, "/pause JZ-S 2027-03-10 2027-03-12", local(2027, 3, 4, 15))).startswith("请写明暂停的原因。")
    assert (await li(c, "/pause JZ-S 下周 住院", local(2027, 3, 4, 15))).startswith("看不懂日期“下周 住院”")
    assert (await c.send("telegram", "5002", local(2027, 3, 4, 15), "/pause JZ-S 3 住院")).replies[0].text == (
        "JZ-S 不在您的管辖范围内。")


async def test_a_level_change_replans_and_tells_the_person(db):
    c = County(db)
    c.sweep(local(2027, 3, 1, 8))
    assert len(states(c, c.strict)) == 3  # strict: daily
    assert (await li(c, "/level JZ-S 宽管", local(2027, 3, 1, 8, 5))).startswith("✅ 王伟（JZ-S）改为宽管")
    c.sweep(local(2027, 3, 1, 8, 10))
    assert list(states(c, c.strict)) == ["2027-03-01"]  # Mondays only now
    assert c.out(kind="case_change", supervisee_id=c.strict.id)[-1].body == "您的管理等级已调整为宽管，之后的报到按新等级安排。"
    assert (await li(c, "/level JZ-S 特管", local(2027, 3, 1, 9))).startswith("没有“特管”这个等级")


async def test_transfer_moves_alerts_and_leave_and_tells_both_officers(db):
    c = County(db)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 13, 30), minutes=30):
        c.sweep(now)
    await c.sms(c.strict, "请假 贵阳 3-10 3-12 看望母亲", local(2027, 3, 1, 14))
    refused = await li(c, f"/transfer JZ-S {c.other.id}", local(2027, 3, 1, 15))
    assert refused == "/transfer 只能由乡镇负责人或管理员使用。"
    done = (await c.send("telegram", "9000", local(2027, 3, 1, 15), f"/transfer JZ-S {c.other.id}")).replies
    assert done[0].text == "✅ 王伟（JZ-S）已转给赵强（两河镇）。"
    with session_scope(c.engine) as s:
        person = s.get(Supervisee, c.strict.id)
        assert (person.officer_id, person.township) == (c.other.id, "两河镇")
        assert {e.officer_id for e in s.exec(select(Escalation).where(Escalation.supervisee_id == person.id))} \
            == {c.other.id}
        assert s.exec(select(Leave)).one().officer_id == c.other.id
    (to_li,) = c.out(kind="case_change", address="5001")
    (to_zhao,) = c.out(kind="case_change", address="5002")
    assert to_li.body == "🔁 王伟（JZ-S）已转给赵强（两河镇）。"
    assert to_zhao.body == "🔁 王伟（JZ-S）从李娜（红果镇）转给您负责，一起转来待处理提醒 1 条、请假 1 项。"
    assert c.out(kind="case_change", supervisee_id=c.strict.id)[-1].body == "今后由协管员赵强负责您的社区矫正。"
    # The new officer acts at once; the old one no longer can.
    assert (await c.send("telegram", "5002", local(2027, 3, 1, 16), "/case JZ-S")).replies[0].text.startswith("王伟")
    assert (await li(c, "/case JZ-S", local(2027, 3, 1, 16))) == "JZ-S 不在您的管辖范围内。"
    assert ("officer:1", "case.transfer", "case:JZ-S") in audit_actions(c)


async def test_an_early_end_closes_everything_and_tells_the_person_only_where_fitting(db):
    c = County(db)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 13, 30), minutes=30):
        c.sweep(now)
    await c.sms(c.strict, "请假 贵阳 3-10 3-12 看望母亲", local(2027, 3, 1, 14))
    out = (await c.send("telegram", "1", local(2027, 3, 2, 8), "/end JZ-S 撤销 3月1日收监")).replies
    assert [r.text for r in out] == ["✅ 王伟（JZ-S）已解矫：撤销（收监）。未完成的事项已关闭。"]  # nobody else told
    c.sweep(local(2027, 3, 2, 9))
    with session_scope(c.engine) as s:
        person = s.get(Supervisee, c.strict.id)
        assert (person.status, person.ended_reason, person.supervision_end) == ("ended", "revoked", date(2027, 3, 2))
        assert {e.resolution for e in s.exec(select(Escalation).where(Escalation.supervisee_id == person.id))} \
            == {"case_ended"}
        assert s.exec(select(Leave)).one().state == "cancelled"
    assert Counter(states(c, c.strict).values()) == {"missed": 1, "excused": 2}  # what was planned is excused
    assert [m for m in c.out(supervisee_id=c.strict.id) if m.created_at >= local(2027, 3, 2, 8)] == []
    # Ended for good: no further change, and /case says how it ended.
    assert (await li(c, "/level JZ-S 普管", local(2027, 3, 2, 10))).startswith("JZ-S 已解矫，不能再更改。")
    assert "已解矫：撤销（收监），2027-03-02" in await li(c, "/case JZ-S", local(2027, 3, 2, 10))
    # Moved to another county: the person is told.
    await c.send("telegram", "9000", local(2027, 3, 2, 10), "/end JZ-O 迁出")
    assert c.out(kind="case_change", supervisee_id=c.ordinary.id)[-1].body.startswith("您的社区矫正已转到其他地方执行")


async def test_lost_contact_is_found_escalated_to_the_supervisor_and_cleared_by_an_answer(db):
    c = County(db)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 8, 9, 30), minutes=60):
        c.sweep(now)
    # Nothing answered since 3-1: a week on, at 09:00, the report's definition holds for all three.
    lost = {e.supervisee_id: e for e in c.escalations() if e.kind == "lost_contact"}
    assert set(lost) == {c.strict.id, c.ordinary.id, c.lenient.id}
    assert {e.opened_at for e in lost.values()} == {local(2027, 3, 8, 9)}
    assert c.person(c.strict).status == "lost_contact"
    to_boss = [m for m in c.out(address="9000") if (m.dedupe_key or "").startswith(f"esc:{lost[c.strict.id].id}:")]
    assert to_boss[0].body.startswith(f"🚨 脱管 #{lost[c.strict.id].id}：王伟（JZ-S，严管，红果镇）")
    assert "已 7 天没有报到回复，协管员也未联系上" in to_boss[0].body
    assert not [m for m in c.out(address="5001") if f"esc:{lost[c.strict.id].id}:" in (m.dedupe_key or "")]
    assert c.sweep(local(2027, 3, 8, 10)).lost_contact == 0  # once a day
    # 王伟 answers the check-in; 李娜 reaches 刘芳 by phone; Tom stays silent.
    await c.sms(c.strict, "1", local(2027, 3, 8, 10, 30))
    await c.send("telegram", "9000", local(2027, 3, 8, 10, 40), f"联系上 {lost[c.ordinary.id].id}")
    assert c.sweep(local(2027, 3, 8, 11)).contact_resumed == 2
    assert [c.person(p).status for p in (c.strict, c.ordinary, c.lenient)] == ["active", "active", "lost_contact"]
    closed = {e.supervisee_id: (e.state, e.resolution) for e in c.escalations() if e.kind == "lost_contact"}
    assert closed[c.strict.id] == ("resolved", "contact_resumed") and closed[c.ordinary.id] == ("resolved", "reached")
    assert closed[c.lenient.id] == ("open", None)
    assert c.out(kind="case_change", address="5001")[0].body == "☑ 王伟（JZ-S）已恢复联系，脱管提醒已关闭。"
    with session_scope(c.engine) as s:
        line = {f.township: f for f in compliance.report(s, "2027-03", zone=SH, policy=c.policy,
                                                         now=local(2027, 3, 8, 12))}["红果镇"]
    assert line.lost_contact == 1  # Tom, as the sweep says


async def test_a_paused_person_is_never_lost(db):
    c = County(db)
    await li(c, "/pause JZ-L 2027-03-01 2027-03-20 在看守所", local(2027, 3, 1, 7))
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 24, 10), minutes=120):
        c.sweep(now)
    lost = {e.supervisee_id for e in c.escalations() if e.kind == "lost_contact"}
    assert c.lenient.id not in lost and {c.strict.id, c.ordinary.id} <= lost
    # Back on the 21st, silent since: lost only a week after the pause, not at once (swept every two hours: the
    # first sweep after 09:00 on the 28th).
    for now in steps(local(2027, 3, 24, 10), local(2027, 3, 28, 11), minutes=120):
        c.sweep(now)
    assert c.lenient.id in {e.supervisee_id for e in c.escalations() if e.kind == "lost_contact"}
    (e,) = [e for e in c.escalations() if e.kind == "lost_contact" and e.supervisee_id == c.lenient.id]
    assert e.opened_at == local(2027, 3, 28, 10)


def test_the_cli_changes_a_case_audited_as_the_operator(db, monkeypatch, tmp_path):
    c = County(db)
    monkeypatch.setenv("CHECKIN_DATABASE_URL", db.url)
    monkeypatch.setenv("CHECKIN_CLOCK", "2027-03-01T10:00+08:00@1")
    for args, said in (
        (["case", "pause", "JZ-S", "--from", "2027-03-02", "--to", "2027-03-05", "--reason", "住院"],
         "JZ-S: paused 2027-03-02 to 2027-03-05; 1 message(s) queued"),
        (["case", "resume", "JZ-S"], "JZ-S: resumed; 1 message(s) queued"),
        (["case", "level", "JZ-S", "ordinary", "--officer", str(c.li.id)], "JZ-S: level ordinary"),
        (["case", "language", "JZ-S", "en"], "JZ-S: language en"),
        (["case", "timezone", "JZ-S", "Asia/Urumqi"], "JZ-S: time zone Asia/Urumqi"),
        (["case", "channel", "JZ-O", "sms"], "JZ-O: channel sms"),
        (["case", "transfer", "JZ-S", "--to", str(c.other.id)], "JZ-S: transferred to officer"),
        (["case", "end", "JZ-L", "--reason", "moved_out", "--note", "迁往贵阳"], "JZ-L: ended (moved_out)"),
    ):
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 0, (args, result.output)
        assert said in result.output, (args, result.output)
    with session_scope(c.engine) as s:
        wang = s.get(Supervisee, c.strict.id)
        assert (wang.level, wang.language, wang.timezone, wang.officer_id, wang.paused_until) == (
            "ordinary", "en", "Asia/Urumqi", c.other.id, None)
        assert s.get(Supervisee, c.ordinary.id).preferred_channel == "sms"
        assert s.get(Supervisee, c.lenient.id).ended_reason == "moved_out"
    actions = audit_actions(c)
    assert [a for _, a, _ in actions] == ["case.pause", "case.resume", "case.level", "case.language", "case.timezone",
                                          "case.channel", "case.transfer", "case.end"]
    assert actions[2][0].endswith(f" for officer:{c.li.id}") and actions[0][0].startswith("cli:")
    for args, error in (
        (["case", "level", "JZ-S", "harsh"], "There is no level \"harsh\""),
        (["case", "channel", "JZ-S", "telegram"], "JZ-S has no working Telegram chat."),
        (["case", "timezone", "JZ-S", "Mars/Olympus"], "Unknown time zone \"Mars/Olympus\""),
        (["case", "end", "JZ-L", "--reason", "ended"], "JZ-L has ended and can no longer be changed."),
        (["case", "pause", "JZ-9", "--from", "2027-03-02", "--to", "2027-03-05", "--reason", "x"], "no such case"),
        (["case", "transfer", "JZ-S", "--to", "999"], "--to=999: no officer with this id"),
    ):
        result = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert result.exit_code == 2 and error in result.output, (args, result.output)
    assert len(audit_actions(c)) == 8  # refusals change nothing


def test_a_roster_reimport_transfers_and_changes_level_as_the_chat_would(db):
    from handlers.roster import import_roster
    from tests.conftest import HEADER

    c = County(db)
    with session_scope(c.engine) as s:
        s.execute(update(Supervisee).where(Supervisee.id == c.strict.id).values(planned_until=None))
    row = f"JZ-S,王伟,13800000001,zh-CN,probation,lenient,两河镇,{c.other.id},2026-01-01,2028-01-01"
    with session_scope(c.engine) as s:
        result = import_roster(s, f"{HEADER}\n{row}\n", now=local(2027, 3, 1, 8, 5), actor="cli:alice")
        assert result.updated == 1 and result.notices == 4  # two officers and the person about the transfer; level
    assert [a for a in audit_actions(c) if a[0] == "cli:alice"] == [
        ("cli:alice", "case.transfer", "case:JZ-S"), ("cli:alice", "case.level", "case:JZ-S")]
    assert c.out(kind="case_change", address="5002")[0].body.startswith("🔁 王伟（JZ-S）从李娜（红果镇）转给您负责")


@pytest.mark.parametrize("sender", ["5001", "9000", "1"])
async def test_the_chat_commands_answer_usage_when_called_bare(db, sender):
    c = County(db)
    for command, usage in (("/pause", "用法：/pause 案号"), ("/resume", "用法：/resume 案号"),
                           ("/level", "用法：/level 案号"), ("/transfer", "用法：/transfer 案号"),
                           ("/end", "用法：/end 案号")):
        reply = (await c.send("telegram", sender, local(2027, 3, 1, 10), command)).replies[0].text
        assert reply.startswith(usage), (command, reply)
    assert json.dumps(audit_actions(c)) == "[]"
