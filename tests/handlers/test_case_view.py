"""/case as the whole thread, in full and paged; /find by name, case number or a phone's last digits, in scope."""

from __future__ import annotations

from datetime import timedelta

from content.policy import load_policy
from storage.db import session_scope
from storage.models import Supervisee
from tests.factories import supervisee
from tests.sim import County, local

LONG = "我母亲住院了，这几天我要在医院照顾她，晚上才能回家。" * 3  # 75 characters, never cut in /case


async def _case(c: County, args: str, who: str = "5001", now=None) -> str:
    return (await c.send("telegram", who, now or local(2027, 3, 5, 20), f"/case {args}")).replies[0].text


async def test_case_shows_the_thread_in_and_out_in_full_newest_first(db):
    c = County(db)
    await c.sms(c.strict, LONG, local(2027, 3, 2, 15))
    await c.send("telegram", "5001", local(2027, 3, 2, 16), "/say JZ-S 好的，照顾好家人。")
    text = await _case(c, "JZ-S")
    lines = text.splitlines()
    assert lines[0] == "王伟（JZ-S，严管，红果镇，在矫）"
    start = lines.index("消息第 1-3 条，共 3 条，最新在前（← 对方发来，→ 发给对方）：")
    assert lines[start + 1:] == [
        "3月2日 16:00 → 协管员李娜：好的，照顾好家人。",
        "3月2日 15:00 → 已转给协管员李娜，请等待回复。",
        f"3月2日 15:00 ← {LONG}",
    ]


async def test_case_pages_honestly_and_the_last_page_says_so(db):
    c = County(db)
    for n in range(40):  # 40 notes of 75 characters and their 40 answers: several pages of 1,500 characters
        await c.sms(c.strict, f"{n:02d} {LONG}", local(2027, 3, 2, 8) + timedelta(minutes=10 * n))
    first = await _case(c, "JZ-S")
    assert len(first) <= load_policy().limits.page_chars + 40
    assert first.splitlines()[-1] == "更早的消息：/case JZ-S 2"
    seen, page, last = [], 1, 0
    while True:
        text = await _case(c, f"JZ-S {page}")
        header = next(line for line in text.splitlines() if line.startswith("消息第"))
        span = header.split()[1]  # "1-12"
        assert int(span.split("-")[0]) == last + 1 and "共 80 条" in header  # pages follow on, the total is whole
        last = int(span.split("-")[1])
        seen += [line.split(" ← ")[1][:2] for line in text.splitlines() if " ← " in line]
        assert (page == 1) == any(line.startswith("上次联系") for line in text.splitlines())  # the card on page 1
        if not text.endswith(f"/case JZ-S {page + 1}"):
            break
        page += 1
    assert last == 80
    assert page >= 3
    assert seen == [f"{n:02d}" for n in reversed(range(40))]  # every note once, newest first, none cut
    assert await _case(c, "JZ-S 999") == text  # past the end: the last page, not an empty one


async def test_case_respects_scope_and_says_when_there_are_no_messages(db):
    c = County(db)
    assert (await _case(c, "JZ-S", who="5002")) == "JZ-S 不在您的管辖范围内。"
    assert (await _case(c, "JZ-L", who="1")).endswith("还没有消息。")


async def test_find_by_name_case_number_or_last_four_digits_within_scope(db):
    c = County(db)
    supervisee(c.engine, local(2027, 3, 1), c.other.id, case_number="JZ-Q", name="王强", township="两河镇",
               phone="+8613900001234")
    li = lambda words: c.send("telegram", "5001", local(2027, 3, 2, 20), f"/find {words}")  # noqa: E731
    text = (await li("王")).replies[0].text
    assert text.splitlines() == ["找到 1 人，显示 1 人：", "· 王伟（JZ-S，严管，红果镇，在矫）138 0000 0001"]
    assert "王强" not in text  # 两河镇 is not 李娜's
    assert "Tom Lee" in (await li("tom")).replies[0].text  # any case
    assert "刘芳" in (await li("0002")).replies[0].text  # the phone's last four digits
    assert (await li("jz-l")).replies[0].text.count("\n") == 1
    assert (await li("1234")).replies[0].text == "您的管辖范围内没有与“1234”相符的人。"
    admin = (await c.send("telegram", "1", local(2027, 3, 2, 20), "/find 王")).replies[0].text
    assert admin.startswith("找到 2 人") and "王强（JZ-Q" in admin and "王伟（JZ-S" in admin
    boss = (await c.send("telegram", "9000", local(2027, 3, 2, 20), "/find 1234")).replies[0].text
    assert boss.startswith("您的管辖范围内没有")  # the 红果镇 supervisor does not see 两河镇
    assert (await li("")).replies[0].text.startswith("用法：/find")
    with session_scope(c.engine) as s:  # ended people are found too, and say so
        s.get(Supervisee, c.strict.id).status = "ended"
    assert "王伟（JZ-S，严管，红果镇，已解矫）" in (await li("王伟")).replies[0].text


async def test_find_says_how_many_it_left_out(db):
    c = County(db)
    for n in range(25):
        supervisee(c.engine, local(2027, 3, 1), c.li.id, case_number=f"JZ-{n:02d}", name=f"张{n:02d}",
                   phone=f"+86139000100{n:02d}")
    text = (await c.send("telegram", "5001", local(2027, 3, 2, 20), "/find 张")).replies[0].text
    assert text.splitlines()[0] == "找到 25 人，显示 20 人：" and len(text.splitlines()) == 21
