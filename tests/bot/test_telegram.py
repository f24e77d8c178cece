"""The real python-telegram-bot Application against the Bot API stand-in over HTTP: whole conversations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select

from bot.runtime import Runtime
from bot.sandbox.loopback import LoopbackServer, free_port
from bot.sandbox.telegram_api import FakeTelegram
from bot.settings import load_settings
from bot.stack import Stack
from bot.web import make_app
from handlers import enrol
from scheduler.clock import FixedClock
from storage.db import session_scope
from storage.models import Message, Officer, Supervisee, WrittenReport
from tests.conftest import clear_env
from tests.factories import officer, supervisee
from tests.sim import County, local


class Harness:
    """A county, the fake Bot API, and the service's stack on a fixed clock."""

    def __init__(self, db, fake: FakeTelegram, clock: FixedClock, **settings) -> None:
        self.db, self.fake, self.clock = db, fake, clock
        self.county = County(db)
        # Ten messages a second per chat instead of one, so that conversations do not wait on the limiter.
        s = load_settings(database_url=db.url, telegram_bot_token=fake.token, telegram_base_url=fake.base_url,
                          telegram_chat_rate=10, **settings)
        self.rt = Runtime(s, db.engine, clock)
        self.stack = Stack(self.rt, poll_timeout=0.5)

    async def tick(self, at) -> None:
        self.clock.set(at)
        await self.stack.ticker.tick(at)

    async def said(self, chat_id: int, count: int):
        """Wait for the bot's `count`-th message to `chat_id` and return it."""
        msgs = await self.fake.wait_for_messages(chat_id, count)
        return msgs[count - 1]

    async def settle(self) -> None:
        await self.fake.wait_for_confirmed()  # the bot has every update (polling); then all is handled and sent
        await self.stack.idle()



@asynccontextmanager
async def serving(db, monkeypatch, tmp_path, prepare: Callable[[Harness], None] | None = None):
    """The service polling the Bot API stand-in; `prepare` changes the county before it starts."""
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    fake = FakeTelegram()
    await fake.start()
    h = Harness(db, fake, FixedClock(local(2027, 3, 1, 8)))
    if prepare is not None:
        prepare(h)
    await h.stack.start()
    try:
        yield h
    finally:
        await h.stack.stop()
        await fake.stop()


@pytest.fixture
async def tg(db, monkeypatch, tmp_path):
    async with serving(db, monkeypatch, tmp_path) as h:
        yield h


def _code(h: Harness, person) -> str:
    with session_scope(h.db.engine) as s:
        return enrol.issue_code(s, s.get(Supervisee, person.id), h.clock.now(), days=14).code


async def test_enrolment_good_wrong_and_expired_codes(tg):
    h, fake = tg, tg.fake
    await fake.send_text(7777, "/start ZZZZ-ZZZZ")
    assert "没有找到这个报到码" in (await h.said(7777, 1)).text
    code = _code(h, h.county.strict)
    await fake.send_text(7777, f"/start {code}")
    welcome = await h.said(7777, 2)
    assert welcome.text.startswith("王伟，您好。") and "李娜（协管员）" in welcome.text
    notice = await h.said(5001, 1)
    assert "王伟（JZ-S）已通过 Telegram 绑定" in notice.text
    await fake.send_text(8888, f"/start {code}")  # the same code from another chat
    assert "已经用过了" in (await h.said(8888, 1)).text
    tom_code = _code(h, h.county.lenient)
    h.clock.advance(timedelta(days=15))
    await fake.send_text(9999, f"/start {tom_code}")
    assert "expired" in (await h.said(9999, 1)).text
    assert fake.commands and {c["command"] for c in fake.commands} >= {"help", "report"}


