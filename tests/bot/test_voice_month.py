"""A month of daily check-ins for a person on voice, through the real twilio Client and the telephone stand-in: the
calls answered with 1, with 2, with a spoken report, answered on a retry, and left to a voicemail."""

from __future__ import annotations

from sqlmodel import select

from storage.db import session_scope
from storage.models import WrittenReport
from tests.bot.test_sms import WANG
from tests.bot.test_voice import voice, wang_on_voice  # noqa: F401 (the fixture)
from tests.sim import local

# What 王伟 does with the day's check-in call, day after day through March 2027 (daily: he is on `strict`).
WEEK = ["1", "retry", "2", "3", "1", "voicemail", "1"]
CALLS = {"retry": 2, "voicemail": 6}  # calls placed that day (else one): a retry; three tries, and three reminding


def check_in_call(h, kind: str, day: int):
    """The newest call for 王伟's check-in prompt or reminder of `day` (a retry is the same message again)."""
    (msg,) = [m for m in h.rows(kind=kind, address=WANG) if m.created_at.astimezone(local(2027, 3, day).tzinfo)
              .day == day]
    return [c for c in h.fake.calls.to(WANG) if c.url.endswith(f"?m={msg.id}")][-1]


async def test_a_month_of_check_in_calls(voice):  # noqa: F811
    h, fake = voice, voice.fake
    for day in range(1, 32):
        what = WEEK[(day - 1) % 7]
        await h.tick(local(2027, 3, day, 9))
        call = check_in_call(h, "checkin_prompt", day)
        h.clock.set(local(2027, 3, day, 9, 5))
        if what == "retry":
            await fake.calls.ring(call.sid, outcome="no-answer")
            await h.tick(local(2027, 3, day, 9, 25))
            call = check_in_call(h, "checkin_prompt", day)
            h.clock.set(local(2027, 3, day, 9, 26))
            await fake.calls.ring(call.sid, keys=["1"])
        elif what == "voicemail":
            for minute in (25, 45):
                await fake.calls.ring(call.sid, outcome="voicemail")
                await h.tick(local(2027, 3, day, 9, minute))
                call = check_in_call(h, "checkin_prompt", day)
            await fake.calls.ring(call.sid, outcome="voicemail")
            for minute in (0, 20, 40):  # the reminder's call, and its two retries
                await h.tick(local(2027, 3, day, 11, minute))
                await fake.calls.ring(check_in_call(h, "checkin_reminder", day).sid, outcome="voicemail")
        else:
            await fake.calls.ring(call.sid, keys=["3", "1"] if what == "3" else [what], record_seconds=30)
        await h.stack.idle()
        if what in ("1", "retry", "3"):
            assert any(w.startswith("已收到，谢谢。") for w in call.heard), (day, call.heard)
        elif what == "2":
            assert "已收到。已通知李娜尽快联系您。" in call.heard, day
        await h.tick(local(2027, 3, day, 13))
    await h.tick(local(2027, 4, 1, 8))

    states = {o.due_at.astimezone(local(2027, 3, 1).tzinfo).day: o.state
              for o in h.county.obligations(h.county.strict) if o.kind == "checkin" and o.due_at.month == 3}
    assert states == {d: "missed" if WEEK[(d - 1) % 7] == "voicemail" else "done" for d in range(1, 32)}
    asked = {f"?m={r.id}" for r in h.rows(channel="voice", address=WANG)
             if r.kind in ("checkin_prompt", "checkin_reminder")}
    placed = [c for c in h.fake.calls.to(WANG) if c.url[c.url.index("?"):] in asked]
    assert len(placed) == sum(CALLS.get(WEEK[(d - 1) % 7], 1) for d in range(1, 32))  # 56: no call more or less
    with session_scope(h.db.engine) as s:
        reports = s.exec(select(WrittenReport).where(WrittenReport.supervisee_id == h.county.strict.id)).all()
    assert [r.recording_seconds for r in reports] == [30] * 4  # the 4th, 11th, 18th and 25th
    kinds = {e.kind for e in h.county.escalations() if e.supervisee_id == h.county.strict.id}
    assert {"asked_officer", "missed_checkin"} <= kinds  # (and the weekly reports and the study he did not do)
    assert "unreachable" not in kinds  # voicemails a week apart: never unreachable by voice
    assert h.county.person(h.county.strict).preferred_channel == "voice"
