"""Check-ins by phone call: the real twilio Client against the Calls API stand-in, a simulated telephone that
fetches the service's TwiML (checked as Twilio would read it), presses keys and posts signed callbacks."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlmodel import select

from bot.sandbox.twilio_calls import TwimlError
from storage.db import session_scope
from storage.models import Message, Supervisee, WrittenReport
from tests.bot.test_sms import TOM, WANG, serving
from tests.sim import local

MENU = "一切正常，请按1。需要协管员给您回电话，请按2。电话汇报，请按3。再听一遍，请按9。"


def wang_on_voice(h) -> None:
    with session_scope(h.db.engine) as s:
        s.execute(update(Supervisee).where(Supervisee.id == h.county.strict.id).values(preferred_channel="voice"))


@pytest.fixture
async def voice(db, monkeypatch, tmp_path):
    async with serving(db, monkeypatch, tmp_path, prepare=wang_on_voice) as h:
        yield h


async def prompt_call(h):
    """Monday 09:00: the check-in prompt goes to 王伟 as a call; the phone rings at 09:05."""
    await h.tick(local(2027, 3, 1, 9))
    (call,) = h.fake.calls.to(WANG)
    h.clock.set(local(2027, 3, 1, 9, 5))
    return call


async def test_a_check_in_answered_with_1_is_received_and_said_in_the_same_call(voice):
    h, fake = voice, voice.fake
    call = await prompt_call(h)
    assert fake.sent and all(m.to != WANG for m in fake.sent)  # Tom's prompt by SMS; none to 王伟
    assert call.url == f"http://127.0.0.1:{h.port}/twilio/voice/answer?m={h.rows(kind='checkin_prompt', address=WANG)[0].id}"
    assert call.machine_detection == "Enable" and call.from_ == fake.number
    await fake.calls.ring(call.sid, keys=["1"])
    await h.stack.idle()
    assert call.heard[:3] == ["您好，这是县社区矫正中心的报到电话。", "今天的报到时间到了。请在 13:00 前回复。",
                              MENU]
    assert call.heard[3].startswith("已收到，谢谢。下次报到：明天 09:00") and call.heard[-1] == "谢谢，再见。"
    assert set(call.languages) == {"cmn-CN"}
    assert [o.state for o in h.county.obligations(h.county.strict)][0] == "done"
    (reply,) = h.rows(direction="out", channel="voice", kind="reply")
    assert reply.status == "sent" and reply.provider_id.startswith(call.sid)
    assert len(fake.calls.to(WANG)) == 1  # said in the call: no call back
    (prompt,) = h.rows(kind="checkin_prompt", address=WANG)
    assert (prompt.status, prompt.error_code) == ("delivered", None)  # the status callback: completed


async def test_2_asks_the_officer_at_once(voice):
    h, fake = voice, voice.fake
    call = await prompt_call(h)
    await fake.calls.ring(call.sid, keys=["2"])
    await h.stack.idle()
    assert "已收到。已通知李娜尽快联系您。" in call.heard
    (esc,) = h.county.escalations()
    assert (esc.kind, esc.supervisee_id) == ("asked_officer", h.county.strict.id)


async def test_3_records_a_spoken_report_for_the_officer_then_the_check_in_is_answered(voice):
    h, fake = voice, voice.fake
    call = await prompt_call(h)
    await fake.calls.ring(call.sid, keys=["3", "1"], record_seconds=40)
    await h.stack.idle()
    i = call.heard.index("请在提示音后开始汇报，最长两分钟。说完请按井号键。")
    assert call.heard[i + 1:i + 3] == ["您的电话汇报已收到，协管员现在可以收听。", MENU]
    assert call.heard[i + 3].startswith("已收到，谢谢。下次报到：明天 09:00") and call.heard[-1] == "谢谢，再见。"
    with session_scope(h.db.engine) as s:
        (report,) = s.exec(select(WrittenReport)).all()
        stored = s.exec(select(Message).where(Message.kind == "recording")).one()
    assert (report.supervisee_id, report.recording_seconds) == (h.county.strict.id, 40)
    assert report.recording_url == f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Recordings/{call.recorded[0]}"
    assert report.body == "（电话汇报，40秒：请在控制台收听）" and report.receipt.startswith("R-2027-")
    assert stored.payload is None  # the recording's address lives in the report, not in the message log
    (notice,) = h.rows(kind="report_notice")
    assert notice.body.startswith(f"🎙 电话汇报 {report.receipt}（#{report.id}）：王伟（JZ-S，") and "40秒" in notice.body
    assert h.county.obligations(h.county.strict)[0].state == "done"
    assert len(fake.calls.to(WANG)) == 1


async def test_9_says_it_again_and_no_key_asks_once_more_then_goodbye(voice):
    h, fake = voice, voice.fake
    call = await prompt_call(h)
    await fake.calls.ring(call.sid, keys=["9"])
    await h.stack.idle()
    assert call.heard.count("今天的报到时间到了。请在 13:00 前回复。") == 2
    assert call.heard[-3:] == ["没有听到您按键。", MENU, "谢谢，再见。"]
    assert h.rows(direction="in") == []
    assert h.county.obligations(h.county.strict)[0].state == "prompted"


async def test_an_unanswered_call_is_placed_again_twice_inside_the_window(voice):
    """No answer at 09:05, a voicemail at 09:25, busy at 09:45: three calls, 20 minutes apart, then no more; the
    reminder's call at 12:45 is not placed again, as 13:05 is past the check-in's window (13:00)."""
    h, fake = voice, voice.fake
    call = await prompt_call(h)
    await fake.calls.ring(call.sid, outcome="no-answer")
    (prompt,) = h.rows(kind="checkin_prompt", address=WANG)
    assert (prompt.status, prompt.error_code) == ("queued", "no-answer")
    assert prompt.next_attempt_at == local(2027, 3, 1, 9, 25)
    await h.tick(local(2027, 3, 1, 9, 24))
    assert len(fake.calls.to(WANG)) == 1
    await h.tick(local(2027, 3, 1, 9, 25))
    second = fake.calls.to(WANG)[-1]
    await fake.calls.ring(second.sid, outcome="voicemail", keys=["1"])  # a machine presses nothing, hears nothing
    await h.stack.idle()
    assert second.heard == [] and second.pressed == [] and h.rows(direction="in") == []
    (prompt,) = h.rows(kind="checkin_prompt", address=WANG)
    assert (prompt.status, prompt.error_code, prompt.next_attempt_at) == ("queued", "voicemail",
                                                                          local(2027, 3, 1, 9, 45))
    await h.tick(local(2027, 3, 1, 9, 45))
    third = fake.calls.to(WANG)[-1]
    await fake.calls.ring(third.sid, outcome="busy")
    (prompt,) = h.rows(kind="checkin_prompt", address=WANG)
    assert (prompt.status, prompt.error_code, prompt.attempts) == ("undelivered", "busy", 3)
    await h.tick(local(2027, 3, 1, 10, 30))
    assert len(fake.calls.to(WANG)) == 3
    assert h.county.obligations(h.county.strict)[0].state == "prompted"
    await h.tick(local(2027, 3, 1, 11))  # the reminder: a call of its own
    reminder_call = fake.calls.to(WANG)[-1]
    h.clock.set(local(2027, 3, 1, 12, 45))
    await fake.calls.ring(reminder_call.sid, outcome="no-answer")
    (reminder,) = h.rows(kind="checkin_reminder", address=WANG)
    assert (reminder.status, reminder.error_code) == ("undelivered", "no-answer")
    await h.tick(local(2027, 3, 1, 13))  # the window closes: missed, and escalated as any check-in
    assert [e.kind for e in h.county.escalations() if e.supervisee_id == h.county.strict.id] == ["missed_checkin"]


async def test_a_call_to_place_again_is_dropped_once_the_check_in_is_over(voice):
    """However late the drain gets to it (a stopped service, a backlog), a retry never rings after the window."""
    h, fake = voice, voice.fake
    call = await prompt_call(h)
    await fake.calls.ring(call.sid, outcome="no-answer")
    await h.tick(local(2027, 3, 1, 13, 1))
    assert len(fake.calls.to(WANG)) == 1
    (prompt,) = h.rows(kind="checkin_prompt", address=WANG)
    assert (prompt.status, prompt.expires_at) == ("expired", local(2027, 3, 1, 13))
    assert h.county.obligations(h.county.strict)[0].state == "missed"


async def test_calls_in_from_a_known_and_an_unknown_number(voice):
    h, fake = voice, voice.fake
    await h.tick(local(2027, 3, 1, 9))
    h.clock.set(local(2027, 3, 1, 9, 30))
    call = await fake.calls.call_in(TOM, keys=["1"])  # Tom is on SMS; he calls all the same
    await h.stack.idle()
    assert call.heard[0] == "Hello, this is your check-in call from the community corrections office."
    assert any(w.startswith("Received, thank you.") for w in call.heard)
    assert h.county.obligations(h.county.lenient)[0].state == "done"
    stranger = await fake.calls.call_in("+8613912340000", keys=["1"])
    assert stranger.heard == ["这个号码暂时无法接听您的来电。再见。"] and stranger.pressed == []
    assert [m.address for m in h.rows(direction="in")] == [TOM]


async def test_forged_callbacks_are_refused_and_change_nothing(voice):
    h, fake = voice, voice.fake
    call = await prompt_call(h)
    params = {"CallSid": call.sid, "AccountSid": fake.account_sid, "From": fake.number, "To": WANG,
              "CallStatus": "in-progress", "Direction": "outbound-api", "Digits": "1"}
    for path in ("/twilio/voice/gather", "/twilio/voice/answer?m=1", "/twilio/voice/incoming",
                 "/twilio/voice/status"):
        assert (await fake.post_signed(path, params, signature="")).status_code == 403
        assert (await fake.post_signed(path, params, tamper={"Digits": "2"})).status_code == 403
    await h.stack.idle()
    assert h.rows(direction="in") == [] and h.county.escalations() == []


async def test_the_telephone_refuses_twiml_twilio_would_not_take(voice):
    """The stand-in's checks can fail: TwiML without a <Gather> action is refused as Twilio would misread it."""
    from xml.etree import ElementTree as ET

    from bot.sandbox.twilio_calls import Calls

    bad = ET.fromstring('<Response><Gather numDigits="1"><Say>x</Say></Gather></Response>')
    with pytest.raises(TwimlError):
        Calls._parse('<Response><Speak>x</Speak></Response>')
    with pytest.raises(TwimlError):
        voice.fake.calls._gather(type("C", (), {"heard": [], "languages": [], "pressed": []})(), bad[0], ["1"])


