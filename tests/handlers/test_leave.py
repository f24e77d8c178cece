"""Leave: asking (one message or step by step, by SMS), deciding (buttons, text, CLI), the trip, the report back."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import update
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from handlers.contract import Inbound, Location
from handlers.leave import LeaveError, parse
from storage.db import session_scope
from storage.models import Leave, LocationCheck, Supervisee
from tests.sim import County, local

TODAY = date(2027, 3, 1)
GUIYANG = (26.60, 106.70)
BEIJING = (39.90, 116.40)


@pytest.mark.parametrize("words, expected", [
    ("贵阳 3-10 3-12 看望母亲", ("贵阳", date(2027, 3, 10), date(2027, 3, 12), "看望母亲")),
    ("贵阳市 3月10日至3月12日 看望母亲", ("贵阳市", date(2027, 3, 10), date(2027, 3, 12), "看望母亲")),
    ("Guangzhou 2027-04-01 to 2027-04-03 job interview", ("Guangzhou", date(2027, 4, 1), date(2027, 4, 3),
                                                          "job interview")),
    ("Guangzhou 2027-04-01 - 2027-04-03 job interview", ("Guangzhou", date(2027, 4, 1), date(2027, 4, 3),
                                                         "job interview")),
    ("遵义 3/5 复查", ("遵义", date(2027, 3, 5), date(2027, 3, 5), "复查")),  # one date: a day trip
    ("广州 1-05 1-08 打工", ("广州", date(2028, 1, 5), date(2028, 1, 8), "打工")),  # January is next year's
])
def test_one_message_requests_parse(words, expected):
    req = parse(words, TODAY)
    assert (req.destination, req.starts_on, req.ends_on, req.reason) == expected


@pytest.mark.parametrize("words, key", [
    ("贵阳 看望母亲", "no_dates"), ("3-10 3-12 看望母亲", "no_destination"), ("贵阳 3-10 3-12", "no_reason"),
    ("贵阳 2-30 3-02 看望母亲", "bad_date"),
])
def test_what_is_missing_is_named(words, key):
    with pytest.raises(LeaveError) as exc:
        parse(words, TODAY)
    assert exc.value.key == key


@pytest.fixture
def county(db) -> County:
    c = County(db)
    with session_scope(c.engine) as s:  # 王伟 (strict) on Telegram, so that his check-ins ask for a location
        s.execute(update(Supervisee).where(Supervisee.id == c.strict.id)
                  .values(telegram_chat_id=7001, preferred_channel="telegram"))
    return c


def leaves(c: County) -> list[Leave]:
    with session_scope(c.engine) as s:
        return list(s.exec(select(Leave).order_by(Leave.id)))


async def test_step_by_step_by_sms_then_approved_by_text(county):
    c, now = county, local(2027, 3, 1, 10)
    tom = c.lenient
    assert (await c.sms(tom, "LEAVE", now)).replies[0].text.startswith("Where are you going?")
    assert (await c.sms(tom, "Guangzhou, for work", now)).replies[0].text.startswith("When do you leave")
    assert (await c.sms(tom, "next week", now)).replies[0].text.startswith("No dates found.")
    assert (await c.sms(tom, "3-08 to 3-20", now)).replies[0].text.startswith("Why are you going?")
    done = await c.sms(tom, "A job interview and the first week of work.", now)
    (lv,) = leaves(c)
    assert done.replies[0].text.startswith(f"Leave request #{lv.id} sent: Guangzhou, for work, 2027-03-08 to 2027-03-20")
    assert (lv.state, lv.destination_area, lv.officer_id) == ("requested", "guangzhou", c.li.id)
    alert = c.out(dedupe_key=f"leave:{lv.id}:officer")[0]
    assert alert.address == "5001" and "去 Guangzhou, for work，2027-03-08 至 2027-03-20（13 天）" in alert.body
    buttons = json.loads(alert.payload)["buttons"]
    assert [b[1] for b in buttons] == [f"leave:{lv.id}:move", f"leave:{lv.id}:suspend", f"leave:{lv.id}:refuse"]
    assert buttons[0][0] == "批准（范围改为广州市）"
    # Another township's officer may not decide; 李娜 approves by text, the area moving to Guangzhou.
    refused = await c.send("telegram", "5002", now, f"批准 {lv.id}")
    assert refused.replies[0].text == f"请假申请 #{lv.id} 不归您审批。"
    ok = await c.send("telegram", "5001", now, f"批准 {lv.id}")
    assert ok.replies[0].text == f"✅ 请假 #{lv.id}：已批准（范围改为目的地） — 李娜"
    assert ok.replies[1].text.startswith(f"Your leave #{lv.id} is approved: Guangzhou, for work, 2027-03-08 to")
    assert "Your location may be in Guangzhou or the county." in ok.replies[1].text
    again = await c.send("telegram", "5001", now, f"拒绝 {lv.id}")
    assert again.replies[0].text == f"请假申请 #{lv.id} 已经处理过了（已批准）。"
    assert leaves(c)[0].mode == "move"


async def test_invalid_requests_are_explained_and_nothing_is_stored(county):
    c, now = county, local(2027, 3, 1, 10)
    for words, expected in (
        ("请假 贵阳 2-20 2-22 探亲", "出发日期最早只能是 2027-03-01。"),
        ("请假 贵阳 3-12 3-10 探亲", "结束日期 2027-03-10 早于开始日期 2027-03-12。"),
        ("请假 广州 3-01 4-30 打工", "请假 61 天，超过了最长 30 天。"),
        ("请假 贵阳 探亲", "没有找到日期。"),
    ):
        reply = (await c.sms(c.strict, words, now)).replies[0].text
        assert reply.startswith(expected) and "请假请发：请假 目的地" in reply, words
    assert leaves(c) == []
    await c.sms(c.strict, "请假 贵阳 3-10 3-12 探亲", now)
    clash = (await c.sms(c.strict, "请假 遵义 3-12 3-14 办事", now)).replies[0].text
    assert clash.startswith(f"与已有的请假 #{leaves(c)[0].id}（2027-03-10 至 2027-03-12）时间重叠。")


async def _location(c: County, where, now, chat="7001"):
    return await c.router.handle(c.engine, Inbound("telegram", chat, location=Location(*where, 20.0)), now)


def _checks(c: County) -> list[LocationCheck]:
    with session_scope(c.engine) as s:
        return list(s.exec(select(LocationCheck).order_by(LocationCheck.id)))


async def test_the_trip_with_the_area_moved_then_the_report_back(county):
    c = county
    await c.sms(c.strict, "请假 贵阳 3-10 3-12 看望母亲", local(2027, 3, 1, 10))
    (lv,) = leaves(c)
    assert lv.destination_area == "guiyang"
    press = await c.send("telegram", "5001", local(2027, 3, 1, 11), button=f"leave:{lv.id}:move")
    assert press.replies[0].edit_origin and press.replies[1].text.startswith(f"您的请假 #{lv.id} 已批准：贵阳")
    # Before the leave, Guiyang is out of area; during it, Guiyang is allowed (and home still is).
    c.sweep(local(2027, 3, 9, 9))
    await _location(c, GUIYANG, local(2027, 3, 9, 9, 10))
    for day in (10, 11):
        c.sweep(local(2027, 3, day, 9))
        assert (await _location(c, GUIYANG, local(2027, 3, day, 9, 10))).replies[0].text.startswith("已收到，谢谢")
    c.sweep(local(2027, 3, 12, 9))
    await _location(c, (27.10, 106.30), local(2027, 3, 12, 9, 10))  # home a day early: still fine
    assert [(r.inside, r.allowed_area, r.leave_id) for r in _checks(c)] == [
        (False, "county", None), (True, "county+guiyang", lv.id), (True, "county+guiyang", lv.id),
        (True, "county+guiyang", lv.id)]
    assert [e.kind for e in c.escalations() if e.supervisee_id == c.strict.id and e.kind != "lost_contact"] == [
        "out_of_area"]  # (a week with no answered check-in, as the simulation sweeps: lost contact too)
    # The last day's reminder, once; then he reports back and 李娜 is told.
    c.sweep(local(2027, 3, 12, 9, 30))
    c.sweep(local(2027, 3, 12, 10))
    (reminder,) = c.out(kind="leave_reminder")
    assert reminder.address == "7001" and reminder.body.startswith(f"今天是您请假 #{lv.id}（贵阳）的最后一天")
    back = await c.sms(c.strict, "销假", local(2027, 3, 12, 18))
    assert back.replies[0].text == "已销假，欢迎回来。已告知李娜。"
    assert back.replies[1].text.startswith(f"🏠 王伟（JZ-S）3月12日 18:00 销假（请假 #{lv.id}，贵阳）")
    assert leaves(c)[0].state == "returned"
    c.sweep(local(2027, 3, 14, 9))
    assert "leave_not_returned" not in [e.kind for e in c.escalations()]


async def test_suspended_check_and_a_person_who_does_not_report_back(county):
    c = county
    await c.sms(c.strict, "请假 北京 3-03 3-04 出差", local(2027, 3, 1, 10))
    (lv,) = leaves(c)
    assert lv.destination_area is None  # not a known area: only suspending is offered
    alert = c.out(dedupe_key=f"leave:{lv.id}:officer")[0]
    assert [b[1] for b in json.loads(alert.payload)["buttons"]] == [f"leave:{lv.id}:suspend", f"leave:{lv.id}:refuse"]
    nope = await c.send("telegram", "5001", local(2027, 3, 1, 11), f"批准 {lv.id} 移动")
    assert nope.replies[0].text == f"请假 #{lv.id} 的目的地“北京”不是已知区域，只能暂停位置核查。"
    await c.send("telegram", "5001", local(2027, 3, 1, 11), f"批准 {lv.id}")
    assert leaves(c)[0].mode == "suspend"
    c.sweep(local(2027, 3, 3, 9))
    reply = await _location(c, BEIJING, local(2027, 3, 3, 9, 10))
    assert reply.replies[0].text.startswith("位置已收到。您正在请假（北京）")
    assert _checks(c)[-1].inside is None and _checks(c)[-1].allowed_area is None
    # No report back: reminded on the 4th; escalated once 24 hours after the leave ended, and only once.
    c.sweep(local(2027, 3, 4, 9))
    c.sweep(local(2027, 3, 5, 23, 59))
    assert "leave_not_returned" not in [e.kind for e in c.escalations()]
    c.sweep(local(2027, 3, 6, 0, 1))
    (esc,) = [e for e in c.escalations() if e.kind == "leave_not_returned"]
    alert = c.out(dedupe_key=f"esc:{esc.id}:officer")[0]
    assert f"请假 #{lv.id}（北京）已于 2027-03-04 结束，至今未销假。" in alert.body
    await c.send("telegram", "5001", local(2027, 3, 6, 8), f"联系上 {esc.id}")
    c.sweep(local(2027, 3, 7, 9))
    assert len([e for e in c.escalations() if e.kind == "leave_not_returned"]) == 1
    # When he does report back, the leave is closed.
    await c.sms(c.strict, "销假", local(2027, 3, 7, 10))
    assert leaves(c)[0].state == "returned"


async def test_refusal_with_a_reason_and_cancelling_before_the_start(county):
    c = county
    await c.sms(c.strict, "请假 广州 3-10 3-20 打工", local(2027, 3, 1, 10))
    await c.sms(c.strict, "请假 贵阳 3-25 3-26 看病", local(2027, 3, 1, 10))
    first, second = leaves(c)
    refusal = await c.send("telegram", "5001", local(2027, 3, 1, 11), f"拒绝 {first.id} 外出时间太长")
    assert refusal.replies[1].text == (f"您的请假 #{first.id}（广州）没有获批。原因：外出时间太长。"
                                       "请不要离开本县，有疑问请联系李娜。")
    await c.send("telegram", "5001", local(2027, 3, 1, 11), f"批准 {second.id} 暂停")
    cancel = await c.sms(c.strict, "销假", local(2027, 3, 2, 10))  # before it began: calls it off
    assert cancel.replies[0].text == f"请假 #{second.id} 已取消，已告知李娜。"
    assert [lv.state for lv in leaves(c)] == ["refused", "cancelled"]
    assert (await c.sms(c.strict, "销假", local(2027, 3, 2, 10))).replies[0].text == "您现在没有请假，不需要销假。"


async def test_officers_list_and_the_cli(county, env):
    c = county
    await c.sms(c.strict, "请假 贵阳 3-10 3-12 看望母亲", local(2027, 3, 1, 10))
    await c.sms(c.lenient, "LEAVE Zunyi 3-15 3-16 wedding", local(2027, 3, 1, 10))
    listing = (await c.send("telegram", "5001", local(2027, 3, 1, 11), "/leaves")).replies[0].text
    assert listing.startswith("请假 2 条：") and "王伟（JZ-S）贵阳，2027-03-10 至 2027-03-12，待审批" in listing
    assert (await c.send("telegram", "5002", local(2027, 3, 1, 11), "/leaves")).replies[0].text == \
        "没有待审批或进行中的请假。"
    first, second = leaves(c)
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en", "COLUMNS": "250"})
    result = runner.invoke(app, ["leave", "list"])
    assert result.exit_code == 0 and "JZ-S" in result.output and "Guiyang" in result.output
    result = runner.invoke(app, ["leave", "approve", str(first.id), "--officer", str(c.other.id)])
    assert result.exit_code == 2 and f"Leave request #{first.id} is not yours to decide." in result.output
    result = runner.invoke(app, ["leave", "approve", str(first.id), "--officer", str(c.boss.id)])
    assert result.exit_code == 0 and f"leave {first.id}: approved (move)" in result.output
    result = runner.invoke(app, ["leave", "refuse", str(second.id), "--officer", str(c.admin.id),
                                 "--reason", "wedding date unconfirmed"])
    assert result.exit_code == 0
    told = c.out(dedupe_key=f"leave:{second.id}:decision:0")[0]
    assert told.address == c.lenient.phone and "Reason: wedding date unconfirmed." in told.body
    result = runner.invoke(app, ["leave", "list", "--state", "all"])
    assert "refused" in result.output and "approved" in result.output
    assert runner.invoke(app, ["leave", "list", "--state", "maybe"]).exit_code == 2
