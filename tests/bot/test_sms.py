"""SMS through both providers behind the one `sms` channel: the real twilio Client against the Twilio stand-in
(inbound and status webhooks signed as Twilio signs them), and Tencent Cloud's SDK against the Tencent Cloud stand-in
(TC3-signed requests, approved templates, JSON callbacks on the secret path). The flows a person and an officer go
through run against both (the `sms` fixture); what only one provider has runs against that one."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.runtime import Runtime
from bot.sandbox.loopback import LoopbackServer, free_port
from bot.sandbox.tencent_sms import FakeTencentSms
from bot.sandbox.twilio_api import FakeTwilio
from bot.settings import load_settings
from bot.stack import Stack
from bot.web import make_app
from content.sms_templates import load_templates
from scheduler.clock import FixedClock
from storage.db import session_scope
from storage.models import Message, WrittenReport
from tests.conftest import clear_env
from tests.sim import County, local


def provider_settings(fake) -> dict:
    """The settings that point the service at `fake`, a Twilio or a Tencent Cloud stand-in."""
    if isinstance(fake, FakeTencentSms):
        return dict(sms_provider="tencent", tencent_secret_id=fake.secret_id, tencent_secret_key=fake.secret_key,
                    tencent_sms_app_id=fake.app_id, sms_sign_name=fake.sign_name,
                    tencent_sms_endpoint=fake.endpoint, tencent_callback_secret=fake.callback_secret)
    return dict(twilio_account_sid=fake.account_sid, twilio_auth_token=fake.auth_token,
                twilio_from_number=fake.number, twilio_api_base_url=fake.base_url)


class Harness:
    def __init__(self, db, fake: FakeTwilio | FakeTencentSms, clock: FixedClock, port: int, **settings) -> None:
        self.db, self.fake, self.clock, self.port = db, fake, clock, port
        self.provider = "tencent" if isinstance(fake, FakeTencentSms) else "twilio"
        self.county = County(db)
        s = load_settings(**{**dict(database_url=db.url, public_url=f"http://127.0.0.1:{port}", sms_rate=50,
                                    voice_rate=50), **provider_settings(fake), **settings})
        self.rt = Runtime(s, db.engine, clock)
        self.stack = Stack(self.rt)

    async def tick(self, at) -> None:
        self.clock.set(at)
        await self.stack.ticker.tick(at)

    async def text(self, phone: str, body: str, **kw):
        resp = await self.fake.send_sms(phone, body, **kw)
        await self.stack.idle()
        return resp

    def rows(self, **where) -> list[Message]:
        with session_scope(self.db.engine) as s:
            q = select(Message)
            address = where.pop("address", None)  # stored encrypted: matched after decryption
            for k, v in where.items():
                q = q.where(getattr(Message, k) == v)
            return [m for m in s.exec(q.order_by(Message.id)) if address is None or m.address == address]


@asynccontextmanager
async def serving(db, monkeypatch, tmp_path, prepare: Callable[[Harness], None] | None = None,
                  provider: str = "twilio", **settings):
    """The service with the provider's stand-in, on loopback; `prepare` changes the county before it starts."""
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    fake = FakeTencentSms(load_templates()) if provider == "tencent" else FakeTwilio()
    await fake.start()
    port = free_port()
    h = Harness(db, fake, FixedClock(local(2027, 3, 1, 8)), port, **settings)
    if prepare is not None:
        prepare(h)
    fake.service_url = f"http://127.0.0.1:{port}"
    server = LoopbackServer(make_app(h.clock, {}, h.stack.routes()))
    await server.start(port=port)
    await h.stack.start()
    try:
        yield h
    finally:
        await h.stack.stop()
        await server.stop()
        await fake.stop()


@pytest.fixture(params=["twilio", "tencent"])
async def sms(request, db, monkeypatch, tmp_path):
    """The service on one provider, then the other."""
    async with serving(db, monkeypatch, tmp_path, provider=request.param) as h:
        yield h


@pytest.fixture
async def twilio_sms(db, monkeypatch, tmp_path):
    async with serving(db, monkeypatch, tmp_path) as h:
        yield h


# What each provider answers for the same fact: the code stored with the message.
UNSUBSCRIBED = {"twilio": "21610", "tencent": "FailedOperation.PhoneNumberInBlacklist"}
UNDELIVERED = {"twilio": 30003, "tencent": "MK:0005"}  # a carrier's code in a receipt
STOP = {"twilio": "STOP", "tencent": "TD"}  # what a person texts to opt out


