"""A ladder with no dead end, on a simulated clock: officer, supervisor, administrators; reminders after an
acknowledgement; townships without a supervisor; working hours; undecided leave; officers who cannot be reached."""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlmodel import select, update

from content.policy import load_policy
from handlers import escalation
from handlers.failures import delivery_failed
from handlers.office_hours import is_working_day, office_open_at
from storage.db import session_scope
from storage.models import Escalation, EscalationKind, Leave, Message, Officer, Supervisee
from tests.factories import supervisee
from tests.sim import SH, County, local, steps


def _miss_monday(c: County, until: datetime) -> Escalation:
    """王伟 misses Monday's check-in (closed 13:00); the county is swept every 15 minutes until `until`."""
    for now in steps(local(2027, 3, 1, 8), until, minutes=15):
        c.sweep(now)
    return next(e for e in c.escalations() if e.kind == "missed_checkin" and e.supervisee_id == c.strict.id)


def _alerts_to(c: County, address: str, esc: Escalation) -> list[Message]:
    return [m for m in c.out(address=address) if (m.dedupe_key or "").startswith(f"esc:{esc.id}:")]


def hm(dt: datetime) -> str:
    return dt.astimezone(SH).strftime("%m-%d %H:%M")


async def test_unacted_alert_climbs_to_the_supervisor_then_every_administrator(db):
    c = County(db)
    esc = _miss_monday(c, local(2027, 3, 2, 8))
    (to_li,) = _alerts_to(c, "5001", esc)
    (to_boss,) = _alerts_to(c, "9000", esc)
    (to_admin,) = _alerts_to(c, "1", esc)
    assert [hm(m.created_at) for m in (to_li, to_boss, to_admin)] == ["03-01 13:00", "03-01 17:00", "03-02 01:00"]
    # 17:00 + 8 h is after the office closed: the administrators' alert waits for the morning.
    assert hm(to_admin.next_attempt_at) == "03-02 08:30"
    assert "李娜、张主任 3月1日 13:00 收到，未处理。" in to_admin.body
    esc = c.escalations()[0]
    assert (esc.rung, esc.next_step_at, esc.admins_notified_at is not None) == (2, None, True)
    assert c.sweep(local(2027, 3, 9, 9)).stepped_up == 0  # the last rung: nothing further, nothing repeated


async def test_an_acknowledged_alert_needs_an_outcome_or_it_reminds_then_steps_up(db):
    c = County(db)
    esc = _miss_monday(c, local(2027, 3, 1, 13, 15))
    await c.send("telegram", "5001", local(2027, 3, 1, 14), f"知悉 {esc.id}")
    for now in steps(local(2027, 3, 1, 14), local(2027, 3, 2, 19), minutes=30):
        c.sweep(now)
    reminder, = [m for m in _alerts_to(c, "5001", esc) if m.dedupe_key.endswith(":outcome:0")]
    assert hm(reminder.created_at) == "03-02 14:00"
    assert reminder.body.startswith(f"⏰ 提醒 #{esc.id}：王伟（JZ-S）未报到，您 3月1日 14:00 已知悉，还未记录处理结果。")
    assert [b[1] for b in json.loads(reminder.payload)["buttons"]] == [
        f"esc:{esc.id}:reached", f"esc:{esc.id}:unreachable", f"esc:{esc.id}:excuse"]
    (to_boss,) = _alerts_to(c, "9000", esc)
    assert hm(to_boss.created_at) == "03-02 18:00"  # the officer's 4 h after the reminder
    assert "李娜 3月1日 14:00 已知悉，但未记录处理结果。" in to_boss.body
    assert c.escalations()[0].state == "open"  # the supervisor owes an action now


async def test_an_outcome_in_time_ends_the_ladder(db):
    c = County(db)
    esc = _miss_monday(c, local(2027, 3, 1, 13, 15))
    await c.send("telegram", "5001", local(2027, 3, 1, 14), f"知悉 {esc.id}")
    await c.send("telegram", "5001", local(2027, 3, 2, 10), f"联系上 {esc.id}")
    for now in steps(local(2027, 3, 1, 14), local(2027, 3, 5, 18), minutes=60):
        c.sweep(now)
    assert [m.dedupe_key for m in _alerts_to(c, "5001", esc)] == [f"esc:{esc.id}:officer"]
    assert _alerts_to(c, "9000", esc) == [] and c.escalations()[0].resolution == "reached"


async def test_a_township_without_a_supervisor_goes_to_the_administrators(db):
    c = County(db)
    person = supervisee(c.engine, local(2027, 3, 1), c.other.id, case_number="JZ-Q", name="王强", township="两河镇",
                       phone="+8613900001234", level="strict")
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 18), minutes=15):
        c.sweep(now)
    esc = next(e for e in c.escalations() if e.supervisee_id == person.id)
    assert [hm(m.created_at) for m in _alerts_to(c, "5002", esc)] == ["03-01 13:00"]
    (to_admin,) = _alerts_to(c, "1", esc)
    assert hm(to_admin.created_at) == "03-01 17:00" and "赵强 3月1日 13:00 收到，未处理。" in to_admin.body
    assert c.escalations()[-1].rung == 2


