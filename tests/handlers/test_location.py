"""Location check-ins through the router and the sweep: who is asked, inside, outside, partial, exempt, retention."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from handlers import compliance
from handlers.contract import Inbound, Location
from storage.db import session_scope
from storage.models import LocationCheck, Message, Supervisee
from tests.sim import County, local

INSIDE = (27.10, 106.30)  # 两河镇, in the county
GUANGZHOU = (23.13, 113.26)
CHAT = "7001"


@pytest.fixture
def county(db) -> County:
    """The small county with 王伟 (strict) on Telegram as well as SMS."""
    c = County(db)
    with session_scope(c.engine) as s:
        s.execute(update(Supervisee).where(Supervisee.id == c.strict.id)
                  .values(telegram_chat_id=int(CHAT), preferred_channel="telegram"))
    return c


async def share(c: County, where: tuple[float, float], now, accuracy: float | None = 15.0, chat: str = CHAT):
    return await c.router.handle(c.engine, Inbound("telegram", chat, location=Location(*where, accuracy)), now)


def checks(c: County, person) -> list[LocationCheck]:
    with session_scope(c.engine) as s:
        return list(s.exec(select(LocationCheck).where(LocationCheck.supervisee_id == person.id)
                           .order_by(LocationCheck.id)))


def prompt_of(c: County, address: str) -> Message:
    return [m for m in c.out(address=address) if m.kind == "checkin_prompt"][-1]


async def test_strict_on_telegram_is_asked_for_a_location_and_inside_closes_the_check_in(county):
    c = county
    c.sweep(local(2027, 3, 1, 9))
    prompt = prompt_of(c, CHAT)
    payload = json.loads(prompt.payload)
    assert payload["request_location"] is True and payload["location_label"] == "📍 发送我的位置"
    assert payload["keyboard"] == ["我需要联系协管员"] and "发送我的位置" in prompt.body
    assert c.obligations(c.strict)[0].location_required
    # 刘芳 (ordinary) and Tom (lenient, SMS) are not asked.
    assert "request_location" not in json.loads(prompt_of(c, "7002").payload)
    assert not c.obligations(c.ordinary)[0].location_required

    handled = await share(c, INSIDE, local(2027, 3, 1, 9, 20))
    assert handled.replies[0].text.startswith("已收到，谢谢。下次报到：")
    assert handled.replies[0].remove_keyboard
    ob = c.obligations(c.strict)[0]
    assert ob.state == "done"
    (row,) = checks(c, c.strict)
    assert (row.area, row.allowed_area, row.inside, row.distance_m, row.obligation_id) == (
        "lianghe", "county", True, 0, ob.id)
    assert row.accuracy_m == 15.0 and c.escalations() == []
    assert c.person(c.strict).last_contact_kind == "location"
    with session_scope(c.engine) as s:  # the point lives in location_check only, not in the message log
        stored = s.exec(select(Message).where(Message.direction == "in")).one()
    assert stored.kind == "location" and "27.1" not in stored.body + (stored.payload or "")


async def test_outside_the_county_escalates_with_the_distance_and_a_map_link(county):
    c = county
    c.sweep(local(2027, 3, 1, 9))
    handled = await share(c, GUANGZHOU, local(2027, 3, 1, 9, 30), accuracy=20)
    assert handled.replies[0].text.startswith("位置已收到，但不在示例县范围内")
    assert c.obligations(c.strict)[0].state == "done"  # the person did answer; the escalation carries the rest
    (esc,) = c.escalations()
    assert (esc.kind, esc.officer_id, esc.obligation_id) == ("out_of_area", c.li.id, c.obligations(c.strict)[0].id)
    alert = [m for m in c.out(address="5001") if m.kind == "escalation"][-1]
    assert alert.body.startswith(f"📍 超出范围 #{esc.id}：王伟（JZ-S，严管，红果镇）")
    distance_km = checks(c, c.strict)[0].distance_m / 1000
    assert 700 < distance_km < 900
    assert f"距边界约 {distance_km:.1f} 公里（位置在广州市，精度约 20 米）" in alert.body
    assert "https://www.openstreetmap.org/?mlat=23.13000&mlon=113.26000" in alert.body
    assert json.loads(alert.payload)["buttons"][0][1] == f"esc:{esc.id}:ack"


async def test_just_outside_within_the_phones_accuracy_counts_as_inside(county):
    c = county
    c.sweep(local(2027, 3, 1, 9))
    # 40 m west of the county's westernmost corner, the phone saying it is good to 60 m: inside.
    from tests.content.test_areas import VERTEX, west_of
    lon, lat = west_of(*VERTEX, 40)
    await share(c, (lat, lon), local(2027, 3, 1, 9, 10), accuracy=60)
    assert checks(c, c.strict)[0].inside is True and c.escalations() == []
    # The next day the same point good only to 20 m is outside.
    c.sweep(local(2027, 3, 2, 9))
    await share(c, (lat, lon), local(2027, 3, 2, 9, 10), accuracy=20)
    assert checks(c, c.strict)[1].inside is False
    assert [e.kind for e in c.escalations() if e.supervisee_id == c.strict.id] == ["out_of_area"]


async def test_an_answer_without_the_location_is_partial_then_reminded_then_escalated(county, db):
    c = county
    c.sweep(local(2027, 3, 1, 9))
    handled = await c.send("telegram", CHAT, local(2027, 3, 1, 9, 5), "1")
    assert handled.replies[0].text.startswith("已收到。今天的报到还需要您的位置")
    assert handled.replies[0].request_location
    ob = c.obligations(c.strict)[0]
    assert ob.state == "prompted" and ob.partial_at is not None
    c.sweep(local(2027, 3, 1, 11))
    reminder = [m for m in c.out(address=CHAT) if m.kind == "checkin_reminder"]
    assert len(reminder) == 1 and reminder[0].body.startswith("提醒：已收到您的回复，但还缺位置")
    c.sweep(local(2027, 3, 1, 13))
    assert c.obligations(c.strict)[0].state == "partial"
    (esc,) = [e for e in c.escalations() if e.supervisee_id == c.strict.id]
    assert esc.kind == "location_missing"
    alert = c.out(dedupe_key=f"esc:{esc.id}:officer")[0]
    assert alert.body.startswith(f"📍 未发送位置 #{esc.id}：王伟")
    assert "09:00 提醒报到（需发送位置），09:05 回复了但没有发送位置，到 13:00 仍未发送" in alert.body
    with session_scope(c.engine) as s:
        county_line = compliance.report(s, "2027-03", zone=c.cfg.zone, policy=c.policy, now=local(2027, 3, 1, 14))[-1]
    # Three check-ins fell due on the 1st: 王伟's partial one, and the two the others never answered.
    assert (county_line.due, county_line.no_location, county_line.missed) == (3, 1, 2)
    assert county_line.response_rate == pytest.approx(1 / 3)


async def test_the_location_after_a_partial_answer_completes_the_check_in(county):
    c = county
    c.sweep(local(2027, 3, 1, 9))
    await c.send("telegram", CHAT, local(2027, 3, 1, 9, 5), "1")
    await share(c, INSIDE, local(2027, 3, 1, 10))
    assert c.obligations(c.strict)[0].state == "done"
    c.sweep(local(2027, 3, 1, 13))
    assert [e for e in c.escalations() if e.supervisee_id == c.strict.id] == []


async def test_sms_only_people_are_exempt_and_the_officer_sees_it(county):
    c = county
    with session_scope(c.engine) as s:  # back to SMS only
        s.execute(update(Supervisee).where(Supervisee.id == c.strict.id)
                  .values(telegram_chat_id=None, preferred_channel="sms"))
    c.sweep(local(2027, 3, 1, 9))
    prompt = prompt_of(c, c.strict.phone)
    assert "request_location" not in json.loads(prompt.payload or "{}")
    assert prompt.body.startswith("今天的报到时间到了。请在 13:00 前回复。")
    await c.sms(c.strict, "1", local(2027, 3, 1, 9, 30))
    assert c.obligations(c.strict)[0].state == "done"
    case = await c.send("telegram", "5001", local(2027, 3, 1, 10), "/case JZ-S")
    assert "位置报到：免除（仅短信）" in case.replies[0].text
    case = await c.send("telegram", "5001", local(2027, 3, 1, 10), "/case JZ-O")
    assert "位置报到：普管不需要" in case.replies[0].text


async def test_the_officers_case_view_shows_the_last_point(county):
    c = county
    c.sweep(local(2027, 3, 1, 9))
    await share(c, GUANGZHOU, local(2027, 3, 1, 9, 30))
    text = (await c.send("telegram", "5001", local(2027, 3, 1, 10), "/case JZ-S")).replies[0].text
    assert "位置报到：需要（Telegram）" in text
    assert "最近位置：3月1日 09:30，广州市（超出范围" in text


async def test_a_location_with_no_check_in_waiting_is_kept_and_still_judged(county):
    c = county
    handled = await share(c, INSIDE, local(2027, 3, 2, 15))
    assert handled.replies[0].text == "位置已收到，谢谢。"
    await share(c, GUANGZHOU, local(2027, 3, 2, 16))
    assert [(r.obligation_id, r.inside) for r in checks(c, c.strict)] == [(None, True), (None, False)]
    assert [e.kind for e in c.escalations()] == ["out_of_area"]
    # Officers and strangers sharing a location get their usual answers, and nothing is stored.
    officer = await c.router.handle(c.engine, Inbound("telegram", "5001", location=Location(*INSIDE)),
                                    local(2027, 3, 2, 16))
    stranger = await c.router.handle(c.engine, Inbound("telegram", "4242", location=Location(*INSIDE)),
                                     local(2027, 3, 2, 16))
    assert not officer.error and not stranger.error and len(checks(c, c.strict)) == 2


async def test_points_are_deleted_after_the_retention_period(county):
    c = county
    await share(c, INSIDE, local(2027, 3, 1, 15))
    await share(c, INSIDE, local(2027, 6, 1, 15))
    c.sweep(local(2027, 3, 1, 15) + timedelta(days=180) - timedelta(minutes=1))
    assert len(checks(c, c.strict)) == 2
    rep = c.sweep(local(2027, 3, 1, 15) + timedelta(days=180, minutes=1))
    assert rep.locations_purged == 1 and [r.taken_at.month for r in checks(c, c.strict)] == [6]


async def test_logs_never_carry_the_point(county, caplog):
    c = county
    caplog.set_level(logging.DEBUG)
    c.sweep(local(2027, 3, 1, 9))
    await share(c, GUANGZHOU, local(2027, 3, 1, 9, 30))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "location check" in logged
    assert "23.13" not in logged and "113.26" not in logged and "王伟" not in logged
