"""Written reports: prompt, collection over several messages, receipt, late reports."""

from __future__ import annotations

from sqlmodel import select

from storage.db import session_scope
from storage.models import WrittenReport
from tests.sim import County, local, steps


async def test_report_over_several_messages_with_receipt(db):
    c = County(db)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 5, 9, 30)):
        c.sweep(now)
    (prompt,) = c.out(kind="report_prompt", address=c.strict.phone)
    assert "3月7日 09:00 前提交" in prompt.body
    t = local(2027, 3, 5, 10)
    await c.sms(c.strict, "汇报", t)
    assert "写完后发“完成”" in c.out(kind="reply")[-1].body
    await c.sms(c.strict, "周一到周五在砖厂上班。", t)
    await c.sms(c.strict, "1", t)  # inside a report, "1" is text, not a check-in answer
    await c.sms(c.strict, "完成", t)
    reply = c.out(kind="reply")[-1].body
    with session_scope(c.engine) as s:
        (rep,) = s.exec(select(WrittenReport)).all()
    assert rep.parts == 2 and rep.body == "周一到周五在砖厂上班。\n\n1"
    assert reply == f"汇报已收到（共 2 条）。回执号：{rep.receipt}。协管员现在可以看到。"
    assert rep.receipt == f"R-2027-{rep.id:04d}"
    assert c.obligations(c.strict, "report")[0].state == "done"


async def test_report_in_english_with_text_on_the_first_line(db):
    c = County(db)
    t = local(2027, 3, 2, 10)
    await c.sms(c.lenient, "report Worked at the brick factory Mon-Fri.", t)
    await c.sms(c.lenient, "Attended the study session on Wednesday.", t)
    await c.sms(c.lenient, "done", t)
    assert c.out(kind="reply")[-1].body.startswith("Report received (2 messages). Receipt: R-2027-")


async def test_done_with_nothing_and_cancel(db):
    c = County(db)
    t = local(2027, 3, 2, 10)
    await c.sms(c.strict, "汇报", t)
    await c.sms(c.strict, "完成", t)
    assert "还没有写任何内容" in c.out(kind="reply")[-1].body
    await c.sms(c.strict, "取消", t)
    assert c.out(kind="reply")[-1].body == "已取消，没有提交汇报。"
    await c.sms(c.strict, "1", t)  # back to normal: a check-in answer again
    assert "报到" in c.out(kind="reply")[-1].body


async def test_late_report_closes_the_escalation(db):
    c = County(db)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 7, 10)):
        c.sweep(now)
    esc = [e for e in c.escalations() if e.kind == "missed_report"]
    assert len(esc) == 1 and esc[0].supervisee_id == c.strict.id
    t = local(2027, 3, 7, 10, 30)
    await c.sms(c.strict, "汇报 上周的情况", t)
    await c.sms(c.strict, "完成", t)
    assert c.obligations(c.strict, "report")[0].state == "late"
    esc = [e for e in c.escalations() if e.kind == "missed_report"][0]
    assert esc.resolution == "answered_late"
    assert "补交书面汇报" in c.out(kind="escalation_closed")[-1].body
