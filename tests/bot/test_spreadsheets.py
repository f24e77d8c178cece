"""The office's spreadsheets: the roster exported and imported back unchanged (CSV with a BOM, XLSX; English or
Chinese headers and words), errors at the row Excel shows, the report as CSV and XLSX, the chart with the
townships' names when a CJK font is installed and T1, T2 ... with the key when none is."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import update
from typer.testing import CliRunner

from bot.cli import app
from bot.report_view import cjk_font, draw_chart
from handlers import compliance
from handlers.roster import import_roster
from handlers.roster_export import as_csv, as_xlsx, roster_rows
from storage.db import session_scope
from storage.models import Supervisee
from tests.conftest import NOW, roster_csv
from tests.factories import officer
from tests.sim import SH, County, local


def _import(db, data):
    with session_scope(db.engine) as s:
        result = import_roster(s, data, now=NOW)
        if not result.ok:
            s.rollback()
    return result


@pytest.fixture
def roster(db):
    ids = [officer(db.engine, NOW, name=f"协管员{i}").id for i in range(3)]
    assert _import(db, roster_csv(30, ids)).created == 30
    with session_scope(db.engine) as s:  # one on calls; one on Telegram, one whose Telegram stopped working
        s.execute(update(Supervisee).where(Supervisee.case_number == "JZ2700004")
                  .values(preferred_channel="voice"))
        s.execute(update(Supervisee).where(Supervisee.case_number == "JZ2700005")
                  .values(preferred_channel="telegram", telegram_chat_id=7005))
        s.execute(update(Supervisee).where(Supervisee.case_number == "JZ2700006")
                  .values(preferred_channel="telegram", telegram_chat_id=7006, telegram_blocked_at=NOW))
    return db


@pytest.mark.parametrize(("chinese", "xlsx"), [(False, False), (True, False), (False, True), (True, True)])
def test_the_roster_exported_imports_back_unchanged(roster, chinese, xlsx):
    with session_scope(roster.engine) as s:
        rows = roster_rows(s, chinese=chinese)
    data = as_xlsx(rows) if xlsx else as_csv(rows)
    assert data.startswith(b"PK\x03\x04") if xlsx else data.startswith("\ufeff".encode())
    assert rows[0][0] == ("案号" if chinese else "case_number") and len(rows) == 31
    channel = {r[0]: r[-1] for r in rows[1:]}
    assert channel["JZ2700004"] == ("电话" if chinese else "voice") and channel["JZ2700005"] == "telegram"
    assert channel["JZ2700006"] == ""  # not a channel the import would take back
    assert next(r for r in rows if r[0] == "JZ2700004")[2] == "139 0000 0004"
    if chinese:
        assert {r[5] for r in rows[1:]} <= {"严管", "普管", "宽管"}
    result = _import(roster, data)
    assert result.ok and (result.created, result.updated, result.unchanged) == (0, 0, 30), result.errors[:3]


def test_an_xlsx_error_names_the_row_excel_shows(roster):
    book = Workbook()
    sheet = book.active
    sheet.append(["案号", "姓名", "手机号", "语言", "矫正类别", "管理等级", "司法所", "协管员编号", "矫正开始", "矫正结束"])
    sheet.append(["JZ1", "王一", "13800001001", "中文", "缓刑", "严管", "红果镇", 1, datetime(2026, 1, 1),
                  datetime(2028, 1, 1)])
    sheet.append([])  # an empty row, as offices leave them
    sheet.append([])
    sheet.append(["JZ2", "王二", "13800001002", "中文", "缓刑", "特管", "红果镇", 1, datetime(2026, 1, 1),
                  datetime(2028, 1, 1)])
    buffer = io.BytesIO()
    book.save(buffer)
    result = _import(roster, buffer.getvalue())
    assert [(e.line, e.column, e.value) for e in result.errors] == [(5, "level", "特管")]


def test_the_report_as_csv_and_xlsx_and_the_chart_with_and_without_a_cjk_font(db, tmp_path, monkeypatch):
    c = County(db)
    for hour in (9, 11, 13):
        c.sweep(local(2027, 3, 1, hour))
    with session_scope(db.engine) as s:
        lines = compliance.report(s, "2027-03", zone=SH, policy=c.policy, now=local(2027, 3, 2))
    towns = [line.township for line in lines[:-1]]
    font = cjk_font()
    if font is None and os.environ.get("CHECKIN_TEST_REQUIRE_CJK_FONT") == "1":
        pytest.fail("no CJK font and CHECKIN_TEST_REQUIRE_CJK_FONT=1 (apt-get install fonts-noto-cjk)")
    if font is not None:  # the names themselves
        assert draw_chart(lines, "2027-03", 5, tmp_path / "named.png", font=font) == towns
        assert (tmp_path / "named.png").read_bytes().startswith(b"\x89PNG")
    assert draw_chart(lines, "2027-03", 5, tmp_path / "keyed.png", font=None) == ["T1"]  # 红果镇 unwritable
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHECKIN_DATABASE_URL", db.url)
    monkeypatch.setenv("CHECKIN_CLOCK", f"{datetime(2027, 3, 2, tzinfo=UTC).isoformat()}@1")
    monkeypatch.setattr("bot.cli.report_commands.cjk_font", lambda: None)  # a machine without one
    done = CliRunner(env={"CHECKIN_LANGUAGE": "en"}).invoke(app, ["report", "--month", "2027-03", "--csv", "m.csv", "--xlsx", "m.xlsx",
                                    "--chart", "m.png"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "(T1 = 红果镇; for the names on the chart: apt-get install fonts-noto-cjk)" in done.output
    assert (tmp_path / "m.csv").read_bytes().startswith("\ufeffmonth,township".encode())
    sheet = load_workbook(tmp_path / "m.xlsx").active
    assert sheet["A1"].value == "month" and sheet["B2"].value == "红果镇"
