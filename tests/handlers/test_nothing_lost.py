"""Nothing a person sends is lost: free text reaches the officer, reports reach the officer, replies go back."""

from __future__ import annotations

import json

from sqlmodel import update

from content.policy import load_policy
from handlers.contract import Inbound
from storage.db import session_scope
from storage.models import Message, ObligationState
from tests.sim import County, local, steps

ILL = "我住院了, 下周才能回来"


def _prompted(c: County) -> None:
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 9, 30)):
        c.sweep(now)


async def test_free_text_during_a_check_in_answers_it_and_reaches_the_officer(db):
    c = County(db)
    _prompted(c)
    await c.sms(c.strict, ILL, local(2027, 3, 1, 9, 40))
    assert c.obligations(c.strict)[0].state == ObligationState.done
    reply = c.out(address=c.strict.phone, kind="reply")[-1].body
    assert reply.startswith("已收到") and "您的留言也已转给李娜。" in reply
    (note,) = c.out(kind="contact")
    assert note.body == f"✉ 王伟（JZ-S，红果镇）留言：{ILL}" and note.officer_id == c.li.id
    assert json.loads(note.payload)["about"] == c.strict.id


async def test_a_bare_word_during_a_check_in_only_answers_it(db):
    c = County(db)
    _prompted(c)
    await c.sms(c.strict, "好的", local(2027, 3, 1, 9, 40))
    assert c.obligations(c.strict)[0].state == ObligationState.done
    assert c.out(kind="contact") == []


async def test_free_text_outside_a_window_is_passed_on_not_refused(db):
    c = County(db)
    await c.sms(c.lenient, "My mother is ill, can I visit her on Sunday?", local(2027, 3, 2, 15))
    assert c.out(address=c.lenient.phone, kind="reply")[-1].body == (
        "Passed on to your officer 李娜. Please wait for a reply.")
    (note,) = c.out(kind="contact")
    assert note.body == "✉ Tom Lee（JZ-L，红果镇）留言：My mother is ill, can I visit her on Sunday?"  # in 李娜's language


async def test_the_officer_answers_a_passed_on_message_by_replying_to_it(db):
    c = County(db)
    await c.sms(c.strict, ILL, local(2027, 3, 2, 15))
    (note,) = c.out(kind="contact")
    with session_scope(c.engine) as s:  # as the Telegram adapter records a sent message
        s.execute(update(Message).where(Message.id == note.id).values(provider_id="5001:777", status="sent"))
    await c.router.handle(c.engine, Inbound("telegram", "5001", text="好好养病，出院后联系我。",
                                            reply_to_message_id=777), local(2027, 3, 2, 16))
    to_wang = c.out(address=c.strict.phone, kind="officer_message")
    assert [m.body for m in to_wang] == ["协管员李娜：好好养病，出院后联系我。"]


async def _report(c: County, person, words: list[str], at):
    await c.sms(person, "汇报", at)
    for w in words:
        await c.sms(person, w, at)
    await c.sms(person, "完成", at)


async def test_a_finished_report_reaches_the_officer_and_can_be_read_in_full(db):
    policy = load_policy()
    c = County(db, policy=policy.model_copy(update={"limits": policy.limits.model_copy(update={"page_chars": 200})}))
    long_part = "周一到周五在城南砖厂上班。" * 30  # 390 characters: two pages of 200
    await _report(c, c.strict, ["本周按时报到。", long_part], local(2027, 3, 5, 10))
    (notice,) = c.out(kind="report_notice")
    assert notice.officer_id == c.li.id and notice.body.startswith("📝 书面汇报 R-2027-")
    assert "王伟（JZ-S，红果镇），2条" in notice.body and "/report 1" in notice.body
    await c.send("telegram", "5001", local(2027, 3, 5, 11), "/reports")
    listing = c.out(address="5001", kind="reply")[-1].body
    assert listing.startswith("书面汇报（最近1份，共1份）") and "#1 R-2027-0001 王伟（JZ-S）" in listing
    await c.send("telegram", "5001", local(2027, 3, 5, 11), "/report 1")
    first = c.out(address="5001", kind="reply")[-1].body
    assert "第1/2页" in first and "本周按时报到。" in first and first.endswith("下一页：/report 1 2")
    await c.send("telegram", "5001", local(2027, 3, 5, 11), "/report 1 2")
    pages = [first, c.out(address="5001", kind="reply")[-1].body]
    assert "第2/2页" in pages[1] and "下一页" not in pages[1]
    assert all(len(p.split("\n", 1)[1].split("\n下一页")[0]) <= 200 for p in pages)
    body = "".join(p.split("\n", 1)[1].split("\n下一页")[0] for p in pages)
    assert body.replace("\n", "") == ("本周按时报到。" + long_part).replace("\n", "")  # every character, in order


async def test_reports_are_shown_only_within_the_officers_scope(db):
    c = County(db)
    await _report(c, c.strict, ["本周按时报到。"], local(2027, 3, 5, 10))
    await c.send("telegram", "5002", local(2027, 3, 5, 11), "/report 1")  # 赵强, another township
    assert c.out(address="5002", kind="reply")[-1].body == "JZ-S 不在您的管辖范围内。"
    await c.send("telegram", "5002", local(2027, 3, 5, 11), "/reports")
    assert c.out(address="5002", kind="reply")[-1].body == "没有书面汇报。"
    await c.send("telegram", "1", local(2027, 3, 5, 11), "/reports")  # the administrator sees everyone's
    assert "王伟（JZ-S）" in c.out(address="1", kind="reply")[-1].body
    await c.send("telegram", "9000", local(2027, 3, 5, 11), "/reports JZ-S")  # the township supervisor too
    assert "王伟（JZ-S）" in c.out(address="9000", kind="reply")[-1].body


async def test_officer_help_lists_every_officer_command(db):
    c = County(db)
    await c.send("telegram", "5001", local(2027, 3, 5, 11), "/help")
    text = c.out(address="5001", kind="reply")[-1].body
    from handlers.contract import SenderKind

    routed = {k for r in c.router.routes if SenderKind.officer in r.who for k in r.keywords if k.startswith("/")}
    officer_commands = {"/list", "/open", "/case", "/find", "/say", "/reports", "/report", "/leaves", "/warn",
                        "/warnings", "/service", "/pause", "/resume", "/level", "/transfer", "/end", "/help"}
    assert officer_commands <= routed
    for command in officer_commands - {"/transfer", "/end"}:
        assert command in text, command
    assert "/transfer" not in text and "/end" not in text  # an assistant's help: what they may use
    await c.send("telegram", "9000", local(2027, 3, 5, 11), "/help")
    senior = c.out(address="9000", kind="reply")[-1].body
    for command in officer_commands:
        assert command in senior, command