async def test_check_in_by_button_and_by_text(tg):
    h, fake = tg, tg.fake
    await h.tick(local(2027, 3, 1, 9))
    prompt = await h.said(7002, 1)  # 刘芳 is on Telegram (chat 7002)
    assert prompt.text == "今天的报到时间到了。请在 13:00 前回复。"
    assert [label for label, _ in prompt.buttons] == ["我一切正常", "我需要联系协管员"]
    h.clock.set(local(2027, 3, 1, 9, 5))
    await fake.press(7002, prompt.message_id, prompt.buttons[0][1])
    reply = await h.said(7002, 2)
    assert reply.text.startswith("已收到，谢谢。下次报到：")
    assert fake.callback_answers, "the button's spinner was not stopped"
    assert h.county.obligations(h.county.ordinary)[0].state == "done"
    # Thursday: answered by typing (the tick also catches up Wednesday's study module).
    await h.tick(local(2027, 3, 4, 9))
    await h.settle()
    before = len(fake.messages(7002))
    assert any(m.text.startswith("今天的报到时间到了") for m in fake.messages(7002)[2:])
    h.clock.set(local(2027, 3, 4, 9, 30))
    await fake.send_text(7002, "1")
    assert (await h.said(7002, before + 1)).text.startswith("已收到，谢谢。")
    assert [o.state for o in h.county.obligations(h.county.ordinary)][:2] == ["done", "done"]


async def test_three_message_report_with_receipt(tg):
    h, fake = tg, tg.fake
    h.clock.set(local(2027, 3, 2, 10))
    await fake.send_text(7002, "/report")
    start = await h.said(7002, 1)
    assert start.buttons == [("完成", "report:done")]
    for text in ("周一到周五在砖厂上班。", "周三参加了学习。", "周末在家。"):
        await fake.send_text(7002, text)
    await fake.press(7002, start.message_id, "report:done")
    receipt = await h.said(7002, 2)
    with session_scope(h.db.engine) as s:
        (report,) = s.exec(select(WrittenReport)).all()
    assert report.parts == 3 and report.body.count("\n\n") == 2
    assert receipt.text == f"汇报已收到（共 3 条）。回执号：{report.receipt}。协管员现在可以看到。"


async def _alert(h: Harness):
    for hour in (9, 11, 13):
        await h.tick(local(2027, 3, 1, hour))
    await h.settle()
    alerts = [m for m in h.fake.messages(5001) if "JZ-S" in m.text]
    assert len(alerts) == 1
    return alerts[0]


async def test_escalation_acknowledged_by_the_officer_edits_the_alert(tg):
    h, fake = tg, tg.fake
    alert = await _alert(h)
    assert alert.text.startswith("⚠ 未报到 #") and "09:00 已提醒，11:00 再次提醒，均未回复" in alert.text
    assert [label for label, _ in alert.buttons] == ["已知悉", "已联系上", "联系不上", "免除（填写原因）"]
    h.clock.set(local(2027, 3, 1, 13, 25))
    await fake.press(5001, alert.message_id, alert.buttons[1][1])
    await fake.wait_for(lambda: bool(fake.message(5001, alert.message_id).edits))
    edited = fake.message(5001, alert.message_id)
    assert edited.text.startswith(alert.edits[0] if alert.edits else "⚠ 未报到")
    assert edited.text.endswith(f"✅ 已联系上 #{int(alert.text.split('#')[1].split('：')[0])} — 李娜，13:25")
    assert edited.buttons == []  # no more buttons once handled
    esc = next(e for e in h.county.escalations() if e.supervisee_id == h.county.strict.id)
    assert (esc.state, esc.resolution) == ("resolved", "reached")


async def test_an_officer_is_refused_another_officers_person(tg):
    h, fake = tg, tg.fake
    alert = await _alert(h)
    esc_data = alert.buttons[0][1]
    await fake.send_text(5002, "/start")  # 赵强, 两河镇, has a chat with the bot
    await h.said(5002, 1)
    # 赵强 cannot press 李娜's button, but a forged callback carrying its data is tried.
    bait = await h.said(5002, 1)
    await fake.forge_press(5002, bait.message_id, esc_data)
    refusal = await h.said(5002, 2)
    assert "不归您处理" in refusal.text
    esc = next(e for e in h.county.escalations() if e.supervisee_id == h.county.strict.id)
    assert esc.state == "open"


async def test_rate_limit_from_telegram_is_honoured(tg):
    h, fake = tg, tg.fake
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    await h.tick(local(2027, 3, 1, 9))
    with session_scope(h.db.engine) as s:
        row = next(m for m in s.exec(select(Message).where(Message.kind == "checkin_prompt")) if m.address == "7002")
    assert row.status == "queued" and row.error_code == "429"
    assert row.next_attempt_at >= local(2027, 3, 1, 9) + timedelta(seconds=30)  # backoff, at least retry_after
    await h.tick(row.next_attempt_at)
    assert (await h.said(7002, 1)).text.startswith("今天的报到时间到了")