async def test_a_purge_deletes_the_recordings_at_twilio(voice):
    import asyncio
    from datetime import date

    from bot.channels.voice import delete_recordings
    from handlers import purge

    h, fake = voice, voice.fake
    call = await prompt_call(h)
    await fake.calls.ring(call.sid, keys=["3"], record_seconds=12)
    await h.stack.idle()
    (rec,) = call.recorded
    with session_scope(h.db.engine) as s:
        s.execute(update(Supervisee).where(Supervisee.id == h.county.strict.id)
                  .values(supervision_end=date(2027, 3, 31), status="ended"))
    with session_scope(h.db.engine) as s:
        done = purge.purge(s, now=local(2032, 4, 2, 10), years=5, zone=h.county.cfg.zone)
        left = await asyncio.to_thread(delete_recordings, fake.account_sid, fake.auth_token, fake.base_url,
                                       done.recordings + [f"{fake.base_url}/2010-04-01/Accounts/x/Recordings/REgone"])
    assert done.removed["written_reports"] == 1 and len(done.recordings) == 1 and done.recordings[0].endswith(rec)
    assert fake.calls.deleted == [rec] and left == []  # one already gone counts as deleted
    assert call.recorded == []


async def test_a_call_that_cannot_connect_makes_the_person_unreachable_by_voice(voice):
    """Twilio's `failed` (no such number): from now on by SMS, the same prompt goes by SMS, the officer alerted."""
    h, fake = voice, voice.fake
    call = await prompt_call(h)
    await fake.calls.ring(call.sid, outcome="failed")
    await h.tick(local(2027, 3, 1, 9, 6))
    person = h.county.person(h.county.strict)
    assert person.preferred_channel == "sms"
    (by_sms,) = fake.to(WANG)
    assert by_sms.body.startswith("今天的报到时间到了。请在 13:00 前回复。")
    (esc,) = [e for e in h.county.escalations() if e.supervisee_id == person.id]
    assert esc.kind == "unreachable"
    alert = next(m for m in h.rows(kind="escalation") if "JZ-S" in m.body)
    assert "09:05 电话无法联系到本人：电话无法接通（号码可能不存在）。之后改用短信联系。" in alert.body


