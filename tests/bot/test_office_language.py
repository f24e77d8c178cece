"""The office's language: the command line's summaries, table headings and errors, and the errors of what officers
import and change, come from the catalogue's office texts (content/locales/office/) in CHECKIN_LANGUAGE, Chinese by
default. Every key the code names exists in both languages; a Chinese text is not left in English."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

import bot
import content
import handlers
from bot.cli import app
from bot.report_view import REPORT_COLUMNS
from content.catalog import LANGUAGES, catalogue, placeholders
from content.refusals import PhoneError, Refused
from handlers import purge
from handlers.officer_accounts import AccountError
from storage.db import session_scope
from tests.conftest import NOW, roster_csv

ROOT = Path(__file__).resolve().parents[2]
DOCTOR_CHECKS = ("ok", "warn", "fail")
# Files whose own `say(key)` or `_say(lang, key)` puts the key under a section of its own.
OWN_SAY = {"bot/report_view.py": "report.", "bot/demo_summary.py": "demo."}

# Office texts that read the same in both languages: commands, placeholders alone, product names.
SAME_IN_BOTH = {
    "doctor.keys_error", "doctor.key_file_chmod", "doctor.telegram_ok", "doctor.webhook_ok", "doctor.check_telegram",
    "doctor.check_twilio", "doctor.check_telegram_webhook", "officer.col_telegram", "account.phone",
    "roster.in_file", "case.refused", "leave.refused", "officer.refused", "doctor.database_error",
}


def office(language: str) -> dict[str, str]:
    return {k.removeprefix("office."): v for k, v in catalogue(language).items() if k.startswith("office.")}


def _refusal_sections() -> dict[str, str]:
    """Every Refused subclass by name, with its section (the modules that raise them imported first)."""
    for package in (bot, handlers, content):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    found, todo = {}, [Refused]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            found[sub.__name__] = sub.section
            todo.append(sub)
    return found


def _constant(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def keys_in_code() -> dict[str, set[str]]:
    """The office keys the code names as literals, by where: `say("...")`, `text(..., "office....")`, a refusal's
    key, a roster row's error, a doctor's finding and its check's name."""
    sections = _refusal_sections()
    keys: dict[str, set[str]] = {}
    for path in sorted([*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/*.py"), *ROOT.glob("content/*.py")]):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else \
                node.func.attr if isinstance(node.func, ast.Attribute) else ""
            args = [_constant(a) for a in node.args]
            found: list[str] = []
            if name == "say" and args and args[0] and "/office/" not in where:
                found.append(OWN_SAY.get(where, "") + args[0])
            elif name == "_say" and where in OWN_SAY and len(args) > 1 and args[1]:
                found.append(OWN_SAY[where] + args[1])
            elif name == "text" and len(args) > 1 and args[1] and args[1].startswith("office."):
                found.append(args[1].removeprefix("office."))
            elif name in sections and args and args[0]:
                found.append(f"{sections[name]}.{args[0]}")
            elif name == "RowError" and len(args) > 3 and args[3]:
                found.append(args[3])
            elif name == "bad" and where == "handlers/roster.py" and len(args) > 1 and args[1]:
                found.append(args[1])
            elif name in DOCTOR_CHECKS and where == "bot/doctor.py" and len(args) > 1:
                found += [f"doctor.{a}" for a in args[1:3] if a]
                found += [f"doctor.check_{args[0].replace(' ', '_')}"] if args[0] else []
            for key in found:
                keys.setdefault(key, set()).add(where)
    return keys


def test_every_key_the_code_names_is_in_both_languages():
    named = keys_in_code()
    assert len(named) > 300, len(named)  # the scan finds the command line's words, not a handful
    assert {"roster.duplicate_case", "doctor.check_key_file", "account.one_of", "backup.not_empty",
            "officer.col_caseload", "phone.not_mobile"} <= set(named)
    for language in LANGUAGES:
        texts = office(language)
        missing = {k: sorted(w) for k, w in named.items() if k not in texts}
        assert not missing, (language, missing)


def test_the_keys_made_from_names_are_there_too(db):
    """Keys the code builds from a value: the report's figures, the purge's tables, the case changes."""
    with session_scope(db.engine) as s:
        tables = purge.purge(s, now=NOW, years=5, zone=ZoneInfo("Asia/Shanghai"), dry_run=True).removed
    built = [f"report.figure_{k}" for k in REPORT_COLUMNS[1:]] + [f"purge.table_{k}" for k in tables] + \
        [f"case.{what}" for what in ("paused", "resumed", "level", "language", "timezone", "channel", "transferred",
                                     "ended")] + ["keys.to_add", "keys.to_reindex"]
    assert len(tables) >= 10
    for language in LANGUAGES:
        assert not [k for k in built if k not in office(language)], language


def test_both_languages_have_every_key_with_the_same_values():
    en, zh = office("en"), office("zh-CN")
    assert set(en) == set(zh), (set(en) ^ set(zh))
    assert [k for k in en if placeholders(en[k]) != placeholders(zh[k])] == []
    english_left = [k for k in en if en[k] == zh[k] and k not in SAME_IN_BOTH]
    assert english_left == [], english_left


def test_a_refusal_is_said_in_the_readers_language():
    refused = AccountError("phone", field="phone", value="'12'", cause=PhoneError("not_a_number"))
    assert refused.render("en") == "phone='12': not a phone number" == str(refused)
    assert refused.render("zh-CN") == "phone='12'：不是电话号码"


def run(*args, language: str | None = None):
    runner = CliRunner(env={"COLUMNS": "200", **({"CHECKIN_LANGUAGE": language} if language else {})})
    return runner.invoke(app, list(args))


@pytest.fixture
def county(env, tmp_path):
    assert run("init").exit_code == 0
    li = run("officer", "add", "--name", "李娜", "--township", "红果镇").output.strip()
    roster = tmp_path / "r.csv"
    roster.write_text(roster_csv(4, [int(li)]), encoding="utf-8")
    assert run("roster", "import", str(roster)).exit_code == 0
    return int(li)


def test_the_command_line_speaks_chinese_by_default_and_english_on_request(county, tmp_path):
    listing = run("officer", "list")
    assert "共 1 名工作人员" in listing.output and "负责人数" in listing.output and "是" in listing.output
    narrow = CliRunner(env={"COLUMNS": "60"}).invoke(app, ["officer", "list"]).output
    assert "60 列宽放不下：" in narrow and "not shown" not in narrow  # the columns left out, named in Chinese
    english = run("officer", "list", language="en")
    assert "1 officers" in english.output and "caseload" in english.output
    assert "负责人数" not in english.output

    bad = tmp_path / "bad.csv"
    bad.write_text(roster_csv(2, [county]).replace("139 0000 0002", "123"), encoding="utf-8")
    refused = run("roster", "import", str(bad))
    assert refused.exit_code == 1
    assert "bad.csv：第 3 行，phone='123'：不是 CN 地区的有效号码" in refused.output
    assert "发现 1 处问题，整份没有导入。" in refused.output
    refused = run("roster", "import", str(bad), language="en")
    assert "bad.csv: line 3, phone='123': not a valid number for region CN" in refused.output
    assert "1 problem(s) found; nothing was imported." in refused.output

    assert run("case", "level", "JZ2700001", "strict").output.startswith("JZ2700001：等级改为 strict")
    assert "JZ2700001: level ordinary" in run("case", "level", "JZ2700001", "ordinary", language="en").output
    wrong = run("case", "level", "JZ2700001", "loose")
    assert wrong.exit_code == 2 and wrong.output.startswith("JZ2700001：") and "loose" in wrong.output
    assert "没有这个案号" in run("case", "resume", "JZ9").output

    report = run("report", "--month", "2026-11")  # the title wraps to the table's width
    assert "月度报表" in report.output and "报到率" in report.output and "学习未达标" in report.output
    assert "全县" in report.output and "compliance" not in report.output and "county" not in report.output
    english = run("report", "--month", "2026-11", language="en").output
    assert "compliance" in english and "response rate" in english and "county" in english
    assert "--month='March'：应为 YYYY-MM" in run("report", "--month", "March").output


def test_the_doctor_speaks_the_offices_language(county):
    done = run("doctor")
    assert "设置: 有效" in done.output and "数据库: " in done.output and "（最新）" in done.output
    assert "公网地址: 未设置" in done.output and "-> 把 CHECKIN_PUBLIC_URL 设为" in done.output
    english = run("doctor", language="en")
    assert "settings: valid" in english.output and "public url: not set" in english.output
