"""The sweep walked through simulated time with `now` passed in: cadence, quiet hours, reminders, escalation."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from sqlmodel import select

from storage.db import session_scope
from storage.models import Supervisee
from tests.sim import SH, County, local, steps


def hhmm(m):
    return m.created_at.astimezone(SH).strftime("%H:%M")


@pytest.mark.slow
async def test_a_simulated_month_for_each_level(db):
    c = County(db)
    strict_forgets, strict_late_day, acked_day = {3, 10, 17}, 17, 10
    for now in steps(local(2027, 3, 1), local(2027, 4, 1)):
        c.sweep(now)
        t = now.astimezone(SH)
        # 王伟 (strict, SMS) answers "1" at 09:30, except on three days; on the 17th he answers late.
        if (t.hour, t.minute) == (9, 30) and t.day not in strict_forgets:
            await c.sms(c.strict, "1", now)
        if (t.day, t.hour, t.minute) == (strict_late_day, 14, 0):
            await c.sms(c.strict, "1", now)
        # 李娜 acknowledges the alert of the 10th at 13:30; the one of the 3rd she never touches.
        if (t.day, t.hour, t.minute) == (acked_day, 13, 30):
            (label, data) = c.last_buttons("5001")[0]
            await c.send("telegram", "5001", now, label, button=data)
        # 刘芳 (ordinary, Telegram) presses the button after the reminder.
        if (t.hour, t.minute) == (11, 30) and c.last_buttons("7002"):
            data = c.last_buttons("7002")[0][1]
            await c.send("telegram", "7002", now, button=data)
        # Tom (lenient, SMS) answers at once.
        if (t.hour, t.minute) == (9, 0):
            await c.sms(c.lenient, "ok", now)
        # Reports: 王伟 every Friday, the others on the 25th.
        if (t.hour, t.minute) == (10, 0) and (t.weekday() == 4 or t.day == 25):
            people = [c.strict] if t.weekday() == 4 else []
            people += [c.ordinary, c.lenient] if t.day == 25 else []
            for p in people:
                await c.sms(p, "汇报 本周按时上班，参加了学习。", now)
                await c.sms(p, "完成", now)

    prompts = Counter((m.address, m.kind) for m in c.out(kind=["checkin_prompt", "checkin_reminder"]))
    assert prompts[(c.strict.phone, "checkin_prompt")] == 31
    assert prompts[("7002", "checkin_prompt")] == 9  # Mondays and Thursdays of March 2027
    assert prompts[(c.lenient.phone, "checkin_prompt")] == 5  # Mondays
    assert prompts[(c.strict.phone, "checkin_reminder")] == 3  # only the days he forgot or was late
    assert prompts[("7002", "checkin_reminder")] == 9
    assert prompts[(c.lenient.phone, "checkin_reminder")] == 0
    assert {hhmm(m) for m in c.out(kind="checkin_prompt")} == {"09:00"}
    assert {hhmm(m) for m in c.out(kind="checkin_reminder")} == {"11:00"}

    # Quiet hours: nothing the scheduler sends reaches a person between 21:00 and 08:00.
    for m in c.out(supervisee_id=[c.strict.id, c.ordinary.id, c.lenient.id]):
        assert "08:00" <= hhmm(m) < "21:00", (m.kind, hhmm(m))

    def march(person, kind="checkin"):
        return Counter(o.state for o in c.obligations(person, kind) if o.due_at < local(2027, 4, 1))

    assert march(c.strict) == {"done": 28, "missed": 2, "late": 1}
    assert march(c.ordinary) == {"done": 9}
    assert march(c.strict, "report") == {"done": 4}
    assert march(c.lenient, "report") == {"done": 1}

    # Nobody studies in this month: reminded on the 20th, escalated on the 25th, at 09:00.
    quizzes = Counter(m.supervisee_id for m in c.out(kind="study_quiz"))
    assert quizzes[c.strict.id] == quizzes[c.lenient.id] == 5  # every Wednesday
    assert quizzes[c.ordinary.id] > 5  # 刘芳 presses the first button: right answers pass, wrong ones resend
    with session_scope(c.engine) as s:
        from storage.models import StudyProgress

        passed = s.exec(select(StudyProgress).where(StudyProgress.state == "passed")).all()
    assert passed and {p.supervisee_id for p in passed} == {c.ordinary.id} and all(p.minutes == 60 for p in passed)
    assert sorted((m.supervisee_id, hhmm(m), m.created_at.astimezone(SH).day) for m in c.out(kind="study_shortfall")) \
        == [(p.id, "09:00", 20) for p in (c.strict, c.ordinary, c.lenient)]
    shortfall = [e for e in c.escalations() if e.kind == "study_shortfall"]
    assert sorted(e.supervisee_id for e in shortfall) == [c.strict.id, c.ordinary.id, c.lenient.id]
    assert {e.opened_at.astimezone(SH).day for e in shortfall} == {25}
    escalations = [e for e in c.escalations() if not e.kind.endswith("_shortfall")]
    assert [(e.kind, e.officer_id, e.opened_at.astimezone(SH).day) for e in escalations] == [
        ("missed_checkin", c.li.id, d) for d in sorted(strict_forgets)
    ]
    first, acked, late = escalations
    assert hhmm_dt(first.opened_at) == "13:00" and first.supervisor_id == c.boss.id
    assert hhmm_dt(first.supervisor_notified_at) == "17:00" and first.state == "open"
    # Acknowledged with no outcome: reminded a day later, then (4 h on) the supervisor's, who got it the next
    # morning (17:30 is after hours) and did nothing either: then the administrators'.
    (reminder,) = c.out(dedupe_key=f"esc:{acked.id}:outcome:0")
    assert reminder.created_at == local(2027, 3, 11, 13, 30)
    assert acked.supervisor_id == c.boss.id and hhmm_dt(acked.supervisor_notified_at) == "17:30"
    assert acked.rung == 2 and acked.admins_notified_at == local(2027, 3, 12, 16, 30)
    assert first.rung == 2 and first.admins_notified_at is not None  # nobody acted: the administrators
    assert late.state == "resolved" and late.resolution == "answered_late" and late.supervisor_id is None

    alert = c.out(kind="escalation", address="5001")[0]
    assert "王伟（JZ-S，严管，红果镇）" in alert.body
    assert "09:00 已提醒，11:00 再次提醒，均未回复" in alert.body
    assert "电话：138 0000 0001" in alert.body and "上次联系：3月2日 09:30（报到）" in alert.body
    to_boss, acked_to_boss = [m for m in c.out(kind="escalation", address="9000") if "未报到" in m.body]
    assert "李娜 3月3日 13:00 收到，未处理" in to_boss.body
    assert "李娜 3月10日 13:30 已知悉，但未记录处理结果" in acked_to_boss.body
    (closed,) = c.out(kind="escalation_closed")
    assert closed.address == "5001" and "14:00" in closed.body


def hhmm_dt(dt):
    return dt.astimezone(SH).strftime("%H:%M")


async def test_sweeping_twice_at_the_same_instant_changes_nothing(db):
    c = County(db)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 14)):
        c.sweep(now)
    before = (len(c.out()), [(o.id, o.state) for o in c.obligations(c.strict)], len(c.escalations()))
    again = c.sweep(local(2027, 3, 1, 13, 30))
    assert not any(v for k, v in again.as_dict().items())
    assert (len(c.out()), [(o.id, o.state) for o in c.obligations(c.strict)], len(c.escalations())) == before


async def test_answer_within_window_closes_and_says_when_next(db):
    c = County(db)
    c.sweep(local(2027, 3, 1, 9))
    await c.sms(c.strict, "1", local(2027, 3, 1, 9, 12))
    reply = c.out(address=c.strict.phone, kind="reply")[-1]
    assert reply.body == "已收到，谢谢。下次报到：明天 09:00。"
    assert c.obligations(c.strict)[0].state == "done"
    c.sweep(local(2027, 3, 1, 13))
    assert [e for e in c.escalations() if e.supervisee_id == c.strict.id] == []
    assert c.out(kind="checkin_reminder", address=c.strict.phone) == []
    assert c.person(c.strict).last_contact_kind == "checkin"


async def test_asking_for_the_officer_opens_an_escalation_at_once(db):
    c = County(db)
    c.sweep(local(2027, 3, 1, 9))
    await c.sms(c.strict, "2", local(2027, 3, 1, 9, 5))
    assert c.obligations(c.strict)[0].state == "done"
    (esc,) = [e for e in c.escalations() if e.supervisee_id == c.strict.id]
    assert (esc.kind, esc.officer_id, esc.state) == ("asked_officer", c.li.id, "open")
    (alert,) = [m for m in c.out(kind="escalation") if "JZ-S" in m.body]
    assert alert.address == "5001" and alert.body.startswith(f"☎ 请求联系 #{esc.id}：王伟")
    assert "09:05 回复报到时请求联系协管员" in alert.body and "138 0000 0001" in alert.body
    assert "已通知李娜" in c.out(kind="reply", address=c.strict.phone)[-1].body
    for now in steps(local(2027, 3, 1, 9, 30), local(2027, 3, 1, 14)):
        c.sweep(now)
    assert [e.kind for e in c.escalations() if e.supervisee_id == c.strict.id] == ["asked_officer"]


async def test_answer_with_nothing_open(db):
    c = County(db)
    c.sweep(local(2027, 3, 1, 8))
    await c.sms(c.strict, "1", local(2027, 3, 1, 8, 30))
    assert c.out(kind="reply")[-1].body == "现在没有需要回复的报到。下次报到：今天 09:00。"


async def test_catch_up_after_a_three_day_outage(db):
    c = County(db)
    c.sweep(local(2027, 3, 1, 8))  # planned to 3 days ahead, then the service is down
    c.sweep(local(2027, 3, 4, 10))
    prompts = c.out(kind="checkin_prompt", address=c.strict.phone)
    assert [p.created_at for p in prompts] == [local(2027, 3, 4, 10)]  # only today's, still open
    assert "13:00" in prompts[0].body
    states = [(o.period_key, o.state) for o in c.obligations(c.strict)]
    assert states[:4] == [("2027-03-01", "missed"), ("2027-03-02", "missed"), ("2027-03-03", "missed"),
                          ("2027-03-04", "prompted")]
    # 王伟 three days; 刘芳 and Tom on Monday: five alerts at once come as one list, a button each.
    assert c.out(kind="escalation", address="5001") == []
    (listed,) = c.out(kind="escalation_bulk", address="5001")
    assert listed.body.startswith("⚠ 5 条新提醒（第 1-5 条）：\n· #1 未报到：王伟（JZ-S）")
    buttons = json.loads(listed.payload)["buttons"]
    assert len(buttons) == 5 and buttons[0] == ["#1 王伟", "esc:1:show"]
    for label, data in buttons:  # each opens its alert, with what happened
        shown = (await c.send("telegram", "5001", local(2027, 3, 4, 10), button=data)).replies[0]
        assert "服务中断" in shown.text and [b.data for b in shown.buttons][0] == data.replace("show", "ack")
    assert c.out(kind="checkin_reminder") == []  # no reminders for windows long gone
    sent = len(c.out())
    c.sweep(local(2027, 3, 4, 10, 1))
    assert len(c.out()) == sent  # no burst on the next tick


async def test_supervision_ended_gets_nothing(db):
    c = County(db)
    with session_scope(c.engine) as s:
        p = s.get(Supervisee, c.strict.id)
        p.supervision_end = local(2027, 3, 2).astimezone(SH).date()
        s.add(p)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 5)):
        c.sweep(now)
    assert c.person(c.strict).status == "ended"
    prompt_days = [m.created_at.astimezone(SH).day for m in c.out(kind="checkin_prompt", address=c.strict.phone)]
    assert prompt_days == [1, 2]
    assert {o.state for o in c.obligations(c.strict) if o.due_at > local(2027, 3, 3)} <= {"excused"}
    assert [e.obligation_id for e in c.escalations() if e.supervisee_id == c.strict.id] == [
        o.id for o in c.obligations(c.strict)[:2]
    ]


async def test_planning_is_bounded_per_sweep(db, tmp_path):
    from content.policy import load_policy

    f = tmp_path / "p.toml"
    f.write_text("[planning]\npeople_per_sweep = 2", encoding="utf-8")
    c = County(db, policy=load_policy(f))
    reports = [c.sweep(local(2027, 3, 1, 7, m)) for m in range(3)]
    assert [r.planned_people for r in reports] == [2, 1, 0]
    assert reports[2].planned == 0


async def test_quiet_hours_hold_a_reminder_until_morning(db, tmp_path):
    from content.policy import load_policy

    f = tmp_path / "p.toml"
    f.write_text('[checkin.strict]\ntime = "19:30"\n[window]\nreply_hours = 16\nreminder_hours = 2',
                 encoding="utf-8")
    c = County(db, policy=load_policy(f))
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 2, 12), minutes=15):
        c.sweep(now)
    prompt, reminder = [m for m in c.out(address=c.strict.phone, kind=["checkin_prompt", "checkin_reminder"])
                        if m.dedupe_key.endswith(f":{c.obligations(c.strict)[1].id}")]
    assert c.obligations(c.strict)[1].period_key == "2027-03-01"
    assert hhmm(prompt) == "19:30" and hhmm(reminder) == "08:00"  # 21:30 is quiet
    assert reminder.created_at.astimezone(SH).day == 2


async def test_alerts_that_are_not_urgent_wait_for_working_hours(db, tmp_path):
    from content.policy import load_policy

    f = tmp_path / "p.toml"
    f.write_text('[checkin.strict]\ntime = "18:00"\n[escalation]\nofficer_sla_hours = 1', encoding="utf-8")
    c = County(db, policy=load_policy(f))
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 2, 11), minutes=15):
        c.sweep(now)
    # Missed at 22:00 on Monday: queued then, sent at 08:30 on Tuesday; the supervisor's turn an hour after that.
    alerts = [a for a in c.out(kind="escalation") if a.supervisee_id is None and "JZ-S" in a.body]
    assert [(a.address, hhmm(a), hhmm_dt(a.next_attempt_at)) for a in alerts] == [
        ("5001", "22:00", "08:30"), ("9000", "09:30", "09:30")]


async def test_with_round_the_clock_working_hours_alerts_go_out_in_quiet_hours(db, tmp_path):
    from content.policy import load_policy

    f = tmp_path / "p.toml"
    f.write_text('[checkin.strict]\ntime = "18:00"\n[escalation]\nofficer_sla_hours = 1\n'
                 'working_days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]\n'
                 'working_start = "00:00"\nworking_end = "23:59"', encoding="utf-8")
    c = County(db, policy=load_policy(f))
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 2, 0), minutes=15):
        c.sweep(now)
    alerts = c.out(kind="escalation")
    assert [(a.address, hhmm(a)) for a in alerts if a.supervisee_id is None and "JZ-S" in a.body] == [
        ("5001", "22:00"), ("9000", "23:00")]


async def test_level_change_in_roster_replans(db):
    from handlers.roster import import_roster
    from tests.conftest import HEADER

    c = County(db)
    c.sweep(local(2027, 3, 1, 8))
    assert len(c.obligations(c.strict)) == 3
    row = f"JZ-S,王伟,13800000001,zh-CN,probation,lenient,红果镇,{c.li.id},2026-01-01,2028-01-01"
    with session_scope(c.engine) as s:
        assert import_roster(s, f"{HEADER}\n{row}\n", now=local(2027, 3, 1, 8, 5)).updated == 1
    c.sweep(local(2027, 3, 1, 8, 10))
    assert [o.period_key for o in c.obligations(c.strict)] == ["2027-03-01"]  # Mondays only now


async def test_roster_extension_brings_an_ended_person_back(db):
    from handlers.roster import import_roster
    from tests.conftest import HEADER

    c = County(db)
    with session_scope(c.engine) as s:
        p = s.get(Supervisee, c.strict.id)
        p.supervision_end = local(2027, 2, 27).astimezone(SH).date()
        s.add(p)
    c.sweep(local(2027, 3, 1, 8))
    assert c.person(c.strict).status == "ended" and c.obligations(c.strict) == []
    row = f"JZ-S,王伟,13800000001,zh-CN,probation,strict,红果镇,{c.li.id},2026-01-01,2027-12-31"
    with session_scope(c.engine) as s:
        assert import_roster(s, f"{HEADER}\n{row}\n", now=local(2027, 3, 1, 8, 5)).updated == 1
    c.sweep(local(2027, 3, 1, 9))
    assert c.person(c.strict).status == "active"
    assert [m.kind for m in c.out(address=c.strict.phone)] == ["checkin_prompt"]


def test_the_sweep_lock_is_per_schema(db):
    """Advisory locks are per database: another instance in another schema must not stop this one's sweep."""
    if db.kind != "postgresql" and db.kind != "postgres":
        pytest.skip("PostgreSQL only: SQLite needs no sweep lock")
    from sqlalchemy import func, select

    from scheduler.sweep import ADVISORY_LOCK
    c = County(db)
    with db.engine.connect() as other:
        other.execute(select(func.pg_advisory_lock(ADVISORY_LOCK, func.hashtext("some_other_schema"))))
        assert not c.sweep(local(2027, 3, 1, 9)).skipped  # another schema's sweep does not block this one
        other.execute(select(func.pg_advisory_unlock(ADVISORY_LOCK, func.hashtext("some_other_schema"))))
        other.execute(select(func.pg_advisory_lock(ADVISORY_LOCK, func.hashtext(func.current_schema()))))
        assert c.sweep(local(2027, 3, 1, 9, 1)).skipped  # a sweep of this schema is running elsewhere
        other.execute(select(func.pg_advisory_unlock(ADVISORY_LOCK, func.hashtext(func.current_schema()))))
    assert not c.sweep(local(2027, 3, 1, 9, 2)).skipped
