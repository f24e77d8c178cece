"""Hostile input: 10,000 generated messages through the router, from every kind of sender. Nothing may crash;
every message is stored once and answered (a written report's parts are stored as parts); oversized texts are
stored cut, with a note."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from handlers import optout
from handlers.contract import MAX_STORED_TEXT, Inbound, clean
from handlers.router import stored_text
from storage.db import session_scope
from storage.models import Conversation, ConversationState, Message
from tests.conftest import KEYRING
from tests.sim import County, local

NOW = local(2027, 3, 1, 9, 30)
SENDERS = [("telegram", "7002"), ("sms", "+8613800000001"), ("sms", "+8613800000003"), ("telegram", "5001"),
           ("telegram", "5002"), ("telegram", "9000"), ("telegram", "1"), ("telegram", "4242"),
           ("sms", "+8613999999999"), ("console", "case:JZ-S"), ("console", "officer:2")]
FRAGMENTS = ["'; DROP TABLE message; --", "\" OR 1=1 --", "<b>bold</b><script>alert(1)</script>", "*_`[x](y)`_*",
             "%s %d {} {0} {name}", "\\x00\\u202e", "报到", "1", "2", "汇报", "完成", "取消", "请假", "销假",
             "/start", "/start ABCD-EFGH", "/case JZ-O", "/say JZ-O hi", "/warn JZ-O x", "知悉 1", "免除 1",
             "批准 1", "拒绝 1 no", "/service 2027-03-05 09:00-12:00 3 x JZ-O", "/leave", "/back", "A", "b",
             "LEAVE x 1-1 1-2 y", "STOP", "START", "HELP ME", "/help", "/report", "/done", "/cancel", "找协管员"]
BUTTON_PREFIXES = ["checkin", "report", "study", "esc", "svc", "leave", "x", ""]

texts = st.one_of(
    st.text(max_size=200),
    st.sampled_from(FRAGMENTS),
    st.tuples(st.sampled_from(FRAGMENTS), st.text(max_size=50)).map(lambda t: t[0] + " " + t[1]),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=31), max_size=40),  # control characters
    st.text(alphabet=st.sampled_from("😀🙏🏻👨‍👩‍👧\u200d\ufe0f报到A1 "), max_size=60),  # emoji and joiners
    st.integers(min_value=MAX_STORED_TEXT - 2, max_value=20_000).map(lambda n: ("长" * n)),  # huge
)
buttons = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(BUTTON_PREFIXES), st.one_of(st.integers(-5, 10**12).map(str), st.text(max_size=10)),
              st.text(max_size=12)).map(lambda t: ":".join(t)[:64]),
    st.text(max_size=64),
)
message = st.tuples(st.sampled_from(SENDERS), texts, buttons)


@pytest.mark.slow
def test_ten_thousand_hostile_messages(db):
    c = County(db)
    c.sweep(local(2027, 3, 1, 9))  # check-ins waiting, so that answers have something to answer
    seen = {"messages": 0}

    # No shrinking: a failure is reported with its whole batch at once (shrinking 100-message batches
    # against a database takes many minutes).
    @settings(max_examples=100, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(st.lists(message, min_size=100, max_size=100))
    def batch(messages):
        import asyncio

        async def run():
            for (channel, address), body, button in messages:
                with session_scope(c.engine) as s:
                    conv = s.exec(select(Conversation).where(Conversation.channel == channel,
                                                             Conversation.address == KEYRING.blind(address))).first()
                    state = conv.state if conv else "idle"
                handled = await c.router.handle(c.engine, Inbound(channel, address, text=body, button=button), NOW)
                assert not handled.error, (channel, address, body[:80], button)
                assert handled.message_id is not None and not handled.duplicate
                with session_scope(c.engine) as s:
                    row = s.get(Message, handled.message_id)
                    assert row.body == stored_text(clean(body)) and row.status == "handled"
                    if len(body) > MAX_STORED_TEXT:
                        assert row.body.endswith(f"[truncated: {len(body)} characters received]")
                # Answered, unless it was a part of a written report in progress (stored as a part), or an
                # SMS opt-out or opt-in word (the carrier answers those).
                opt_out = channel == "sms" and body.strip().lower() in optout.STOP_WORDS + optout.START_WORDS
                assert handled.replies or state == ConversationState.report or opt_out, \
                    (channel, address, body[:80], button, state)
                seen["messages"] += 1
        asyncio.run(run())

    batch()
    assert seen["messages"] >= 10_000
    with session_scope(c.engine) as s:
        stored = s.exec(select(Message).where(Message.direction == "in")).all()
    assert len(stored) == seen["messages"]