async def test_an_officer_nobody_can_reach_is_skipped_not_written_to(db):
    c = County(db)
    with session_scope(c.engine) as s:  # 李娜 has lost her phone and left Telegram
        s.execute(update(Officer).where(Officer.id == c.li.id).values(telegram_id=None, phone=None))
    esc = _miss_monday(c, local(2027, 3, 1, 13, 15))
    assert _alerts_to(c, "5001", esc) == [] and [m.channel for m in c.out(officer_id=c.li.id)] == []
    (to_boss,) = _alerts_to(c, "9000", esc)
    assert hm(to_boss.created_at) == "03-01 13:00" and c.escalations()[0].rung == 1


async def test_urgent_alerts_go_at_once_others_wait_for_the_office(db):
    c = County(db)
    saturday_night = local(2027, 3, 6, 23)
    with session_scope(c.engine) as s:
        person = s.get(Supervisee, c.strict.id)
        urgent = escalation.open_escalation(s, person, EscalationKind.out_of_area, saturday_night, c.policy, SH)
        calm = escalation.open_escalation(s, person, EscalationKind.study_shortfall, saturday_night, c.policy, SH)
        ids = urgent.id, calm.id
        assert hm(urgent.next_step_at) == "03-07 03:00" and hm(calm.next_step_at) == "03-08 12:30"
    (now_sent,) = c.out(dedupe_key=f"esc:{ids[0]}:officer")
    (monday,) = c.out(dedupe_key=f"esc:{ids[1]}:officer")
    assert hm(now_sent.next_attempt_at) == "03-06 23:00" and hm(monday.next_attempt_at) == "03-08 08:30"


def test_working_days_know_public_holidays_and_the_weekends_worked_for_them():
    p = load_policy()
    assert not is_working_day(date(2026, 10, 1), p, "CN")  # National Day
    assert is_working_day(date(2026, 10, 10), p, "CN")  # a Saturday worked in exchange
    assert not is_working_day(date(2026, 10, 11), p, "CN")
    assert is_working_day(date(2026, 10, 12), p, "CN")
    before = datetime(2026, 9, 30, 18, tzinfo=SH)
    assert office_open_at(before, p, SH, "CN") == datetime(2026, 10, 8, 8, 30, tzinfo=SH)
    unknown = office_open_at(datetime(2026, 10, 1, 9, tzinfo=SH), p, SH, "XX")  # a country nobody knows: weekdays
    assert unknown == datetime(2026, 10, 1, 9, tzinfo=SH)


async def _ask_leave(c: County, now: datetime) -> Leave:
    for words in ("请假", "贵阳", "3月20日到3月22日", "探望母亲"):
        await c.sms(c.strict, words, now)
    with session_scope(c.engine) as s:
        return s.exec(select(Leave).where(Leave.supervisee_id == c.strict.id)).one()


async def test_leave_nobody_decides_becomes_an_alert_and_deciding_it_settles_the_alert(db):
    c = County(db)
    leave = await _ask_leave(c, local(2027, 3, 1, 10))
    assert leave.state == "requested"
    c.sweep(local(2027, 3, 3, 9, 59))
    assert [e for e in c.escalations() if e.kind == "leave_undecided"] == []
    report = c.sweep(local(2027, 3, 3, 10))
    assert report.leave_undecided == 1 and c.sweep(local(2027, 3, 3, 10, 5)).leave_undecided == 0
    (esc,) = [e for e in c.escalations() if e.kind == "leave_undecided"]
    (alert,) = _alerts_to(c, "5001", esc)
    assert alert.body.startswith(f"🧳 请假待审批 #{esc.id}：王伟（JZ-S，严管，红果镇）")
    assert f"请假 #{leave.id}：贵阳，2027-03-20 至 2027-03-22，3月1日 10:00 申请，至今无人审批。" in alert.body
    buttons = json.loads(alert.payload)["buttons"]
    assert [b[1] for b in buttons] == [f"leave:{leave.id}:approve", f"leave:{leave.id}:refuse"]
    # The supervisor decides it from the alert that reached them.
    c.sweep(local(2027, 3, 3, 14, 5))
    assert _alerts_to(c, "9000", esc)
    handled = await c.send("telegram", "9000", local(2027, 3, 3, 15), button=f"leave:{leave.id}:approve")
    assert handled.replies[0].text.startswith(f"✅ 请假 #{leave.id}")
    with session_scope(c.engine) as s:
        assert s.get(Leave, leave.id).state == "approved"
        settled = s.get(Escalation, esc.id)
        assert (settled.state, settled.resolution, settled.next_step_at) == ("resolved", "decided", None)


async def test_leave_withdrawn_before_anyone_decides_settles_its_alert(db):
    c = County(db)
    await _ask_leave(c, local(2027, 3, 1, 10))
    c.sweep(local(2027, 3, 3, 10))
    await c.sms(c.strict, "销假", local(2027, 3, 3, 11))
    (esc,) = [e for e in c.escalations() if e.kind == "leave_undecided"]
    assert (esc.state, esc.resolution) == ("resolved", "decided")