async def test_duplicate_update_is_handled_once(tg):
    h, fake = tg, tg.fake
    update = await fake.send_text(7002, "/help")
    await h.said(7002, 1)
    fake.updates.append(update)  # Telegram delivers the same update again
    fake.updates.append(dict(update))
    await fake.send_text(7002, "/help")  # a new one, so we know the duplicates were consumed
    await h.said(7002, 2)
    await h.settle()
    assert len(fake.messages(7002)) == 2


@pytest.fixture(params=["s3cret-token"])
async def tg_webhook(request, db, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    fake = FakeTelegram()
    await fake.start()
    port = free_port()
    h = Harness(db, fake, FixedClock(local(2027, 3, 1, 8)), public_url=f"http://127.0.0.1:{port}",
                telegram_webhook_secret=request.param)
    server = LoopbackServer(make_app(h.clock, {}, h.stack.routes()))
    await server.start(port=port)
    await h.stack.start()
    h.port = port
    yield h
    await h.stack.stop()
    await server.stop()
    await fake.stop()


async def test_webhook_mode_conversation_and_secret(tg_webhook):
    h, fake = tg_webhook, tg_webhook.fake
    assert fake.webhook == {"url": f"http://127.0.0.1:{h.port}/telegram/webhook", "secret_token": "s3cret-token"}
    await fake.send_text(7002, "/help")
    assert "您可以" in (await h.said(7002, 1)).text
    assert fake.webhook_deliveries == [200]
    forged = {"update_id": 999, "message": {"message_id": 1, "date": 0, "chat": {"id": 7002, "type": "private"},
                                            "from": {"id": 7002, "is_bot": False, "first_name": "x"}, "text": "/help"}}
    async with httpx.AsyncClient() as client:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
            resp = await client.post(f"http://127.0.0.1:{h.port}/telegram/webhook", json=forged, headers=headers)
            assert resp.status_code == 403
    await h.settle()
    with session_scope(h.db.engine) as s:
        assert len(s.exec(select(Message).where(Message.direction == "in")).all()) == 1
    assert len(fake.messages(7002)) == 1


@pytest.mark.parametrize("tg_webhook", [None], indirect=True)
async def test_a_webhook_without_a_configured_secret_gets_one(tg_webhook):
    """No TELEGRAM_WEBHOOK_SECRET: a secret derived from the token is registered, and forged updates refused."""
    h, fake = tg_webhook, tg_webhook.fake
    secret = fake.webhook["secret_token"]
    assert secret and len(secret) == 64 and fake.token not in secret
    await fake.send_text(7002, "/help")
    assert "您可以" in (await h.said(7002, 1)).text and fake.webhook_deliveries == [200]
    forged = {"update_id": 998, "message": {"message_id": 1, "date": 0, "chat": {"id": 5001, "type": "private"},
                                            "from": {"id": 5001, "is_bot": False, "first_name": "x"}, "text": "/list"}}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"http://127.0.0.1:{h.port}/telegram/webhook", json=forged)
    assert resp.status_code == 403


async def test_a_blocked_bot_falls_back_to_sms_and_escalates(tg):
    h, fake = tg, tg.fake
    fake.block(7002)
    await h.tick(local(2027, 3, 1, 9))
    await h.settle()
    person = h.county.person(h.county.ordinary)
    assert person.telegram_blocked_at is not None and person.preferred_channel == "sms"
    with session_scope(h.db.engine) as s:
        rows = s.exec(select(Message).where(Message.kind == "checkin_prompt", Message.supervisee_id == person.id)
                      .order_by(Message.id)).all()
    assert [(r.channel, r.status, r.error_code) for r in rows] == [("telegram", "failed", "403"),
                                                                   ("sms", "queued", None)]
    alert = next(m for m in fake.messages(5001) if "JZ-O" in m.text)
    assert alert.text.startswith("📵 无法送达 #") and "对方已屏蔽机器人" in alert.text and "之后改用短信联系" in alert.text
    (esc,) = [e for e in h.county.escalations() if e.supervisee_id == person.id]
    assert esc.kind == "unreachable"
    # Later messages go by SMS; enrolling again (after unblocking) brings Telegram back.
    await h.tick(local(2027, 3, 4, 9))
    with session_scope(h.db.engine) as s:
        thursday = s.exec(select(Message).where(Message.kind == "checkin_prompt", Message.supervisee_id == person.id)
                          .order_by(Message.id.desc())).first()
    assert thursday.channel == "sms"


