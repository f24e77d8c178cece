"""The monthly compliance report against a month of activity computed by hand."""

from __future__ import annotations

import csv
import struct
from datetime import date

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.report_view import REPORT_COLUMNS
from handlers import community_service, compliance, formal_warnings
from storage.db import session_scope
from storage.models import Officer, Supervisee
from tests.factories import supervisee
from tests.sim import SH, County, local, steps

runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})


async def _march(db) -> County:
    """王伟 (strict) answers every day but the 3rd and 10th; 刘芳 (ordinary) always; Tom (lenient, 两河镇) never.
    李娜 acknowledges the 3rd's alert in time and records no outcome (so it too reaches the supervisor). 刘芳 passes two study modules. Tom gets two
    warnings, one withdrawn; 王伟 one in February. Two more people are outside March."""
    c = County(db, start=local(2027, 2, 1))
    with session_scope(db.engine) as s:
        tom = s.get(Supervisee, c.lenient.id)
        tom.township, tom.created_at = "两河镇", local(2027, 3, 1)
        s.add(tom)
        for p in (c.strict, c.ordinary):  # in this system from March (nothing was asked of them in February)
            s.get(Supervisee, p.id).created_at = local(2027, 3, 1)
        officer = s.get(Officer, c.li.id)
        formal_warnings.record(s, officer, s.get(Supervisee, c.strict.id), "二月的警告", local(2027, 2, 20), SH)
    supervisee(db.engine, local(2027, 1, 1), c.li.id, case_number="JZ-E", phone="+8613800000009",
               supervision_end=date(2027, 2, 20))
    supervisee(db.engine, local(2027, 3, 1), c.li.id, case_number="JZ-N", phone="+8613800000010",
               supervision_start=date(2027, 4, 1), supervision_end=date(2028, 4, 1))
    for now in steps(local(2027, 3, 1), local(2027, 4, 1)):
        c.sweep(now)
        t = now.astimezone(SH)
        if (t.hour, t.minute) == (9, 30):
            if t.day not in (3, 10):
                await c.sms(c.strict, "1", now)
            if t.weekday() in (0, 3):
                await c.send("telegram", "7002", now, "1")
        if (t.day, t.hour, t.minute) == (3, 13, 30):
            esc = [e for e in c.escalations() if e.supervisee_id == c.strict.id][-1]
            await c.send("telegram", "5001", now, button=f"esc:{esc.id}:ack")
        if (t.day, t.hour, t.minute) == (2, 10, 0):
            for answer in ("A", "A"):  # the first two modules' right answers
                await c.send("telegram", "7002", now, "学习")
                await c.send("telegram", "7002", now, answer)
        if (t.hour, t.minute) == (10, 0) and (t.weekday() == 4 or t.day == 25):
            for p in ([c.strict] if t.weekday() == 4 else []) + ([c.ordinary] if t.day == 25 else []):
                await c.sms(p, "汇报 按时上班。", now)
                await c.sms(p, "完成", now)
        if (t.day, t.hour, t.minute) == (5, 8, 0):  # a 3-hour session on the 6th for 刘芳
            with session_scope(db.engine) as s:
                svc = community_service.create(s, s.get(Officer, c.li.id), c.policy, place="敬老院", starts_at=local(2027, 3, 6, 9),
                                     ends_at=local(2027, 3, 6, 12), hours=3, case_numbers=["JZ-O"], now=now)
                code = svc.code
        if (t.day, t.hour, t.minute) == (6, 10, 0):
            await c.send("telegram", "7002", now, f"签到 {code}")
            check = c.out(kind="service_check")[-1]
            await c.send("telegram", "5001", now, button=__import__("json").loads(check.payload)["buttons"][0][1])
        if (t.day, t.hour, t.minute) in ((12, 10, 0), (13, 10, 0)):
            await c.send("telegram", "5001", now, f"/warn JZ-L 第{t.day}日的警告")
    with session_scope(db.engine) as s:
        first = min(w.id for w in s.exec(__import__("sqlmodel").select(formal_warnings.Warning_)).all()
                    if w.reason == "第12日的警告")
        formal_warnings.amend(s, s.get(Officer, c.li.id), first, "已核实", local(2027, 3, 14), SH, withdraw=True)
    return c


@pytest.mark.slow
async def test_every_figure_of_a_hand_computed_month(db, tmp_path, monkeypatch):
    c = await _march(db)
    with session_scope(db.engine) as s:
        lines = compliance.report(s, "2027-03", zone=SH, policy=c.policy, now=local(2027, 4, 2))
    by = {line.township: line.as_row() for line in lines}
    assert list(by) == ["两河镇", "红果镇", "*"]
    assert by["红果镇"] == dict(
        township="红果镇", active=2, not_yet_active=0, paused=0, due=40, on_time=38, late=0, no_location=0, missed=2, response_rate=38 / 40,
        escalations=6, acknowledged_in_sla=1, to_supervisor=6, lost_contact=0, lost_per_mille=0.0,
        study_hours=2.0, under_study=2, service_hours=3.0, under_service=2, warnings=0)
    assert by["两河镇"] == dict(
        township="两河镇", active=1, not_yet_active=0, paused=0, due=5, on_time=0, late=0, no_location=0, missed=5, response_rate=0.0,
        escalations=9, acknowledged_in_sla=0, to_supervisor=9, lost_contact=1, lost_per_mille=1000.0,
        study_hours=0.0, under_study=1, service_hours=0.0, under_service=1, warnings=1)
    county = by["*"]
    # 红果镇: 王伟's two missed check-ins, and study and service shortfalls for both on the 25th;
    # 两河镇: Tom's five missed check-ins, his missed report (due the 30th), study and service shortfalls, and his
    # lost contact found on the 8th (a week without an answer; it starts with the supervisor).
    assert (county["active"], county["due"], county["missed"], county["escalations"]) == (3, 45, 7, 15)
    assert county["service_hours"] == 3.0
    assert county["response_rate"] == pytest.approx(38 / 45)
    assert county["lost_per_mille"] == pytest.approx(1000 / 3)

    # The command: table, CSV and chart.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHECKIN_DATABASE_URL", db.url)
    monkeypatch.setenv("CHECKIN_CLOCK", "2027-04-02T09:00+08:00@1")
    out = runner.invoke(app, ["report", "--month", "2027-03", "--csv", "r.csv", "--chart", "r.png"],
                        env={"COLUMNS": "250"})
    assert out.exit_code == 0, out.output
    assert "ABOVE the 5‰ target" in out.output and "84.4%" in out.output
    assert (tmp_path / "r.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM: Excel reads it as UTF-8
    with (tmp_path / "r.csv").open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["township"] for r in rows] == ["两河镇", "红果镇", "*"]
    assert rows[1]["due"] == "40" and rows[1]["response_rate"] == "0.95" and rows[0]["lost_per_mille"] == "1000.0"
    assert set(rows[0]) == {"month", *REPORT_COLUMNS}
    png = (tmp_path / "r.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1000, 400) and 10_000 < len(png) < 500_000


def test_a_month_with_no_data_says_so(env, monkeypatch, tmp_path):
    County(env)
    monkeypatch.setenv("CHECKIN_CLOCK", "2027-04-02T09:00+08:00@1")
    out = runner.invoke(app, ["report", "--month", "2020-01", "--chart", str(tmp_path / "x.png")],
                        env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "nothing to report" in out.output and "—" in out.output
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
    assert runner.invoke(app, ["report", "--month", "March"]).exit_code == 2