async def test_an_alert_that_cannot_reach_the_officer_goes_by_their_other_channel_and_to_their_supervisor(db):
    c = County(db)
    with session_scope(c.engine) as s:
        s.execute(update(Officer).where(Officer.id == c.li.id).values(phone="+8613700000005"))
    esc = _miss_monday(c, local(2027, 3, 1, 13, 15))
    (alert,) = _alerts_to(c, "5001", esc)
    with session_scope(c.engine) as s:  # Telegram says 李娜 blocked the bot
        s.execute(update(Message).where(Message.id == alert.id).values(status="failed", error_code="403"))
        delivery_failed(s, alert.id, "403", local(2027, 3, 1, 13, 1), zone=SH, policy=c.policy)
        delivery_failed(s, alert.id, "403", local(2027, 3, 1, 13, 2), zone=SH, policy=c.policy)  # once only
    (again,) = c.out(dedupe_key=f"officer_fallback:{alert.id}")
    assert (again.channel, again.address, again.body) == ("sms", "+8613700000005", alert.body)
    (notice,) = c.out(kind="delivery_failed")
    assert notice.address == "9000" and notice.body.startswith("⚠ 发给李娜的消息未能送达（Telegram）。")
    assert alert.body in notice.body
    assert [b[1] for b in json.loads(notice.payload)["buttons"]][0] == f"esc:{esc.id}:ack"  # act from it
    with session_scope(c.engine) as s:  # the SMS copy fails too, and the notice: no chain of notices follows
        delivery_failed(s, again.id, "21610", local(2027, 3, 1, 13, 5), zone=SH, policy=c.policy)
        delivery_failed(s, notice.id, "403", local(2027, 3, 1, 13, 5), zone=SH, policy=c.policy)
    assert len(c.out(kind="delivery_failed")) == 1
    assert c.out(dedupe_key=f"officer_fallback:{again.id}") == [] == c.out(dedupe_key=f"officer_fallback:{notice.id}")


async def test_a_supervisor_who_cannot_be_reached_is_covered_by_the_administrators(db):
    c = County(db)
    esc = _miss_monday(c, local(2027, 3, 1, 17, 15))
    (to_boss,) = _alerts_to(c, "9000", esc)
    with session_scope(c.engine) as s:
        delivery_failed(s, to_boss.id, "403", local(2027, 3, 1, 17, 1), zone=SH, policy=c.policy)
    (notice,) = c.out(kind="delivery_failed")
    assert notice.address == "1" and notice.body.startswith("⚠ 发给张主任的消息未能送达（Telegram）。")


async def test_many_alerts_at_once_come_as_one_list_on_every_rung(db):
    c = County(db)
    for n in range(4):  # 李娜 has seven strict people now; none answers Monday's check-in
        supervisee(c.engine, local(2027, 3, 1), c.li.id, case_number=f"JZ-{n}", name=f"张{n}",
                   phone=f"+861390000000{n}", level="strict")
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 17, 15), minutes=15):
        c.sweep(now)
    assert [m for m in c.out(kind="escalation") if m.address in ("5001", "9000")] == []
    (to_li,) = c.out(kind="escalation_bulk", address="5001")
    (to_boss,) = c.out(kind="escalation_bulk", address="9000")
    assert (hm(to_li.created_at), hm(to_boss.created_at)) == ("03-01 13:00", "03-01 17:00")
    assert to_li.body.splitlines()[0] == "⚠ 7 条新提醒（第 1-7 条）："
    assert len(json.loads(to_boss.payload)["buttons"]) == 7
    esc_id = int(json.loads(to_boss.payload)["buttons"][3][1].split(":")[1])
    shown = (await c.send("telegram", "9000", local(2027, 3, 1, 17, 20), button=f"esc:{esc_id}:show")).replies[0]
    assert "李娜 3月1日 13:00 收到，未处理。" in shown.text
    await c.send("telegram", "9000", local(2027, 3, 1, 17, 21), button=f"esc:{esc_id}:reached")
    with session_scope(c.engine) as s:
        assert s.get(Escalation, esc_id).resolution == "reached"
    # Someone else's alert cannot be opened from a forged button.
    refused = (await c.send("telegram", "5002", local(2027, 3, 1, 17, 22), button=f"esc:{esc_id}:show")).replies
    assert refused[0].text.startswith(f"提醒 #{esc_id} 不归您处理")


async def test_a_list_of_alerts_reaches_an_officer_on_sms_with_how_to_answer(db):
    c = County(db)
    with session_scope(c.engine) as s:
        s.execute(update(Officer).where(Officer.id == c.li.id).values(telegram_id=None, phone="+8613700000005"))
    for n in range(3):
        supervisee(c.engine, local(2027, 3, 1), c.li.id, case_number=f"JZ-{n}", name=f"张{n}",
                   phone=f"+861390000000{n}", level="strict")
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 13, 15), minutes=15):
        c.sweep(now)
    (listed,) = c.out(kind="escalation_bulk", address="+8613700000005")
    assert listed.channel == "sms" and json.loads(listed.payload)["sms_hint"].startswith("短信回复：知悉 编号")