async def test_officer_case_say_and_reply_to_an_alert(tg):
    h, fake = tg, tg.fake
    alert = await _alert(h)
    h.clock.set(local(2027, 3, 1, 13, 30))
    await fake.send_text(5001, "/case JZ-S")
    card = await h.said(5001, len(fake.messages(5001)) + 1)
    assert card.text.startswith("王伟（JZ-S，严管，红果镇，在矫）") and "待处理提醒 1 条" in card.text
    await fake.send_text(5001, "/say JZ-O 明天上午来一趟司法所。")
    assert (await h.said(7002, 3)).text == "协管员李娜：明天上午来一趟司法所。"  # after the prompt and reminder
    # A reply to the alert goes to that person (by SMS: 王伟 has no Telegram).
    await fake.send_text(5001, "请马上回电话。", reply_to=alert.message_id)
    await h.settle()
    with session_scope(h.db.engine) as s:
        relayed = s.exec(select(Message).where(Message.kind == "officer_message",
                                               Message.supervisee_id == h.county.strict.id)).one()
    assert (relayed.channel, relayed.address, relayed.body) == ("sms", "+8613800000001", "协管员李娜：请马上回电话。")


async def test_officers_see_only_their_people(tg):
    h, fake = tg, tg.fake
    await fake.send_text(5002, "/case JZ-S")  # 赵强 of 两河镇
    assert (await h.said(5002, 1)).text == "JZ-S 不在您的管辖范围内。"
    await fake.send_text(5002, "/say JZ-S hello")
    assert (await h.said(5002, 2)).text == "JZ-S 不在您的管辖范围内。"
    await fake.send_text(9000, "/case JZ-S")  # the 红果镇 supervisor
    assert (await h.said(9000, 1)).text.startswith("王伟（JZ-S")
    await fake.send_text(1, "/case JZ-L")  # an administrator
    assert (await h.said(1, 1)).text.startswith("Tom Lee（JZ-L")
    await fake.send_text(7002, "/case JZ-S")  # a supervisee is not an officer
    assert "没有看懂" in (await h.said(7002, 1)).text


async def test_wrong_codes_are_throttled(tg):
    h, fake = tg, tg.fake
    for i in range(5):
        await fake.send_text(4444, f"/start WRNG-{i:04d}")
    await h.said(4444, 5)
    code = _code(h, h.county.strict)
    await fake.send_text(4444, f"/start {code}")  # even a good code waits out the hour
    assert "请一小时后再试" in (await h.said(4444, 6)).text
    h.clock.advance(timedelta(hours=1, minutes=1))
    await fake.send_text(4444, f"/start {code}")
    assert (await h.said(4444, 7)).text.startswith("王伟，您好。")


async def test_an_officer_binds_with_a_code(tg):
    h, fake = tg, tg.fake
    with session_scope(h.db.engine) as s:
        from storage.models import Officer

        officer = s.get(Officer, h.county.other.id)
        officer.telegram_id = None
        s.add(officer)
        code = enrol.issue_code(s, officer, h.clock.now(), days=7).code
    await fake.send_text(6006, f"/start {code}")
    assert "协管员功能" in (await h.said(6006, 1)).text
    with session_scope(h.db.engine) as s:
        assert s.get(Officer, h.county.other.id).telegram_id == 6006


