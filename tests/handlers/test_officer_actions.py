"""Officers acting on alerts: buttons and typed commands, who may act, excuses with reasons, /open."""

from __future__ import annotations

import pytest

from tests.sim import County, local, steps


async def _alert(db) -> tuple[County, int]:
    c = County(db)
    for now in steps(local(2027, 3, 1, 8), local(2027, 3, 1, 13, 30)):
        c.sweep(now)
    esc = next(e for e in c.escalations() if e.supervisee_id == c.strict.id)
    return c, esc.id


async def test_button_ack_stops_the_step_up(db):
    c, esc_id = await _alert(db)
    await c.send("telegram", "5001", local(2027, 3, 1, 13, 25), button=f"esc:{esc_id}:ack")
    assert c.out(address="5001", kind="reply")[-1].body == f"✅ 已知悉 #{esc_id} — 李娜，13:25"
    for now in steps(local(2027, 3, 1, 13, 30), local(2027, 3, 1, 20)):
        c.sweep(now)
    esc = next(e for e in c.escalations() if e.id == esc_id)
    assert esc.state == "acknowledged" and esc.supervisor_notified_at is None
    assert "JZ-S" not in " ".join(m.body for m in c.out(address="9000"))


async def test_reached_resolves(db):
    c, esc_id = await _alert(db)
    await c.send("telegram", "5001", local(2027, 3, 1, 13, 40), button=f"esc:{esc_id}:reached")
    esc = next(e for e in c.escalations() if e.id == esc_id)
    assert (esc.state, esc.resolution, esc.resolved_by) == ("resolved", "reached", c.li.id)
    await c.send("telegram", "5001", local(2027, 3, 1, 13, 45), button=f"esc:{esc_id}:unreachable")
    assert "已处理：已联系上 — 李娜，13:40" in c.out(address="5001", kind="reply")[-1].body


async def test_excuse_asks_for_a_reason_then_excuses_the_obligation(db):
    c, esc_id = await _alert(db)
    await c.send("telegram", "5001", local(2027, 3, 1, 14), button=f"esc:{esc_id}:excuse")
    assert f"免除 #{esc_id} 的原因" in c.out(address="5001", kind="reply")[-1].body
    await c.send("telegram", "5001", local(2027, 3, 1, 14, 2), "住院，家属已来电说明")
    esc = next(e for e in c.escalations() if e.id == esc_id)
    assert (esc.state, esc.resolution, esc.note) == ("resolved", "excused", "住院，家属已来电说明")
    assert c.obligations(c.strict)[0].state == "excused"


@pytest.mark.parametrize("typed", ["ACK {id}", "知悉 {id}", "知悉{id}", "/ack #{id}"])
async def test_typed_commands_for_officers_on_sms(db, typed):
    c, esc_id = await _alert(db)
    await c.send("telegram", "5001", local(2027, 3, 1, 13, 50), typed.format(id=esc_id))
    esc = next(e for e in c.escalations() if e.id == esc_id)
    assert esc.state == "acknowledged", c.out(address="5001", kind="reply")[-1].body


async def test_typed_excuse_with_inline_reason(db):
    c, esc_id = await _alert(db)
    await c.send("telegram", "5001", local(2027, 3, 1, 13, 50), f"免除 {esc_id} 已请假")
    esc = next(e for e in c.escalations() if e.id == esc_id)
    assert esc.resolution == "excused" and esc.note == "已请假"


@pytest.mark.parametrize(("who", "allowed"), [("5001", True), ("9000", True), ("1", True), ("5002", False)])
async def test_who_may_act(db, who, allowed):
    c, esc_id = await _alert(db)
    await c.send("telegram", who, local(2027, 3, 1, 13, 50), button=f"esc:{esc_id}:reached")
    esc = next(e for e in c.escalations() if e.id == esc_id)
    assert (esc.state == "resolved") is allowed
    if not allowed:
        assert "不归您处理" in c.out(address=who, kind="reply")[-1].body


async def test_a_supervisee_cannot_press_an_officer_button(db):
    c, esc_id = await _alert(db)
    await c.send("telegram", "7002", local(2027, 3, 1, 13, 50), button=f"esc:{esc_id}:reached")
    assert next(e for e in c.escalations() if e.id == esc_id).state == "open"


async def test_unknown_alert_and_usage(db):
    c, _ = await _alert(db)
    await c.send("telegram", "5001", local(2027, 3, 1, 14), "ACK 999")
    assert "没有找到编号为 999" in c.out(address="5001", kind="reply")[-1].body
    await c.send("telegram", "5001", local(2027, 3, 1, 14, 1), "ACK")
    assert "用法" in c.out(address="5001", kind="reply")[-1].body


async def test_open_lists_unresolved_alerts(db):
    c, esc_id = await _alert(db)
    await c.send("telegram", "5001", local(2027, 3, 1, 14), "/open")
    body = c.out(address="5001", kind="reply")[-1].body
    assert body.startswith("待处理提醒 3 条") and f"#{esc_id} 王伟（JZ-S）未报到" in body
    await c.send("telegram", "5002", local(2027, 3, 1, 14), "/open")
    assert c.out(address="5002", kind="reply")[-1].body == "没有待处理的提醒。"