def test_five_check_in_calls_unanswered_in_a_row_make_the_person_unreachable_by_voice(db):
    """Each left unanswered after its retries; a call answered in between starts the count again."""
    from datetime import timedelta

    from content.policy import load_policy
    from handlers.failures import delivery_failed
    from storage import outbox
    from tests.sim import SH, County

    c = County(db)
    policy, at = load_policy(), local(2027, 3, 1, 9)
    with session_scope(c.engine) as s:
        s.execute(update(Supervisee).where(Supervisee.id == c.strict.id).values(preferred_channel="voice"))

    def call(day: int, status: str) -> int:
        with session_scope(c.engine) as s:
            mid = outbox.enqueue(s, channel="voice", address=WANG, body="x", now=at + timedelta(days=day),
                                 kind="checkin_prompt", supervisee_id=c.strict.id, dedupe_key=f"t:{day}")
            s.get(Message, mid).status, s.get(Message, mid).error_code = status, "no-answer"
        return mid

    def fail(mid: int) -> None:
        with session_scope(c.engine) as s:
            delivery_failed(s, mid, "no-answer", at, zone=SH, policy=policy)

    for day in range(4):
        fail(call(day, "undelivered"))
    fail(call(4, "delivered"))  # answered on the fifth day
    for day in range(5, 9):
        fail(call(day, "undelivered"))
    assert c.escalations() == [] and c.person(c.strict).preferred_channel == "voice"
    fail(call(9, "undelivered"))  # five in a row
    (esc,) = c.escalations()
    assert esc.kind == "unreachable" and '"reason": "unanswered"' in esc.note
    assert c.person(c.strict).preferred_channel == "sms"


