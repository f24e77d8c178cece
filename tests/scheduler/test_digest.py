"""The morning digest on a simulated clock: what each officer finds waiting, once per working day, nothing when
nothing waits."""

from __future__ import annotations

from tests.sim import County, local, steps


def digests(c: County, address: str) -> list:
    return c.out(kind="digest", address=address)


async def test_each_officer_gets_what_waits_in_their_scope_at_the_opening(db):
    c = County(db)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 14), minutes=30):
        c.sweep(now)  # Monday: nobody answers; three alerts to 李娜 at 13:00
    await c.sms(c.lenient, "My mother is ill, can I visit her on Sunday?", local(2027, 3, 1, 15))
    await c.sms(c.strict, "汇报 本周按时上班。", local(2027, 3, 1, 16))
    await c.sms(c.strict, "完成", local(2027, 3, 1, 16))
    for words in ("请假", "贵阳", "3月20日到3月22日", "探望母亲"):
        await c.sms(c.strict, words, local(2027, 3, 1, 17))
    c.sweep(local(2027, 3, 2, 8, 29))
    assert c.out(kind="digest") == []  # not before the office opens
    c.sweep(local(2027, 3, 2, 8, 30))
    (li,) = digests(c, "5001")
    assert li.body.splitlines() == [
        "☀ 李娜，早上好。今天待处理：",
        "· 提醒 3 条，最早的在 3月1日 13:00（/open）",
        "· 请假待审批 1 项（/leaves）",
        "· 上次汇总以来：留言 1 条，书面汇报 1 份（/reports）",
        "· 本月进度落后：学习 3 人；公益劳动 3 人",
    ]
    (boss,) = digests(c, "9000")  # the township's alerts, leave and people; the notes were 李娜's
    assert boss.body.splitlines()[1:] == ["· 提醒 3 条，最早的在 3月1日 13:00（/open）", "· 请假待审批 1 项（/leaves）",
                                          "· 本月进度落后：学习 3 人；公益劳动 3 人"]
    assert digests(c, "5002") == []  # 赵强's township has nobody: nothing waits, nothing is sent
    assert "提醒 3 条" in digests(c, "1")[0].body  # the administrator: the county
    c.sweep(local(2027, 3, 2, 9))
    assert len(c.out(kind="digest")) == 3  # once a day


async def test_no_digest_on_days_off_and_monday_covers_the_weekend(db):
    c = County(db)
    c.sweep(local(2027, 3, 5, 8, 30))  # Friday's digest (the study targets are behind)
    await c.sms(c.lenient, "I will be late on Monday.", local(2027, 3, 6, 11))
    for day in (6, 7):  # Saturday, Sunday
        c.sweep(local(2027, 3, day, 9))
    assert {m.created_at for m in c.out(kind="digest")} == {local(2027, 3, 5, 8, 30)}
    c.sweep(local(2027, 3, 8, 8, 30))
    (monday,) = [m for m in digests(c, "5001") if m.created_at == local(2027, 3, 8, 8, 30)]
    assert "· 上次汇总以来：留言 1 条，书面汇报 0 份（/reports）" in monday.body