async def test_free_text_answers_a_waiting_check_in(tg):
    h, fake = tg, tg.fake
    await fake.send_text(7002, "你好")  # nothing waiting: passed on to the officer, never lost
    assert (await h.said(7002, 1)).text == "已转给协管员李娜，请等待回复。"
    await h.tick(local(2027, 3, 1, 9))
    await h.said(7002, 2)
    h.clock.set(local(2027, 3, 1, 9, 10))
    await fake.send_text(7002, "我在家，一切都好")
    assert (await h.said(7002, 3)).text.startswith("已收到，谢谢。")
    assert h.county.obligations(h.county.ordinary)[0].state == "done"


async def test_location_button_and_server_errors(tg):
    from storage.outbox import Outgoing

    h, fake = tg, tg.fake
    channel = h.stack.telegram
    ask = Outgoing(1, "telegram", "7002", "请分享您现在的位置。", {"request_location": True, "location_label": "📍 发送位置"},
                   1, "checkin_prompt")
    await channel.send(ask)
    (sent,) = fake.messages(7002)
    assert sent.asks_location and sent.reply_markup["keyboard"][0][0]["text"] == "📍 发送位置"
    fake.fail_next("sendMessage", 502, "Bad Gateway")
    from scheduler.channels import PermanentSendError, TransientSendError

    with pytest.raises(TransientSendError):
        await channel.send(ask)
    with pytest.raises(PermanentSendError) as exc:
        await channel.send(Outgoing(2, "telegram", "not-a-chat", "x", {}, 1, "reply"))
    assert exc.value.code == "400"
    update = await fake.send_location(7002, 26.58, 106.71, accuracy=12.0)
    await h.settle()
    await fake.wait_for(lambda: len(fake.messages(7002)) >= 2)
    with session_scope(h.db.engine) as s:
        stored = s.exec(select(Message).where(Message.provider_id == str(update["update_id"]))).one()
    assert stored.kind == "location"


async def test_logs_carry_ids_not_tokens_names_or_text(tg, caplog):
    import logging

    h, fake = tg, tg.fake
    caplog.set_level(logging.DEBUG)
    code = _code(h, h.county.strict)
    await fake.send_text(7777, f"/start {code}")
    await h.said(7777, 1)
    await fake.send_text(7777, "汇报 私人的内容")
    await fake.send_text(7777, "完成")
    await h.said(7777, 3)
    await h.tick(local(2027, 3, 1, 14))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "message" in logged
    for secret in (fake.token, "私人的内容", "王伟", "+8613800000001", code):
        assert secret not in logged, secret


# ---- location check-ins and leave through the real python-telegram-bot -------------------------------------------


async def _bind_strict(h: Harness, chat: int = 7001) -> None:
    from sqlalchemy import update
    with session_scope(h.db.engine) as s:
        s.execute(update(Supervisee).where(Supervisee.id == h.county.strict.id)
                  .values(telegram_chat_id=chat, preferred_channel="telegram"))


async def _bot_says(h: Harness, chat: int, predicate, timeout: float = 10.0):
    """Wait until the bot has sent `chat` a message matching `predicate`; return the latest such."""
    await h.fake.wait_for(lambda: any(predicate(m) for m in h.fake.messages(chat)), timeout)
    return [m for m in h.fake.messages(chat) if predicate(m)][-1]


