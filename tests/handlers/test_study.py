"""Study: the modules, weekly delivery, quizzes passed and failed, the monthly tally and the shortfall ladder."""

from __future__ import annotations

from sqlmodel import select

from content.catalog import LANGUAGES, text
from content.sms import segments
from content.study import modules
from handlers import study
from storage.db import session_scope
from storage.models import StudyProgress
from tests.sim import SH, County, local, steps


def test_modules_are_the_same_in_both_languages_and_fit_sms():
    zh, en = modules("zh-CN"), modules("en")
    assert len(zh) >= 12 and [m.id for m in zh] == [m.id for m in en]
    for a, b in zip(zh, en):
        assert (a.minutes, len(a.parts), [len(q.choices) for q in a.quiz], [q.answer for q in a.quiz]) == \
               (b.minutes, len(b.parts), [len(q.choices) for q in b.quiz], [q.answer for q in b.quiz]), a.id
        for lang, m in (("zh-CN", a), ("en", b)):
            assert 1 <= len(m.quiz) <= 2 and all(1 <= q.answer <= len(q.choices) for q in m.quiz)
            for i, part in enumerate(m.parts):
                body = text(lang, "study.part", title=m.title, n=i + 1, total=len(m.parts), text=part)
                assert segments(body) <= 2, (lang, m.id, i, segments(body))
    topics = {m.id for m in zh}
    assert {"rights_duties", "reporting", "leave", "location", "escalation", "work", "family_support"} <= topics
    assert {f"law_{c}" for c in ("probation", "parole", "control", "medical_parole", "deprivation")} <= topics
    assert set(LANGUAGES) == {"zh-CN", "en"}


async def test_weekly_module_then_a_failed_and_a_passed_quiz(db):
    c = County(db)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 3, 10, 30)):
        c.sweep(now)
    lesson = c.out(address=c.strict.phone, kind="study_lesson")
    (quiz,) = c.out(address=c.strict.phone, kind="study_quiz")
    assert [m.created_at for m in lesson] == [local(2027, 3, 3, 10)] * 3
    assert lesson[0].body.startswith("【学习】您的权利和义务（1/3）")
    assert "A. 享有  B. 不享有" in quiz.body and "回复字母作答" in quiz.body
    t = local(2027, 3, 3, 11)
    await c.sms(c.strict, "B", t)  # wrong
    assert c.out(kind="reply", address=c.strict.phone)[-1].body.startswith("答案不对")
    assert len(c.out(address=c.strict.phone, kind="study_quiz")) == 2  # the lesson came again
    await c.sms(c.strict, "a", t)
    reply = c.out(kind="reply", address=c.strict.phone)[-1].body
    assert reply == "答对了！本次学习记 60 分钟。本月已学习 1小时0分钟，每月至少 8小时0分钟。"
    study_ob = c.obligations(c.strict, "study")[0]
    assert study_ob.state == "done"
    with session_scope(c.engine) as s:
        (p,) = s.exec(select(StudyProgress).where(StudyProgress.supervisee_id == c.strict.id)).all()
        assert (p.state, p.attempts, p.minutes) == ("passed", 2, 60)
        assert study.month_minutes(s, c.strict.id, t, SH) == 60


async def test_asking_for_the_next_lesson_early_and_by_button(db):
    c = County(db)
    t = local(2027, 3, 1, 10)
    await c.sms(c.lenient, "STUDY", t)
    assert c.out(address=c.lenient.phone, kind="study_lesson")[0].body.startswith("[Study] Your rights and duties (1/3)")
    await c.sms(c.lenient, "A", t)
    assert c.out(kind="reply", address=c.lenient.phone)[-1].body.startswith("Correct! 60 minutes")
    await c.send("telegram", "7002", t, "学习")
    quiz = c.out(address="7002", kind="study_quiz")[-1]
    data = [d for _, d in __import__("json").loads(quiz.payload)["buttons"]]
    await c.send("telegram", "7002", t, button=data[0])
    assert c.out(kind="reply", address="7002")[-1].body.startswith("答对了")
    await c.send("telegram", "7002", t, button=data[0])  # the same button again: nothing pending
    assert c.out(kind="reply", address="7002")[-1].body.startswith("现在没有需要回答的测验")
    await c.send("telegram", "7002", t, "学习")  # the next module in order
    assert c.out(address="7002", kind="study_lesson")[-1].body.startswith("【学习】按时报到")
    await c.sms(c.strict, "A lot of work this week", t)  # a sentence starting with A is no quiz answer
    assert c.out(kind="reply", address=c.strict.phone)[-1].body == "已转给协管员李娜，请等待回复。"  # it is passed on


async def test_monthly_tally_and_the_shortfall_ladder(db):
    c = County(db)
    t = local(2027, 3, 5, 10)
    for _ in range(8):  # 王伟 studies 8 modules: 8 hours
        await c.sms(c.strict, "学习", t)
        with session_scope(c.engine) as s:
            pending = s.exec(select(StudyProgress).where(StudyProgress.state == "sent",
                                                          StudyProgress.supervisee_id == c.strict.id)).one()
        from content.study import module

        right = "ABCD"[module("zh-CN", pending.module_id).quiz[0].answer - 1]
        await c.sms(c.strict, right, t)
    with session_scope(c.engine) as s:
        tally = study.minutes_credited(s, study.month_start(t, SH), local(2027, 4, 1))
    assert tally == {c.strict.id: 480, c.ordinary.id: 0, c.lenient.id: 0}
    assert c.sweep(local(2027, 3, 20, 8, 59)).study_reminded == 0
    assert c.sweep(local(2027, 3, 20, 9, 0)).study_reminded == 2
    assert c.sweep(local(2027, 3, 20, 9, 1)).study_reminded == 0
    (tom,) = c.out(kind="study_shortfall", address=c.lenient.phone)
    assert tom.body == "This month you have studied 0 h 0 min; 8 h 0 min to go (at least 8 h 0 min a month). Send STUDY for the next lesson."
    await c.sms(c.lenient, "study", local(2027, 3, 21, 10))
    await c.sms(c.lenient, "A", local(2027, 3, 21, 10))
    assert c.sweep(local(2027, 3, 25, 9, 0)).study_escalated == 2
    shortfall = [e for e in c.escalations() if e.kind == "study_shortfall"]
    assert sorted(e.supervisee_id for e in shortfall) == [c.ordinary.id, c.lenient.id]
    # With the service shortfalls of the same morning they are five alerts for 李娜: one list (the missed
    # check-ins of the days the simulation skipped are another); Tom's opens in full.
    (listed,) = [m for m in c.out(kind="escalation_bulk", address="5001") if "学习时长不足" in m.body]
    tom = next(e for e in shortfall if e.supervisee_id == c.lenient.id)
    assert f"· #{tom.id} 学习时长不足：Tom Lee（JZ-L）" in listed.body
    alert = (await c.send("telegram", "5001", local(2027, 3, 25, 9, 5), button=f"esc:{tom.id}:show")).replies[0]
    assert "学习不足" in alert.text and "本月已学习 1小时0分钟，每月至少 8小时0分钟。20日已提醒。" in alert.text