def fail_next(h, phone: str, fault: str) -> str:
    """Make the provider refuse the next send to `phone` for `fault` (rate_limit, server_error); the code stored."""
    if h.provider == "tencent":
        code = {"rate_limit": "LimitExceeded.PhoneNumberThirtySecondLimit", "server_error": "InternalError"}[fault]
        h.fake.fail_next(phone, code)
        return code
    status, code = {"rate_limit": (429, 20429), "server_error": (503, None)}[fault]
    h.fake.fail_next(phone, status, code)
    return str(code or status)


def words(body: str) -> str:
    """A message's words with its line breaks as spaces: a notice (Tencent Cloud) carries its text on one line."""
    return " ".join(body.split())


WANG, TOM = "+8613800000001", "+8613800000003"


async def test_check_in_keywords_in_chinese_and_english(sms):
    h, fake = sms, sms.fake
    await h.tick(local(2027, 3, 1, 9))
    (prompt,) = fake.to(WANG)
    assert prompt.body == "今天的报到时间到了。请在 13:00 前回复。\n回复1表示正常，回复2联系协管员。"
    if h.provider == "twilio":
        assert prompt.status_callback == f"http://127.0.0.1:{h.port}/twilio/status"
    else:  # the check-in's approved template, with the county's signature
        assert prompt.texts == [f"【{fake.sign_name}】{prompt.body}"] and prompt.template_ids == ["1100001"]
    assert fake.to(TOM)[0].body.endswith("Reply 1 if all is well, 2 to reach your officer.")
    h.clock.set(local(2027, 3, 1, 9, 5))
    resp = await h.text(WANG, "好")
    assert resp.status_code == 200  # replies go by the provider's API, not in the callback's answer
    assert ("<Response></Response>" in resp.text) if h.provider == "twilio" else (resp.json()["result"] == 0)
    assert fake.to(WANG)[-1].body.startswith("已收到，谢谢。下次报到：明天 09:00")
    await h.text(TOM, "HELP ME")
    assert fake.to(TOM)[-1].body == "Received. We have asked 李娜 to contact you soon."
    (esc,) = [e for e in h.county.escalations() if e.supervisee_id == h.county.lenient.id]
    assert esc.kind == "asked_officer"
    await h.text(TOM, "HELP")
    assert fake.to(TOM)[-1].body.startswith("You can:")
    await h.text(WANG, "帮助")
    assert fake.to(WANG)[-1].body.startswith("您可以：")
    await h.text("+8613912340000", "who is this")
    assert fake.to("+8613912340000")[-1].body == "本号码仅供社区矫正报到使用。"


async def test_two_part_report_by_sms(sms):
    h, fake = sms, sms.fake
    h.clock.set(local(2027, 3, 5, 10))
    await h.text(WANG, "汇报 周一到周五在砖厂上班。")
    await h.text(WANG, "周三参加了学习。")
    await h.text(WANG, "完成")
    with session_scope(h.db.engine) as s:
        (report,) = s.exec(select(WrittenReport)).all()
    assert report.parts == 2 and report.body == "周一到周五在砖厂上班。\n\n周三参加了学习。"
    assert fake.to(WANG)[-1].body == f"汇报已收到（共 2 条）。回执号：{report.receipt}。协管员现在可以看到。"
    await h.text(TOM, "REPORT Worked Mon-Fri.")
    await h.text(TOM, "DONE")
    assert fake.to(TOM)[-1].body.startswith("Report received (1 messages). Receipt: R-2027-")


async def test_leave_asked_for_by_sms(sms):
    """A person on a feature phone asks for leave in four texts; the officer is asked to decide."""
    from storage.models import Leave

    h, fake = sms, sms.fake
    h.clock.set(local(2027, 3, 5, 10))
    await h.text(WANG, "请假")
    assert fake.to(WANG)[-1].body.startswith("请问要去哪里？")
    await h.text(WANG, "贵阳")
    await h.text(WANG, "3月20日到3月22日")
    await h.text(WANG, "探望母亲")
    with session_scope(h.db.engine) as s:
        (leave,) = s.exec(select(Leave)).all()
    assert (leave.destination, leave.reason, leave.state) == ("贵阳", "探望母亲", "requested")
    assert fake.to(WANG)[-1].body.startswith(f"请假申请已提交（编号 {leave.id}）：贵阳，2027-03-20 至 2027-03-22。")
    assert [r.kind for r in h.rows(officer_id=h.county.li.id)] == ["leave_request"]