async def test_location_check_ins_inside_outside_at_the_border_and_missing(tg):
    h, fake = tg, tg.fake
    await _bind_strict(h)
    starts = lambda prefix: (lambda m: m.text.startswith(prefix))  # noqa: E731
    # Day 1: the prompt carries the share-location key; a point in the county closes it, the keyboard goes.
    await h.tick(local(2027, 3, 1, 9))
    prompt = await _bot_says(h, 7001, starts("今天的报到时间到了。请在 13:00 前点下方"))
    assert prompt.asks_location
    keys = [b["text"] for row in prompt.reply_markup["keyboard"] for b in row]
    assert keys == ["📍 发送我的位置", "我需要联系协管员"]
    h.clock.set(local(2027, 3, 1, 9, 10))
    await fake.send_location(7001, 27.10, 106.30, accuracy=12)
    done = await _bot_says(h, 7001, starts("已收到，谢谢。下次报到："))
    assert done.reply_markup == {"remove_keyboard": True}
    # Day 2: from Guangzhou: the officer gets the out-of-area alert with the map link.
    await h.tick(local(2027, 3, 2, 9))
    h.clock.set(local(2027, 3, 2, 9, 10))
    await fake.send_location(7001, 23.13, 113.26, accuracy=30)
    await _bot_says(h, 7001, starts("位置已收到，但不在示例县范围内"))
    alert = await _bot_says(h, 5001, starts("📍 超出范围"))
    assert "openstreetmap.org/?mlat=23.13000&mlon=113.26000" in alert.text
    assert [label for label, _ in alert.buttons][0] == "已知悉"
    # Day 3: exactly on the county's boundary (a vertex of the polygon): inside.
    await h.tick(local(2027, 3, 3, 9))
    h.clock.set(local(2027, 3, 3, 9, 10))
    await fake.send_location(7001, 27.14, 106.08)
    await h.settle()
    await fake.wait_for(lambda: sum(m.text.startswith("已收到，谢谢。") for m in fake.messages(7001)) == 2)
    # Day 4: "I am fine" typed without the location: asked again, reminded, then escalated as partial.
    await h.tick(local(2027, 3, 4, 9))
    h.clock.set(local(2027, 3, 4, 9, 5))
    await fake.send_text(7001, "1")
    need = await _bot_says(h, 7001, starts("已收到。今天的报到还需要您的位置"))
    assert need.asks_location
    await h.tick(local(2027, 3, 4, 11))
    assert (await _bot_says(h, 7001, starts("提醒：已收到您的回复，但还缺位置"))).asks_location
    await h.tick(local(2027, 3, 4, 13))
    missing = await _bot_says(h, 5001, starts("📍 未发送位置"))
    assert "09:05 回复了但没有发送位置" in missing.text
    states = [o.state for o in h.county.obligations(h.county.strict)][:4]
    assert states == ["done", "done", "done", "partial"]
    with session_scope(h.db.engine) as s:
        from storage.models import LocationCheck
        rows = s.exec(select(LocationCheck).order_by(LocationCheck.id)).all()
        assert [(r.inside, r.area) for r in rows] == [(True, "lianghe"), (False, "guangzhou"), (True, "hongguo")]


async def test_leave_through_approval_the_trip_and_the_return(tg):
    h, fake = tg, tg.fake
    await _bind_strict(h)
    starts = lambda prefix: (lambda m: m.text.startswith(prefix))  # noqa: E731
    h.clock.set(local(2027, 3, 1, 10))
    await fake.send_text(7001, "/leave")
    await _bot_says(h, 7001, starts("请问要去哪里？"))
    await fake.send_text(7001, "贵阳")
    await _bot_says(h, 7001, starts("哪天出发，哪天回来？"))
    await fake.send_text(7001, "3月10日 3月12日")
    await _bot_says(h, 7001, starts("请写明请假事由"))
    await fake.send_text(7001, "看望住院的母亲")
    sent = await _bot_says(h, 7001, starts("请假申请已提交"))
    assert "贵阳，2027-03-10 至 2027-03-12" in sent.text
    # 李娜 approves with the button that moves the area to Guiyang; her alert is edited in place.
    alert = await _bot_says(h, 5001, starts("🧳 请假申请"))
    assert [label for label, _ in alert.buttons] == ["批准（范围改为贵阳市）", "批准（暂停位置核查）", "不批准"]
    await fake.press(5001, alert.message_id, alert.buttons[0][1])
    await fake.wait_for(lambda: fake.message(5001, alert.message_id).edits)
    assert "✅ 请假 #" in fake.message(5001, alert.message_id).text
    approved = await _bot_says(h, 7001, starts("您的请假 #"))
    assert "期间报到位置在贵阳市或本县都可以" in approved.text
    # The trip: check-ins go on, and a share from Guiyang is inside the allowed area.
    await h.tick(local(2027, 3, 11, 9))
    await _bot_says(h, 7001, lambda m: m.asks_location and "13:00" in m.text)
    h.clock.set(local(2027, 3, 11, 9, 20))
    before = len(fake.messages(5001))
    await fake.send_location(7001, 26.60, 106.70, accuracy=25)
    await _bot_says(h, 7001, lambda m: m.text.startswith("已收到，谢谢。") and m.date)
    # The last day: reminded to report back; he does, and 李娜 is told.
    await h.tick(local(2027, 3, 12, 9))
    await _bot_says(h, 7001, starts("今天是您请假 #"))
    h.clock.set(local(2027, 3, 12, 20))
    await fake.send_text(7001, "/back")
    await _bot_says(h, 7001, starts("已销假，欢迎回来。"))
    back = await _bot_says(h, 5001, starts("🏠 王伟（JZ-S）"))
    assert "销假（请假 #" in back.text
    assert not any(m.text.startswith("📍 超出范围") for m in fake.messages(5001)[before:])


