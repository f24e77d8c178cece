"""Roster import: a county-sized file, re-imports, updates, and every kind of bad row."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app
from handlers.roster import import_roster, normalise_phone
from storage.db import session_scope
from storage.models import Supervisee
from tests.conftest import HEADER, NOW, roster_csv
from tests.factories import officer


def _import(db, data, **kw):
    with session_scope(db.engine) as s:
        result = import_roster(s, data, now=kw.pop("now", NOW), **kw)
        if not result.ok:
            s.rollback()
    return result


def _count(db) -> int:
    with session_scope(db.engine) as s:
        return s.exec(select(func.count()).select_from(Supervisee)).one()


@pytest.fixture
def officers(db):
    boss = officer(db.engine, NOW, name="张主任", role="supervisor")
    return [officer(db.engine, NOW, name=f"协管员{i}", supervisor_id=boss.id).id for i in range(39)]


def test_county_roster_imports_then_reimports_unchanged(db, officers):
    data = roster_csv(1300, officers)
    first = _import(db, data)
    assert first.ok, first.errors[:3]
    assert (first.created, first.updated, first.unchanged) == (1300, 0, 0)
    assert _count(db) == 1300
    again = _import(db, data, now=datetime(2027, 4, 1, tzinfo=UTC))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 1300)
    with session_scope(db.engine) as s:
        p = s.exec(select(Supervisee).where(Supervisee.case_number == "JZ2700003")).one()
        assert p.phone == "+8613900000003"
        assert p.language == "en" and p.updated_at == NOW  # untouched by the re-import


def test_changed_row_updates_that_person_only(db, officers):
    data = roster_csv(50, officers)
    _import(db, data)
    changed = data.replace("JZ2700007,测试人7,139 0000 0007,zh-CN,", "JZ2700007,测试人7,139 0000 0007,en,")
    changed = changed.replace(",ordinary,", ",strict,", 1)
    later = datetime(2027, 5, 1, tzinfo=UTC)
    result = _import(db, changed, now=later)
    assert result.ok and result.created == 0 and result.updated == 2 and result.unchanged == 48
    with session_scope(db.engine) as s:
        p = s.exec(select(Supervisee).where(Supervisee.case_number == "JZ2700007")).one()
        assert p.language == "en" and p.updated_at == later


def test_two_people_may_swap_phones_in_one_file(db, officers):
    data = roster_csv(3, officers)
    _import(db, data)
    swapped = data.replace("139 0000 0001", "TMP").replace("139 0000 0002", "139 0000 0001").replace("TMP", "139 0000 0002")
    result = _import(db, swapped)
    assert result.ok and result.updated == 2


BAD_ROWS = {
    "bad phone": ("phone", "12345"),
    "landline": ("phone", "010 6512 3456"),
    "unknown category": ("category", "house_arrest"),
    "unknown level": ("level", "medium"),
    "impossible date": ("supervision_start", "2026-02-30"),
    "malformed date": ("supervision_end", "30/06/2027"),
    "end before start": ("supervision_end", "2025-12-31"),
    "unknown officer": ("officer_id", "99999"),
    "bad language": ("language", "fr"),
    "empty name": ("name", ""),
}
COLUMN_INDEX = {c: i for i, c in enumerate(HEADER.split(","))}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_one_bad_row_refuses_the_whole_file(db, officers, case):
    column, value = BAD_ROWS[case]
    lines = roster_csv(100, officers).splitlines()
    fields = lines[42].split(",")  # line 43 of the file
    fields[COLUMN_INDEX[column]] = value
    if case == "end before start":
        fields[COLUMN_INDEX["supervision_start"]] = "2026-01-01"
    lines[42] = ",".join(fields)
    result = _import(db, "\n".join(lines) + "\n")
    assert not result.ok
    assert [(e.line, e.column, e.value) for e in result.errors] == [(43, column, value)]
    assert _count(db) == 0


def test_duplicate_case_number_names_both_lines(db, officers):
    lines = roster_csv(10, officers).splitlines()
    lines[7] = lines[7].replace("JZ2700007", "JZ2700003")
    result = _import(db, "\n".join(lines))
    assert [(e.line, e.column, e.value) for e in result.errors] == [(8, "case_number", "JZ2700003")]
    assert "also on line 4" in result.errors[0].message("en")
    assert _count(db) == 0


def test_failed_reimport_leaves_earlier_data_untouched(db, officers):
    data = roster_csv(20, officers)
    _import(db, data)
    broken = data.replace(",strict,", ",strictest,", 1).replace("测试人1,", "New Name,")
    assert not _import(db, broken).ok
    with session_scope(db.engine) as s:
        assert s.exec(select(Supervisee).where(Supervisee.name == "New Name")).first() is None


def test_every_bad_row_is_reported_not_just_the_first(db, officers):
    lines = roster_csv(10, officers).splitlines()
    lines[2] = lines[2].replace("139 0000 0002", "555")
    lines[5] = lines[5].replace("probation", "jail").replace("parole", "jail")
    result = _import(db, "\n".join(lines))
    assert {(e.line, e.column) for e in result.errors} == {(3, "phone"), (6, "category")}


def test_header_problems_and_bom(db, officers):
    data = roster_csv(5, officers)
    assert _import(db, ("\ufeff" + data).encode("utf-8")).created == 5
    missing = _import(db, data.replace("township,", ""))
    assert any(e.column == "township" and e.line == 1 for e in missing.errors)
    garbage = _import(db, b"case_number,name\n\x81\xff\xfe\x80,x\n")  # neither UTF-8 nor GBK
    assert garbage.errors[0].column == "file" and "neither UTF-8 nor GBK" in garbage.errors[0].message("en")


def test_the_offices_spreadsheets_gbk_csv_xlsx_chinese_headers_and_words(db, officers):
    """As a county office keeps its roster: CSV saved by Chinese Windows (GBK), or an Excel workbook, with
    Chinese headers and Chinese words for level, category and language."""
    import io

    from openpyxl import Workbook

    header = "案号,姓名,手机号,语言,矫正类别,管理等级,司法所,协管员编号,矫正开始,矫正结束"
    rows = [f"JZ{i:04d},王{i},1380000{i:04d},中文,{'缓刑' if i % 2 else '假释'},{'严管' if i % 3 else '宽管'},红果镇,"
            f"{officers[i % 3]},2026-01-01,2028-01-01" for i in range(6)]
    gbk = ("\r\n".join([header, *rows]) + "\r\n").encode("gbk")
    result = _import(db, gbk)
    assert result.ok and result.created == 6, result.errors
    with session_scope(db.engine) as s:
        first = s.exec(select(Supervisee).where(Supervisee.case_number == "JZ0001")).one()
        assert (first.name, first.level, first.category, first.language) == ("王1", "strict", "probation", "zh-CN")
    book = Workbook()
    sheet = book.active
    sheet.append(header.split(","))
    for i in range(6, 9):  # dates as Excel keeps them, numbers as numbers
        sheet.append([f"JZ{i:04d}", f"王{i}", 13800000000 + i, "中文", "管制", "普管", "红果镇", officers[0],
                      datetime(2026, 1, 1), datetime(2028, 1, 1)])
    buffer = io.BytesIO()
    book.save(buffer)
    result = _import(db, buffer.getvalue())
    assert result.ok and result.created == 3, result.errors
    broken = _import(db, b"PK\x03\x04 not really a workbook")
    assert broken.errors[0].column == "file" and "not a readable XLSX workbook" in broken.errors[0].message("en")
    bad_word = _import(db, (header + "\n" + rows[0].replace("严管", "特管").replace("宽管", "特管")).encode("gbk"))
    assert any(e.column == "level" and e.value == "特管" for e in bad_word.errors)


def test_phone_of_another_person_is_refused(db, officers):
    _import(db, roster_csv(3, officers))
    other = roster_csv(1, officers, start=50).replace("139 0000 0050", "139 0000 0001")
    result = _import(db, other)
    assert [(e.column, e.value) for e in result.errors] == [("phone", "+8613900000001")]


def test_normalise_phone_formats():
    assert normalise_phone("138 1234 5678", "CN") == "+8613812345678"
    assert normalise_phone("+86 138-1234-5678", "CN") == "+8613812345678"
    for bad in ("", "abc", "1381234567", "010 6512 3456"):
        with pytest.raises(ValueError):
            normalise_phone(bad, "CN")


def test_cli_import_dry_run_and_errors(env, officers, tmp_path):
    good = tmp_path / "roster.csv"
    good.write_text(roster_csv(30, officers), encoding="utf-8")
    runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})
    dry = runner.invoke(app, ["roster", "import", str(good), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "30 created" in dry.output and _count(env) == 0
    assert runner.invoke(app, ["roster", "import", str(good)]).exit_code == 0
    assert _count(env) == 30
    changed = tmp_path / "changed.csv"
    changed.write_text(roster_csv(30, officers).replace("测试人1,", "Renamed,"), encoding="utf-8")
    dry = runner.invoke(app, ["roster", "import", str(changed), "--dry-run"])
    assert "0 created, 1 updated, 29 unchanged" in dry.output
    with session_scope(env.engine) as s:
        assert s.exec(select(Supervisee).where(Supervisee.name == "Renamed")).first() is None
    bad = tmp_path / "bad.csv"
    bad.write_text(roster_csv(5, officers, start=100).replace(",2026-06-18,", ",2026-02-31,"), encoding="utf-8")
    result = runner.invoke(app, ["roster", "import", str(bad)])
    assert result.exit_code == 1
    assert "line 3, supervision_start='2026-02-31'" in result.output
    assert "nothing was imported" in result.output
    assert _count(env) == 30
    listing = runner.invoke(app, ["roster", "list", "--officer", str(officers[1])], env={"COLUMNS": "200"})
    assert listing.exit_code == 0 and "JZ2700001" in listing.output and "JZ2700002" not in listing.output


def test_row_and_database_problems_come_in_one_pass(db, officers):
    assert _import(db, roster_csv(2, officers)).ok  # JZ...01 and 02 hold their phones
    with session_scope(db.engine) as s:
        taken = s.exec(select(Supervisee).order_by(Supervisee.id)).first()
        taken_phone, taken_case = taken.phone, taken.case_number
    lines = roster_csv(3, officers, start=10).splitlines()
    first = lines[1].split(",")
    first[8] = "2027-02-30"  # a row problem on line 2 ...
    first[7] = "99999"  # ... and, on the same line, an officer the database does not have
    lines[1] = ",".join(first)
    second = lines[2].split(",")
    second[2] = taken_phone  # line 3: a phone already held by a person not in this file
    lines[2] = ",".join(second)
    result = _import(db, "\n".join(lines) + "\n")
    assert not result.ok
    found = [(e.line, e.column) for e in result.errors]
    assert found == [(2, "officer_id"), (2, "supervision_start"), (3, "phone")]
    assert f"already the phone of case {taken_case}" in str(result.errors[2])
    assert _count(db) == 2  # nothing imported


def _with_channels(data: str, channels: dict[int, str]) -> str:
    """`data` with a channel column, `channels` giving the cell of line N (the rest empty)."""
    lines = data.splitlines()
    return "\n".join([lines[0] + ",channel"] + [f"{line},{channels.get(n, '')}"
                                                   for n, line in enumerate(lines[1:], start=2)]) + "\n"


def _channel_of(db, case: str) -> tuple[str, str]:
    with session_scope(db.engine) as s:
        p = s.exec(select(Supervisee).where(Supervisee.case_number == case)).one()
        return p.preferred_channel, p.phone


def test_the_channel_column_puts_people_on_calls_and_lets_their_number_be_a_landline(db, officers):
    from sqlmodel import col

    from storage.models import AuditEntry

    data = roster_csv(4, officers)
    landline = data.replace("139 0000 0002", "010 6512 3456")
    refused = _import(db, _with_channels(landline, {2: "voice", 3: "sms", 4: "fax"}))
    assert [(e.line, e.column, e.value) for e in refused.errors] == [
        (3, "phone", "010 6512 3456"), (4, "channel", "fax")]
    assert "a landline only with channel voice" in refused.errors[0].message("en") and _count(db) == 0
    result = _import(db, _with_channels(landline, {3: "电话", 4: "短信"}))
    assert result.ok and result.created == 4, result.errors
    assert _channel_of(db, "JZ2700002") == ("voice", "+861065123456")
    assert _channel_of(db, "JZ2700003") == ("sms", "+8613900000003")
    assert _channel_of(db, "JZ2700001")[0] == "sms"  # empty: SMS for someone new
    assert _import(db, landline.replace("139 0000 0002", "010 6512 3456")).unchanged == 4  # no column: kept
    later = datetime(2027, 4, 1, tzinfo=UTC)
    moved = _import(db, _with_channels(landline, {3: "voice", 5: "voice"}), now=later)
    assert (moved.updated, moved.unchanged, moved.notices) == (1, 3, 1)  # the person is told
    assert _channel_of(db, "JZ2700004")[0] == "voice"
    with session_scope(db.engine) as s:
        (entry,) = s.exec(select(AuditEntry).where(AuditEntry.action == "case.channel",
                                                   col(AuditEntry.at) == later)).all()
        assert entry.actor == "roster"
    telegram = _import(db, _with_channels(landline, {2: "telegram"}))  # not linked: the person links it
    assert [(e.line, e.column) for e in telegram.errors] == [(2, "channel")]
    assert "link code" in telegram.errors[0].message("en")


def test_a_person_whose_number_is_a_landline_cannot_be_put_on_sms(db, officers):
    from handlers.case_life import Actor, CaseError, set_channel

    _import(db, _with_channels(roster_csv(2, officers).replace("139 0000 0002", "010 6512 3456"), {3: "voice"}))
    with session_scope(db.engine) as s:
        p = s.exec(select(Supervisee).where(Supervisee.case_number == "JZ2700002")).one()
        with pytest.raises(CaseError) as refused:
            set_channel(s, p, "sms", actor=Actor("test"), now=NOW)
        assert refused.value.render("en") == "JZ2700002's number is a landline: it takes calls (voice), not SMS."
        mobile = s.exec(select(Supervisee).where(Supervisee.case_number == "JZ2700001")).one()
        assert set_channel(s, mobile, "voice", actor=Actor("test"), now=NOW)  # told: calls from now on