async def test_forged_missing_and_altered_signatures_are_refused(twilio_sms):
    h, fake = twilio_sms, twilio_sms.fake
    params = fake.inbound_params(WANG, "1")
    assert (await fake.post_signed("/twilio/sms", params, signature="")).status_code == 403
    assert (await fake.post_signed("/twilio/sms", params, signature="bm90IGEgc2lnbmF0dXJl")).status_code == 403
    assert (await fake.post_signed("/twilio/sms", params, tamper={"Body": "2"})).status_code == 403
    assert (await fake.post_signed("/twilio/status", {"MessageSid": "SMx", "MessageStatus": "delivered"},
                                   signature="bad")).status_code == 403
    await h.stack.idle()
    assert h.rows(direction="in") == [] and fake.sent == []


async def test_a_message_sid_delivered_three_times_is_handled_once(sms):
    h, fake = sms, sms.fake
    for _ in range(3):
        assert (await h.text(WANG, "帮助", sid="SM" + "a" * 32)).status_code == 200
    assert len(h.rows(direction="in")) == 1 and len(fake.to(WANG)) == 1


async def test_stop_is_escalated_and_start_undoes_it(sms):
    h, fake = sms, sms.fake
    await h.text(WANG, STOP[h.provider])
    assert fake.to(WANG) == []  # the carrier confirms STOP itself
    person = h.county.person(h.county.strict)
    assert person.sms_blocked_reason == "opted_out"
    (esc,) = h.county.escalations()
    assert esc.kind == "sms_opt_out" and esc.officer_id == h.county.li.id
    (alert,) = h.rows(kind="escalation")
    assert alert.body.startswith(f"📵 退订短信 #{esc.id}：王伟") and "仍需按要求报到" in alert.body
    await h.text(WANG, "START")
    assert h.county.person(h.county.strict).sms_blocked_at is None
    assert fake.to(WANG)[-1].body.startswith("已恢复短信提醒")


async def test_an_unsubscribed_number_is_unreachable_and_escalated(sms):
    """Twilio's 21610, Tencent Cloud's blacklisted number: the same fact, the same course."""
    h, fake = sms, sms.fake
    fake.unsubscribe(WANG)
    await h.tick(local(2027, 3, 1, 9))
    (row,) = h.rows(kind="checkin_prompt", address=WANG)
    assert (row.status, row.error_code) == ("failed", UNSUBSCRIBED[h.provider])
    person = h.county.person(h.county.strict)
    assert person.sms_blocked_reason == "opted_out"
    (esc,) = [e for e in h.county.escalations() if e.supervisee_id == person.id]
    assert esc.kind == "unreachable"
    alert = next(m for m in h.rows(kind="escalation") if "JZ-S" in m.body)
    assert "短信无法送达：对方已退订短信" in alert.body and "请另行安排联系方式" in alert.body


async def test_status_callbacks_and_repeated_undelivered(sms):
    h, fake = sms, sms.fake
    h.clock.set(local(2027, 3, 1, 10))
    await h.text(WANG, "帮助")
    sid = fake.to(WANG)[-1].sid
    await fake.report_status(sid, "sent")
    await fake.report_status(sid, "delivered")
    await fake.report_status(sid, "sent")  # late and out of order: ignored
    (row,) = h.rows(provider_id=sid)
    assert row.status == "delivered"
    for _ in range(3):
        await h.text(WANG, "帮助")
        await fake.report_status(fake.to(WANG)[-1].sid, "undelivered", error_code=UNDELIVERED[h.provider])
    rows = h.rows(address=WANG, direction="out")
    assert [r.status for r in rows][-3:] == ["undelivered"] * 3 and rows[-1].error_code == str(UNDELIVERED[h.provider])
    assert h.county.person(h.county.strict).sms_blocked_reason == "undelivered"
    assert [e.kind for e in h.county.escalations()] == ["unreachable"]


async def test_rate_limit_and_server_errors_are_retried(sms):
    h, fake = sms, sms.fake
    limited, broken = fail_next(h, WANG, "rate_limit"), fail_next(h, TOM, "server_error")
    await h.tick(local(2027, 3, 1, 9))
    retry = {r.address: r for r in h.rows(kind="checkin_prompt") if r.channel == "sms"}
    assert (retry[WANG].status, retry[WANG].error_code) == ("queued", limited)
    assert (retry[TOM].status, retry[TOM].error_code) == ("queued", broken)
    await h.tick(local(2027, 3, 1, 9) + timedelta(minutes=1))
    assert len(fake.to(WANG)) == 1 and len(fake.to(TOM)) == 1
    assert {r.status for r in h.rows(kind="checkin_prompt") if r.channel == "sms"} == {"sent"}


