"""Every table the CLI prints is readable at 80 columns: whole key columns, nothing cut with an ellipsis."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from sqlmodel import select
from typer.testing import CliRunner

from bot import sample
from bot.cli import app
from bot.report_view import REPORT_COLUMNS, print_report
from bot.tables import Column, fitted, transposed
from content.catalog import text
from content.policy import load_policy
from handlers import compliance
from storage.db import session_scope
from storage.models import Officer, Supervisee

runner = CliRunner(env={"CHECKIN_LANGUAGE": "en"})
NOW = datetime(2027, 3, 15, 2, tzinfo=UTC)


def run(*args, width: int = 80) -> str:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(width), "CHECKIN_CLOCK": f"{NOW.isoformat()}@1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def county(env):
    run("init")
    sample.seed(env.engine, NOW)
    with session_scope(env.engine) as s:
        cases = [p.case_number for p in s.exec(select(Supervisee))]
        officers = [(o.id, o.role) for o in s.exec(select(Officer))]
    return env, cases, officers


def test_roster_list_at_80_columns_shows_every_case_number_whole(county):
    _, cases, _ = county
    out = run("roster", "list")
    assert "…" not in out
    assert all(case in out for case in cases) and len(cases) == 40
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "not shown at 80 columns:" in out  # what did not fit is named, not cut
    wide = run("roster", "list", width=200)
    assert "not shown" not in wide and "2027-" in wide  # start and end dates fit a wide terminal


def test_officer_list_at_80_columns_keeps_the_roles(county):
    _, _, officers = county
    out = run("officer", "list")
    assert "…" not in out
    for officer_id, role in officers:
        assert any(line.split("│")[1].strip() == str(officer_id) and role in line for line in out.splitlines()
                   if line.startswith("│")), (officer_id, role)


@pytest.mark.parametrize("args", [
    ("areas", "list"), ("leave", "list"), ("service", "list"), ("report", "--month", "2027-03"),
    ("report", "--month", "2027-02"),
])
def test_other_tables_fit_80_columns(county, args):
    out = run(*args)
    assert "…" not in out
    assert max(len(line) for line in out.splitlines() if line.strip()) <= 80


def test_the_report_is_transposed_and_names_its_figures_in_words(county, tmp_path):
    """A row per figure, named in the office's words; the CSV's columns keep the figures' names."""
    out = run("report", "--month", "2027-3", "--csv", str(tmp_path / "r.csv"))
    assert "compliance 2027-03 so far" in out and "2027-3 " not in out  # --month normalised
    with (tmp_path / "r.csv").open(encoding="utf-8-sig") as fh:  # written with a BOM, for Excel
        header = next(csv.reader(fh))
    assert header == ["month", *REPORT_COLUMNS]
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert [r for r in rows if r] == [text("en", f"office.report.figure_{k}") for k in REPORT_COLUMNS[1:]]
    assert "not yet active" in rows and "not_yet_active" not in out
    assert all(town in out for town in ("红果镇", "两河镇", "平关镇", "county"))


def test_a_month_that_has_not_begun_says_so(county):
    out = run("report", "--month", "2027-05")
    assert "2027-05 has not begun" in out and "target" not in out


def test_a_bad_month_names_the_value(county):
    result = runner.invoke(app, ["report", "--month", "2027-13"])
    assert result.exit_code == 2 and "'2027-13'" in result.output and "YYYY-MM" in result.output


def test_people_not_yet_begun_are_counted_apart(county):
    env, _, _ = county
    with session_scope(env.engine) as s:
        late = s.exec(select(Supervisee).order_by(Supervisee.id)).first()
        late.supervision_start = datetime(2027, 3, 20).date()
        s.add(late)
    with session_scope(env.engine) as s:
        lines = compliance.report(s, "2027-03", zone=ZoneInfo("Asia/Shanghai"), policy=load_policy(), now=NOW)
    county_line = lines[-1]
    assert county_line.not_yet_active == 1 and county_line.active + county_line.not_yet_active == 40
    console = Console(width=80, record=True, file=None)
    print_report(console, lines, "2027-03", None, 5.0, status="current", lang="en")
    assert "1 people begin supervision later in 2027-03" in console.export_text()


def test_fitted_keeps_key_columns_and_names_what_it_left_out():
    columns = [Column("case", key=True), Column("wide" * 10), Column("small")]
    rows = [["JZ-2027-000123456789", "x" * 60, "y"]]
    table = fitted(columns, rows, width=40, lang="en")
    console = Console(width=40, record=True, file=None)
    console.print(table)
    text = console.export_text()
    assert "JZ-2027-000123456789" in text and "…" not in text and "small" in text
    assert "notshownat40columns:" + "wide" * 10 in "".join(text.split())  # the caption wraps, whole


def test_transposed_splits_many_townships_into_blocks():
    heads = [f"第{i}镇" for i in range(12)]
    tables = transposed(["active", "due"], heads, [["100", "1200"] for _ in heads], width=80)
    assert len(tables) > 1
    console = Console(width=80, record=True, file=None)
    for t in tables:
        console.print(t)
    text = console.export_text()
    assert "…" not in text and all(h in text for h in heads)