async def test_paid_broadcast_flags_greetings_only(db, monkeypatch, tmp_path):
    from datetime import date

    from handlers import greetings
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    fake = FakeTelegram()
    await fake.start()
    h = Harness(db, fake, FixedClock(local(2027, 2, 6, 8)), telegram_paid_broadcast=True)
    assert h.stack.telegram.rate == 1000 and h.stack.telegram.paid_broadcast
    await h.stack.start()
    try:
        holiday = greetings.find_holiday("CN", today=date(2027, 1, 1), name="spring_festival")
        with session_scope(db.engine) as s:
            greetings.enqueue_bulk(s, key=greetings.greeting_key(holiday), kind="greeting", section="greeting", template=holiday.slug,
                                   now=h.clock.now(), audience=greetings.Audience(), holiday=holiday)
        await h.tick(local(2027, 2, 6, 9))  # the greeting (the sweep sees it queued already and adds none)
        await fake.send_text(7002, "/help")
        await h.said(7002, 2)
        sends = [p for method, p in fake.calls if method == "sendMessage" and str(p.get("chat_id")) == "7002"]
        paid = {str(p.get("allow_paid_broadcast", "")).lower() == "true" for p in sends if "春节" in str(p["text"])}
        unpaid = [str(p.get("allow_paid_broadcast", "")).lower() for p in sends if "春节" not in str(p["text"])]
        assert paid == {True} and unpaid and set(unpaid) == {""}, [(str(p["text"])[:20], p.get("allow_paid_broadcast")) for p in sends]
        assert fake.paid_count == 1
    finally:
        await h.stack.stop()
        await fake.stop()


async def test_provider_faults_are_retried_with_bounded_backoff_and_the_outbox_drains(tg):
    """500, 429 with retry_after, then the Bot API unreachable (connection refused); then it comes back."""
    from scheduler.drain import BACKOFF_CAP
    from storage import outbox

    h, fake = tg, tg.fake
    t0 = local(2027, 3, 1, 10)
    with session_scope(h.db.engine) as s:
        ids = [outbox.enqueue(s, channel="telegram", address=chat, body=f"消息 {chat}", now=t0, dedupe_key=f"f:{chat}")
               for chat in ("7002", "5001", "9000")]
    fake.fail_next("sendMessage", 500, "Internal Server Error")
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 45", retry_after=45)
    first = await h.stack.outbox.drain(t0)
    assert (first.sent, first.retried) == (1, 2)
    rows = {m.id: m for m in h.county.out() if m.id in ids}
    waiting = {m.error_code: m.next_attempt_at - t0 for m in rows.values() if m.status == "queued"}
    # python-telegram-bot reports a 5xx as a NetworkError; the 429's retry_after is honoured.
    assert waiting == {"network": timedelta(seconds=30), "429": timedelta(seconds=45)}
    port = fake.port
    await fake.stop()  # the Bot API is unreachable: connection refused
    second = await h.stack.outbox.drain(t0 + timedelta(seconds=45))
    assert (second.sent, second.retried) == (0, 2)
    rows = {m.id: m for m in h.county.out() if m.id in ids and m.status == "queued"}
    assert {m.error_code for m in rows.values()} == {"network"}
    assert all(m.next_attempt_at - (t0 + timedelta(seconds=45)) <= BACKOFF_CAP for m in rows.values())
    await fake.start(port=port)
    third = await h.stack.outbox.drain(t0 + timedelta(minutes=5))
    assert third.sent == 2
    assert {m.status for m in h.county.out() if m.id in ids} == {"sent"}
    delivered = Counter(m.chat_id for msgs in fake.sent.values() for m in msgs if m.text.startswith("消息"))
    assert delivered == {7002: 1, 5001: 1, 9000: 1}  # nothing lost, nothing twice


