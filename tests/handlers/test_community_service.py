"""Community service end to end through the router: announcement, reminder, codes, verification, escalation."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli import app
from handlers import community_service
from storage.db import session_scope
from storage.models import Officer, ServiceAttendance
from tests.sim import County, local, steps

runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})


def _session(c: County, cases=("JZ-S", "JZ-O")):
    with session_scope(c.engine) as s:
        svc = community_service.create(s, s.get(Officer, c.li.id), c.policy, place="红果镇敬老院", starts_at=local(2027, 3, 6, 9),
                             ends_at=local(2027, 3, 6, 12), hours=3, case_numbers=list(cases),
                             now=local(2027, 3, 1, 10))
        return svc.id, svc.code


def _attendance(c: County, person) -> ServiceAttendance:
    with session_scope(c.engine) as s:
        from sqlmodel import select

        return s.exec(select(ServiceAttendance).where(ServiceAttendance.supervisee_id == person.id)).one()


async def test_service_announced_reminded_confirmed_verified_and_missed(db):
    c = County(db)
    sid, code = _session(c)
    for now in steps(local(2027, 3, 5, 8), local(2027, 3, 6, 9, 30)):
        c.sweep(now)
    (announce,) = c.out(kind="service_prompt", address=c.strict.phone)
    assert announce.created_at == local(2027, 3, 5, 9)
    assert announce.body.startswith("公益劳动：3月6日 09:00–12:00，地点：红果镇敬老院，记 3 小时。")
    (remind,) = c.out(kind="service_reminder", address=c.strict.phone)
    assert remind.created_at == local(2027, 3, 6, 8)  # due 07:00, two hours before; quiet hours end at 08:00
    # A wrong code, then the right one before the session, then during it.
    await c.sms(c.strict, "签到 0000" if code != "0000" else "签到 1111", local(2027, 3, 6, 8, 30))
    assert c.out(kind="reply", address=c.strict.phone)[-1].body.startswith("签到码不对")
    await c.sms(c.strict, f"签到 {code}", local(2027, 3, 6, 8, 30))
    assert c.out(kind="reply", address=c.strict.phone)[-1].body.startswith("现在不在签到时间")
    await c.sms(c.strict, f"ATTEND {code}", local(2027, 3, 6, 9, 40))
    assert c.out(kind="reply", address=c.strict.phone)[-1].body == "已签到：红果镇敬老院，09:00–12:00。协管员核实后记入 3 小时。"
    check = c.out(kind="service_check")[-1]
    assert check.address == "5001" and "王伟（JZ-S）已在 红果镇敬老院 签到" in check.body
    ok, absent = [d for _, d in json.loads(check.payload)["buttons"]]
    await c.send("telegram", "5002", local(2027, 3, 6, 10), button=ok)  # not 赵强's to verify
    assert _attendance(c, c.strict).state == "confirmed"
    await c.send("telegram", "5001", local(2027, 3, 6, 10), button=ok)
    a = _attendance(c, c.strict)
    assert (a.state, a.hours, a.verified_by) == ("verified", 3.0, c.li.id)
    # 刘芳 never confirms: at the end of the session her officer is alerted.
    for now in steps(local(2027, 3, 6, 10), local(2027, 3, 6, 12, 30)):
        c.sweep(now)
    alert = [e for e in c.escalations() if e.supervisee_id == c.ordinary.id and e.kind == "missed_service"]
    assert len(alert) == 1 and alert[0].opened_at == local(2027, 3, 6, 12)


def test_cli_add_list_and_correct(env):
    c = County(env)
    run = lambda *a: runner.invoke(app, list(a), env={"COLUMNS": "250"})  # noqa: E731
    monkey_clock = {"CHECKIN_CLOCK": "2027-03-01T10:00+08:00@1"}
    added = runner.invoke(app, ["service", "add", "--place", "河道清理", "--start", "2027-03-08T09:00+08:00",
                                "--end", "2027-03-08T13:00+08:00", "--hours", "4", "--officer", str(c.li.id),
                                "--case", "JZ-S", "--case", "JZ-L"], env={"COLUMNS": "250", **monkey_clock})
    assert added.exit_code == 0, added.output
    assert "2 people; attendance code" in added.output
    listing = run("service", "list").output
    assert "河道清理" in listing and "JZ-S expected" in listing
    a = _attendance(c, c.lenient)
    corrected = run("service", "verify", str(a.id), "--officer", str(c.li.id), "--hours", "2.5")
    assert corrected.exit_code == 0 and "verified, 2.5 hours" in corrected.output
    assert run("service", "verify", str(_attendance(c, c.strict).id), "--officer", str(c.li.id),
               "--absent").output.strip().endswith("absent, 0 hours")
    refused = run("service", "verify", str(a.id), "--officer", str(c.other.id))
    assert refused.exit_code == 2 and "caseload" in refused.output
    bad = runner.invoke(app, ["service", "add", "--place", "x", "--start", "2027-03-08T09:00+08:00",
                              "--end", "2027-03-08T08:00+08:00", "--hours", "4", "--officer", str(c.li.id),
                              "--case", "JZ-S"], env=monkey_clock)
    assert bad.exit_code == 2 and "end after it starts" in bad.output


async def test_officer_sets_a_session_from_the_chat(db):
    c = County(db)
    t = local(2027, 3, 1, 10)
    await c.send("telegram", "5001", t, "/service 2027-03-05 09:00-12:00 3 敬老院 JZ-S,JZ-O")
    reply = c.out(kind="reply", address="5001")[-1].body
    assert reply.startswith("已安排公益劳动 #") and "2 人" in reply and "签到码：" in reply
    await c.send("telegram", "5001", t, "/service tomorrow")
    assert "用法" in c.out(kind="reply", address="5001")[-1].body
    await c.send("telegram", "5002", t, "/service 2027-03-05 09:00-12:00 3 敬老院 JZ-S")
    assert "caseload" in c.out(kind="reply", address="5002")[-1].body


@pytest.mark.parametrize("typed", ["/attend", "签到"])
async def test_attend_without_a_code(db, typed):
    c = County(db)
    await c.sms(c.strict, typed, local(2027, 3, 1, 10))
    assert c.out(kind="reply", address=c.strict.phone)[-1].body.startswith("请发：签到 签到码")
