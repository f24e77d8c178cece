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
    assert body.startswith("待处理提醒 1-3 条，共 3 条") and f"#{esc_id} 未报到：王伟（JZ-S）" in body
    await c.send("telegram", "5002", local(2027, 3, 1, 14), "/open")
    assert c.out(address="5002", kind="reply")[-1].body == "没有待处理的提醒。"
    await c.send("telegram", "1", local(2027, 3, 1, 14), "/open")  # an administrator sees every alert
    assert c.out(address="1", kind="reply")[-1].body.startswith("待处理提醒 1-3 条，共 3 条")
    await c.send("telegram", "9000", local(2027, 3, 1, 14), "/open")  # the township supervisor too
    assert c.out(address="9000", kind="reply")[-1].body.startswith("待处理提醒 1-3 条，共 3 条")


async def test_open_names_each_kind_and_pages_honestly(db):
    from handlers.escalation import OPEN_PAGE, open_escalation
    from storage.db import session_scope
    from storage.models import EscalationKind, Supervisee
    from tests.factories import supervisee

    c = County(db)
    fourth = supervisee(c.engine, local(2027, 3, 1), c.li.id, case_number="JZ-4", name="赵四", phone="+8613800000004")
    people = (c.strict.id, c.ordinary.id, c.lenient.id, fourth.id)
    kinds = list(EscalationKind)
    with session_scope(c.engine) as s:
        for i in range(OPEN_PAGE + 11):  # 41 alerts, one per (person, kind) pair not tied to an obligation
            person = s.get(Supervisee, people[i % 4])
            kind = kinds[i // 4]
            assert open_escalation(s, person, kind, local(2027, 3, 1, 8, i), c.policy, c.cfg.zone)
    await c.send("telegram", "5001", local(2027, 3, 1, 14), "/open")
    first = c.out(address="5001", kind="reply")[-1].body
    assert first.startswith(f"待处理提醒 1-{OPEN_PAGE} 条，共 41 条") and first.endswith("下一页：/open 2")
    for label in ("未报到", "超出范围", "要求联系协管员", "退订短信", "未发送位置"):
        assert f" {label}：" in first, label
    await c.send("telegram", "5001", local(2027, 3, 1, 14), "/open 2")
    second = c.out(address="5001", kind="reply")[-1].body
    assert second.startswith(f"待处理提醒 {OPEN_PAGE + 1}-41 条，共 41 条") and "下一页" not in second
    assert " 学习时长不足：" in second and " 请假逾期未销假：" in second
    ids = [int(line.split("#")[1].split()[0]) for line in (first + "\n" + second).splitlines() if "#" in line]
    assert ids == sorted(ids) and len(ids) == 41  # oldest first, each once