def calls_before_escalating(h) -> None:
    """王伟 on voice; the policy calls people on SMS once before a check-in is missed ([voice])."""
    from dataclasses import replace

    wang_on_voice(h)
    cfg = h.stack.ticker.cfg
    assert cfg.calls  # the voice channel is set up
    voice = cfg.policy.voice.model_copy(update={"call_before_escalating": True})
    h.stack.ticker.cfg = replace(cfg, policy=cfg.policy.model_copy(update={"voice": voice}))


@pytest.fixture
async def calling(db, monkeypatch, tmp_path):
    async with serving(db, monkeypatch, tmp_path, prepare=calls_before_escalating) as h:
        yield h


async def test_a_person_on_sms_is_called_once_before_the_check_in_is_missed(calling):
    """Tom (SMS) has the prompt at 09:00 and the reminder at 11:00 by SMS; at 12:00, an hour before the window
    closes, one call with the keypad menu; his 1 in the call answers the check-in."""
    h, fake = calling, calling.fake
    await h.tick(local(2027, 3, 1, 9))
    await h.tick(local(2027, 3, 1, 11))
    assert [m.body.split(".")[0] for m in fake.to(TOM)] == ["Time for your check-in",
                                                                "Reminder: we have not received today's check-in"]
    await h.tick(local(2027, 3, 1, 11, 59))
    assert fake.calls.to(TOM) == []
    await h.tick(local(2027, 3, 1, 12))
    (call,) = fake.calls.to(TOM)
    await h.tick(local(2027, 3, 1, 12, 1))
    assert len(fake.calls.to(TOM)) == 1  # once
    assert len(h.rows(channel="voice", address=WANG)) == 2  # 王伟 is on voice: his prompt and reminder, no more
    await fake.calls.ring(call.sid, keys=["1"])
    await h.stack.idle()
    assert call.heard[1] == "Reminder: we have not received today's check-in. Please answer by 13:00." and "press 1" in call.heard[2]
    assert any(w.startswith("Received, thank you.") for w in call.heard)
    assert h.county.obligations(h.county.lenient)[0].state == "done"
    assert len(fake.to(TOM)) == 2  # the answer's reply was said in the call