async def test_a_time_out_is_transient(tg, monkeypatch):
    """python-telegram-bot's TimedOut (the Bot API did not answer in time) is retried, as any network fault."""
    from telegram.error import TimedOut
    from telegram.ext import ExtBot

    from scheduler.channels import TransientSendError
    from storage.outbox import Outgoing

    async def slow(*args, **kwargs):
        raise TimedOut("Timed out")

    monkeypatch.setattr(ExtBot, "send_message", slow)
    with pytest.raises(TransientSendError) as exc:
        await tg.stack.telegram.send(Outgoing(1, "telegram", "7002", "你好", {}, 1, "reply"))
    assert exc.value.code == "network"


async def test_command_menus_per_role_language_and_chat(db, monkeypatch, tmp_path):
    codes = {}

    def officers(h: Harness) -> None:
        departed = officer(h.db.engine, local(2027, 3, 1), name="周离", telegram_id=5003)
        newcomer = officer(h.db.engine, local(2027, 3, 1), name="孙新", township="两河镇")
        with session_scope(h.db.engine) as s:
            s.get(Officer, departed.id).active = False
            h.fake.menus[("chat", 5003, "")] = [{"command": "open", "description": "old"}]  # an earlier run's
            codes["newcomer"] = enrol.issue_code(s, s.get(Officer, newcomer.id), h.clock.now(), days=7).code

    async with serving(db, monkeypatch, tmp_path, officers) as h:
        fake = h.fake
        assert fake.menu_for(7002, "zh") == ["help", "report", "officer", "study", "leave", "back"]
        assert fake.menu_for(7002, "en") == fake.menu_for(7002, "zh")  # in English, the same commands
        assert fake.menus[("default", None, "en")][0]["description"] == "Help"
        assert fake.menus[("default", None, "")][1]["description"] == "书面汇报"
        assistant = fake.menu_for(5001, "zh")
        assert "open" in assistant and "find" in assistant and "transfer" not in assistant
        assert {"transfer", "end"} <= set(fake.menu_for(9000)) and {"transfer", "end"} <= set(fake.menu_for(1))
        assert fake.menu_for(5003) == fake.menu_for(7002)  # the departed officer's chat: a person's menu, no more
        # An officer who binds a chat gets the officers' menu at once.
        assert fake.menu_for(6006) == fake.menu_for(7002)
        await fake.send_text(6006, f"/start {codes['newcomer']}")
        await h.said(6006, 1)
        await h.settle()
        await fake.wait_for(lambda: "open" in fake.menu_for(6006))
        assert "transfer" not in fake.menu_for(6006)


async def test_a_list_of_alerts_opens_each_alert_to_act_on(tg):
    h, fake = tg, tg.fake
    for n in range(4):  # seven people of 李娜's miss Monday's check-in: one list, not seven messages
        supervisee(h.db.engine, local(2027, 3, 1), h.county.li.id, case_number=f"JZ-{n}", name=f"张{n}",
                   phone=f"+861390000000{n}", level="strict")
    for t in (9, 11, 13):
        await h.tick(local(2027, 3, 1, t))
    listed = await h.said(5001, 1)
    assert listed.text.startswith("⚠ 7 条新提醒（第 1-7 条）：") and len(listed.buttons) == 7
    h.clock.set(local(2027, 3, 1, 13, 20))
    label, data = listed.buttons[0]
    assert label == "#1 王伟" and data == "esc:1:show"
    await fake.press(5001, listed.message_id, data)
    opened = await h.said(5001, 2)
    assert opened.text.startswith("⚠ 未报到 #1：王伟（JZ-S，严管，红果镇）")
    assert [d for _, d in opened.buttons] == ["esc:1:ack", "esc:1:reached", "esc:1:unreachable", "esc:1:excuse"]
    await fake.press(5001, opened.message_id, "esc:1:reached")
    await fake.wait_for(lambda: bool(fake.message(5001, opened.message_id).edits))
    assert fake.message(5001, opened.message_id).text.endswith("✅ 已联系上 #1 — 李娜，13:20")
    assert next(e for e in h.county.escalations() if e.id == 1).resolution == "reached"
