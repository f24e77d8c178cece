"""The inbound pipeline: store, dedupe, resolve, dispatch, reply through the outbox."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from content.areas import load_areas
from content.policy import load_policy
from handlers import enrol
from handlers.contract import MAX_STORED_TEXT, Inbound, SenderKind
from handlers.router import Route, Router, resolve_sender
from storage.db import session_scope
from storage.models import Conversation, ConversationState, Message, Supervisee
from tests.conftest import NOW
from tests.factories import county_router, officer, supervisee


@pytest.fixture
def county(db):
    li = officer(db.engine, NOW, name="李娜", telegram_id=5001)
    wang = supervisee(db.engine, NOW, li.id)
    tom = supervisee(db.engine, NOW, li.id, case_number="JZ2013042", name="Tom Lee",
                     phone="+8613912345678", language="en", level="lenient")
    return li, wang, tom


def _out(db, **where):
    with session_scope(db.engine) as s:
        q = select(Message).where(Message.direction == "out")
        address = where.pop("address", None)  # stored encrypted: matched after decryption
        for k, v in where.items():
            q = q.where(getattr(Message, k) == v)
        return [m for m in s.exec(q.order_by(Message.id)) if address is None or m.address == address]


async def test_unknown_sender_is_told_how_to_enrol(db, county):
    router = county_router()
    result = await router.handle(db.engine, Inbound("telegram", "424242", "hello who is this"), NOW)
    assert not result.duplicate and not result.error
    (reply,) = _out(db)
    assert reply.address == "424242" and "/start" in reply.body
    with session_scope(db.engine) as s:
        inbound = s.get(Message, result.message_id)
        assert inbound.status == "handled" and inbound.body == "hello who is this"
    await router.handle(db.engine, Inbound("sms", "+8613700000000", "JZ2013041?"), NOW)
    neutral = _out(db, address="+8613700000000")[0].body
    assert neutral == "本号码仅供社区矫正报到使用。"  # no enrolment talk, no data


async def test_supervisee_by_sms_gets_help_in_their_language(db, county):
    _, _, tom = county
    await county_router().handle(db.engine, Inbound("sms", tom.phone, "HELP"), NOW)
    (reply,) = _out(db)
    assert reply.body.startswith("You can:") and "李娜" in reply.body
    with session_scope(db.engine) as s:
        assert s.get(Supervisee, tom.id).last_contact_at == NOW


async def test_note_to_officer_goes_to_officers_telegram(db, county):
    li, wang, _ = county
    await county_router().handle(db.engine, Inbound("sms", wang.phone, "找协管员我下周要去医院"), NOW)
    to_person, to_officer = _out(db)
    assert to_person.address == wang.phone and "李娜" in to_person.body
    assert (to_officer.channel, to_officer.address, to_officer.officer_id) == ("telegram", "5001", li.id)
    assert "我下周要去医院" in to_officer.body and "JZ2013041" in to_officer.body


async def test_empty_note_asks_for_the_text(db, county):
    _, wang, _ = county
    await county_router().handle(db.engine, Inbound("sms", wang.phone, "找协管员"), NOW)
    (reply,) = _out(db)
    assert "例如" in reply.body


async def test_officer_lists_caseload(db, county):
    await county_router().handle(db.engine, Inbound("telegram", "5001", "/list"), NOW)
    (reply,) = _out(db)
    assert "2" in reply.body and "JZ2013041" in reply.body and "宽管" in reply.body


async def test_same_provider_id_three_times_is_handled_once(db, county):
    _, wang, _ = county
    router = county_router()
    results = [
        await router.handle(db.engine, Inbound("sms", wang.phone, "/help", provider_id="SM123"), NOW)
        for _ in range(3)
    ]
    assert [r.duplicate for r in results] == [False, True, True]
    assert len(_out(db)) == 1
    with session_scope(db.engine) as s:
        assert len(s.exec(select(Message).where(Message.direction == "in")).all()) == 1


async def test_failing_handler_still_stores_and_answers(db, county):
    _, wang, _ = county

    async def broken(inbound, ctx):
        raise RuntimeError("bug")

    router = county_router()
    router.routes.insert(0, Route(("boom",), frozenset(SenderKind), broken))
    result = await router.handle(db.engine, Inbound("sms", wang.phone, "boom now"), NOW)
    assert result.error
    (reply,) = _out(db)
    assert reply.kind == "error" and "已记录" in reply.body
    with session_scope(db.engine) as s:
        stored = s.get(Message, result.message_id)
        assert stored.body == "boom now" and stored.error_code == "handler_error"


async def test_oversized_text_is_truncated_with_a_note(db, county):
    _, wang, _ = county
    huge = "报" * (MAX_STORED_TEXT + 123)
    result = await county_router().handle(db.engine, Inbound("sms", wang.phone, huge), NOW)
    with session_scope(db.engine) as s:
        stored = s.get(Message, result.message_id)
    assert stored.body.startswith("报" * MAX_STORED_TEXT)
    assert f"[truncated: {len(huge)} characters received]" in stored.body


async def test_conversation_state_routes_follow_up_messages(db, county):
    _, wang, _ = county
    seen = []

    async def start_flow(inbound, ctx):
        ctx.set_state(ConversationState.report, {"n": 0})
        return []

    async def collecting(inbound, ctx):
        seen.append((inbound.text, ctx.state_data()))
        ctx.set_state(ConversationState.idle)
        return []

    router = Router([Route(("/go",), frozenset(SenderKind), start_flow)],
                    fallbacks={k: collecting for k in SenderKind}, states={ConversationState.report: collecting},
                    policy=load_policy(), areas=load_areas(), zone=ZoneInfo("Asia/Shanghai"))
    await router.handle(db.engine, Inbound("sms", wang.phone, "/go"), NOW)
    with session_scope(db.engine) as s:
        assert s.exec(select(Conversation)).one().state is ConversationState.report
    await router.handle(db.engine, Inbound("sms", wang.phone, "part one"), NOW)
    assert seen == [("part one", {"n": 0})]


async def test_enrolment_binds_telegram_once(db, county):
    li, wang, _ = county
    with session_scope(db.engine) as s:
        code = enrol.issue_code(s, s.get(Supervisee, wang.id), NOW, days=14).code
    router = county_router()
    await router.handle(db.engine, Inbound("telegram", "777", f"/start {code.replace('-', '').lower()}"), NOW)
    welcome, notice = _out(db)
    assert welcome.address == "777" and "王伟" in welcome.body and "李娜" in welcome.body
    assert notice.address == "5001" and "JZ2013041" in notice.body
    with session_scope(db.engine) as s:
        person = s.get(Supervisee, wang.id)
        assert person.telegram_chat_id == 777 and person.preferred_channel == "telegram"
        assert resolve_sender(s, "telegram", "777", "zh-CN").kind is SenderKind.supervisee
    await router.handle(db.engine, Inbound("telegram", "888", f"/start {code}"), NOW)
    assert "已经用过" in _out(db, address="888")[0].body
    await router.handle(db.engine, Inbound("telegram", "777", f"/start {code}"), NOW)
    assert "已经绑定" in _out(db, address="777")[-1].body


async def test_expired_revoked_and_unknown_codes(db, county):
    _, wang, tom = county
    with session_scope(db.engine) as s:
        old = enrol.issue_code(s, s.get(Supervisee, wang.id), NOW, days=14).code
        new = enrol.issue_code(s, s.get(Supervisee, wang.id), NOW, days=14).code
        toms = enrol.issue_code(s, s.get(Supervisee, tom.id), NOW, days=1).code
    router = county_router()
    await router.handle(db.engine, Inbound("telegram", "901", f"/start {old}"), NOW)
    assert "没有找到" in _out(db, address="901")[0].body  # revoked by the newer code
    await router.handle(db.engine, Inbound("telegram", "902", f"/start {toms}"), NOW + timedelta(days=2))
    assert "expired" in _out(db, address="902")[0].body
    await router.handle(db.engine, Inbound("telegram", "903", "/start ZZZZ-ZZZZ"), NOW)
    assert "没有找到" in _out(db, address="903")[0].body
    assert new != old


async def test_nul_bytes_and_out_of_range_ids_are_handled(db, county):
    """Found by tests/handlers/test_hostile.py on PostgreSQL: a NUL in a text, and ids beyond a database integer."""
    from handlers.contract import row_id
    assert [row_id(v) for v in ("12", "0", "-3", "²", "٣", "99999999999", "2147483647", "", None)] == \
        [12, None, None, None, None, None, 2147483647, None, None]
    _, wang, _ = county
    router = county_router()
    handled = await router.handle(db.engine, Inbound("sms", wang.phone, "汇报\x00 今天在家"), NOW)
    assert not handled.error
    with session_scope(db.engine) as s:
        assert s.get(Message, handled.message_id).body == "汇报\ufffd 今天在家"
    for button in ("checkin:999999999999:ok", "checkin:²:ok", "study:99999999999:0:1", "esc:3000000000:ack"):
        handled = await router.handle(db.engine, Inbound("sms", wang.phone, button=button), NOW)
        assert not handled.error and handled.replies, button


async def test_recovery_handles_what_was_stored_and_not_handled_once(db, county):
    """The process died after storing a message and before handling it: the next start handles it, once."""
    _, wang, _ = county
    with session_scope(db.engine) as s:  # as the first transaction of `handle` leaves it
        stored = Message(direction="in", channel="sms", address=wang.phone, supervisee_id=wang.id, kind="text",
                         body="找协管员 我明天要去医院", status="received", provider_id="SMdead", attempts=0,
                         created_at=NOW, updated_at=NOW)
        s.add(stored)
        s.flush()
        mid = stored.id
    router = county_router()
    assert await router.recover(db.engine, NOW) == 1
    with session_scope(db.engine) as s:
        assert s.get(Message, mid).status == "handled"
    notes = [m for m in _out(db) if m.kind == "officer_note" or "我明天要去医院" in m.body]
    assert len(notes) == 1 and len(_out(db, address=wang.phone)) == 1  # the note, and the person's receipt
    assert await router.recover(db.engine, NOW) == 0  # nothing left: handled once
    # A redelivery of the same provider id is a duplicate and changes nothing either.
    again = await router.handle(db.engine, Inbound("sms", wang.phone, "找协管员 我明天要去医院", provider_id="SMdead"), NOW)
    assert again.duplicate and len(_out(db)) == 2


async def test_a_state_outside_the_enum_is_refused_before_it_is_stored(db, county):
    _, wang, _ = county

    async def strays(inbound, ctx):
        ctx.set_state("collecting")  # not a ConversationState: the column type refuses it
        return []

    router = Router([Route(("/go",), frozenset(SenderKind), strays)], fallbacks={k: strays for k in SenderKind},
                    policy=load_policy(), areas=load_areas(), zone=ZoneInfo("Asia/Shanghai"))
    result = await router.handle(db.engine, Inbound("sms", wang.phone, "/go"), NOW)
    assert result.error  # stored and answered with the error reply; the handler's transaction rolled back
    with session_scope(db.engine) as s:
        assert s.exec(select(Conversation)).all() == []
        assert s.get(Message, result.message_id).error_code == "handler_error"