async def test_messaging_service_instead_of_a_number(db, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    fake = FakeTwilio()
    await fake.start()
    try:
        County(db)
        s = load_settings(database_url=db.url, twilio_account_sid=fake.account_sid, twilio_auth_token=fake.auth_token,
                          twilio_messaging_service_sid="MG" + "1" * 32, twilio_api_base_url=fake.base_url, sms_rate=50)
        stack = Stack(Runtime(s, db.engine, FixedClock(local(2027, 3, 1, 9))))
        await stack.ticker.tick(local(2027, 3, 1, 9))
        request = fake.requests[0]
        assert request["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in request
        assert "StatusCallback" not in request  # no public URL: Twilio has nowhere to call back
    finally:
        await fake.stop()


async def test_logs_carry_ids_not_phone_numbers_or_text(sms, caplog):
    import logging

    h, fake = sms, sms.fake
    caplog.set_level(logging.DEBUG)
    await h.tick(local(2027, 3, 1, 9))
    await h.text(WANG, "汇报 私人的内容")
    await h.text(WANG, "完成")
    await h.text(WANG, "STOP")
    await h.tick(local(2027, 3, 1, 14))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "message" in logged  # something was logged
    credential = fake.secret_key if h.provider == "tencent" else fake.auth_token
    for secret in (WANG, "13800000001", "138 0000 0001", "私人的内容", "王伟", credential):
        assert secret not in logged, secret


async def test_21614_a_landline_is_unreachable_by_sms_and_escalated(twilio_sms):
    h, fake = twilio_sms, twilio_sms.fake
    fake.fail_next(WANG, 400, 21614)
    await h.tick(local(2027, 3, 1, 9))
    (row,) = h.rows(kind="checkin_prompt", address=WANG)
    assert (row.status, row.error_code) == ("failed", "21614")  # permanent: not retried
    assert h.county.person(h.county.strict).sms_blocked_reason == "not_mobile"
    alert = next(m for m in h.rows(kind="escalation") if "JZ-S" in m.body)
    assert "短信无法送达：不是手机号码" in alert.body
    await h.tick(local(2027, 3, 1, 9, 30))
    assert len(h.rows(kind="checkin_prompt", address=WANG)) == 1 and fake.to(WANG) == []


@pytest.mark.parametrize("provider", ["twilio", "tencent"])
async def test_an_officer_on_sms_gets_a_list_of_alerts_and_runs_the_case_by_text(db, monkeypatch, tmp_path, provider):
    """李娜 has no Telegram: everything the officer's side does reaches her by SMS (on Tencent Cloud, the long
    alerts and cards go as notices: the same words on one line, in as many SMS as they take)."""
    from storage.models import Officer, Supervisee
    from tests.factories import supervisee

    li = "+8613700000005"

    def sms_officer(h: Harness) -> None:
        with session_scope(h.db.engine) as s:  # through the model: the phone's blind index follows
            row = s.get(Officer, h.county.li.id)
            row.telegram_id, row.phone = None, li
        for n in range(4):
            supervisee(h.db.engine, local(2027, 3, 1), h.county.li.id, case_number=f"JZ-{n}", name=f"张{n}",
                       phone=f"+861390000000{n}", level="strict")

    async with serving(db, monkeypatch, tmp_path, sms_officer, provider=provider) as h:
        fake = h.fake
        for t in (9, 11, 13):
            await h.tick(local(2027, 3, 1, t))
        (listed,) = [m for m in fake.to(li) if m.body.startswith("⚠")]
        assert listed.body.startswith("⚠ 7 条新提醒（第 1-7 条）：") and "短信回复：知悉 编号" in listed.body
        esc = [e for e in h.county.escalations() if e.supervisee_id == h.county.strict.id][0]
        h.clock.set(local(2027, 3, 1, 13, 10))
        await h.text(li, f"知悉 {esc.id}")
        assert fake.to(li)[-1].body.startswith(f"✅ 已知悉 #{esc.id}")
        await h.text(li, "/find 王")
        assert words(fake.to(li)[-1].body) == words("找到 1 人，显示 1 人：\n· 王伟（JZ-S，严管，红果镇，在矫）138 0000 0001")
        await h.text(li, "/pause JZ-S 3 住院")
        assert fake.to(li)[-1].body.startswith("✅ 王伟（JZ-S）从 2027-03-01 到 2027-03-03 暂停报到")
        assert fake.to(WANG)[-1].body.startswith("您的报到从 2027-03-01 到 2027-03-03 暂停。")
        await h.text(li, "/case JZ-S")
        card = words(fake.to(li)[-1].body)
        assert "暂停中：2027-03-01 至 2027-03-03，原因：住院" in card and "→ 您的报到从 2027-03-01" in card
        with session_scope(h.db.engine) as s:
            assert s.get(Supervisee, h.county.strict.id).paused_until is not None