async def test_a_call_before_escalating_left_unanswered_changes_nothing_but_the_check_in_escalates(calling):
    h, fake = calling, calling.fake
    for hour in (9, 11, 12):
        await h.tick(local(2027, 3, 1, hour))
    (call,) = fake.calls.to(TOM)
    h.clock.set(local(2027, 3, 1, 12, 2))
    await fake.calls.ring(call.sid, outcome="no-answer")
    await h.tick(local(2027, 3, 1, 12, 30))
    assert len(fake.calls.to(TOM)) == 1  # not placed again: it was the one call
    await h.tick(local(2027, 3, 1, 13))
    tom = h.county.person(h.county.lenient)
    assert (tom.preferred_channel, tom.sms_blocked_at) == ("sms", None)
    assert [e.kind for e in h.county.escalations() if e.supervisee_id == tom.id] == ["missed_checkin"]


async def test_without_the_policy_a_person_on_sms_is_never_called(voice):
    h, fake = voice, voice.fake
    for hour in (9, 11, 12, 13):
        await h.tick(local(2027, 3, 1, hour))
    assert fake.calls.to(TOM) == [] and len(fake.to(TOM)) == 2


def test_a_person_on_a_landline_stays_on_voice_when_calls_fail_and_the_officer_is_asked_to_reach_them(db):
    from content.policy import load_policy
    from handlers.failures import delivery_failed
    from storage import outbox
    from tests.sim import SH, County

    c, at = County(db), local(2027, 3, 1, 9)
    with session_scope(c.engine) as s:
        s.execute(update(Supervisee).where(Supervisee.id == c.strict.id)
                  .values(preferred_channel="voice", phone="+861065123456"))
        mid = outbox.enqueue(s, channel="voice", address="+861065123456", body="x", now=at, kind="checkin_prompt",
                             supervisee_id=c.strict.id, dedupe_key="t:1")
        s.get(Message, mid).status = "failed"
    with session_scope(c.engine) as s:
        delivery_failed(s, mid, "failed", at, zone=SH, policy=load_policy())
    assert c.person(c.strict).preferred_channel == "voice"  # a landline takes no SMS
    with session_scope(c.engine) as s:
        assert s.exec(select(Message).where(Message.channel == "sms")).all() == []
    (esc,) = c.escalations()
    assert esc.kind == "unreachable" and '"fallback": false' in esc.note


def test_calls_are_placed_at_most_checkin_voice_rate_a_second(db, monkeypatch, tmp_path):
    """The setting reaches the drain's limiter for calls (the drain's spacing itself: tests/scheduler/test_outbox.py);
    a rate that is not a positive number is refused by name."""
    from bot.runtime import Runtime
    from bot.settings import SettingsError, load_settings
    from bot.stack import Stack
    from scheduler.clock import FixedClock
    from tests.conftest import clear_env

    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)
    twilio = dict(database_url=db.url, twilio_account_sid="AC" + "0" * 32, twilio_auth_token="token",
                  twilio_from_number="+14155550100", public_url="http://127.0.0.1:9")
    monkeypatch.setenv("CHECKIN_VOICE_RATE", "0.5")
    stack = Stack(Runtime(load_settings(**twilio), db.engine, FixedClock(local(2027, 3, 1, 8))))
    calls, texts = stack.outbox._limiters["voice"], stack.outbox._limiters["sms"]
    assert calls.max_rate / calls.time_period == 0.5 and texts.max_rate / texts.time_period != 0.5
    monkeypatch.setenv("CHECKIN_VOICE_RATE", "0")
    with pytest.raises(SettingsError, match="CHECKIN_VOICE_RATE='0'"):
        load_settings(**twilio)
