"""Policy defaults, an administrator's override file, and errors that name key and value."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.settings import SettingsError, load_settings
from content.policy import PolicyError, load_policy
from handlers.cadence import checkin_slots, quiet_end_after, report_slots
from handlers.schedule import default_schedule
from tests.conftest import clear_env

SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh=0, mm=0, zone=SH):
    return datetime(y, m, d, hh, mm, tzinfo=zone).astimezone(UTC)


def test_defaults():
    p = load_policy()
    assert p.checkin["strict"].weekday_numbers() == frozenset(range(7))
    assert p.checkin["ordinary"].weekdays == ("mon", "thu")
    assert p.checkin["lenient"].weekdays == ("mon",)
    assert p.window.reply == timedelta(hours=4) and p.window.reminder == timedelta(hours=2)
    assert p.report["strict"].period == "week" and p.report["ordinary"].period == "month"
    assert (p.quiet_hours.start, p.quiet_hours.end) == (time(21), time(8))
    assert p.escalation.officer_sla == timedelta(hours=4)


def test_override_file_merges_over_defaults(tmp_path):
    f = tmp_path / "policy.toml"
    f.write_text('[checkin.ordinary]\nweekdays = ["tue", "fri"]\n[window]\nreply_hours = 6\n', encoding="utf-8")
    p = load_policy(f)
    assert p.checkin["ordinary"].weekdays == ("tue", "fri")
    assert p.checkin["ordinary"].time == time(9)  # kept from the defaults
    assert p.window.reply_hours == 6 and p.window.reminder_hours == 2


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('[checkin.strict]\ntime = "25:00"', "checkin.strict.time='25:00'"),
        ('[checkin.lenient]\nweekdays = ["someday"]', "checkin.lenient.weekdays.0='someday'"),
        ("[window]\nreminder_hours = 5", "reminder_hours must be less than reply_hours"),
        ("[escalation]\nofficer_sla_hours = -1", "escalation.officer_sla_hours=-1"),
        ("[checkin.strict\n", "not valid TOML"),
        ("[checkin.strict]\nevery = 'day'", "checkin.strict.every='day'"),
    ],
)
def test_bad_policy_names_key_and_value(tmp_path, body, needle):
    f = tmp_path / "policy.toml"
    f.write_text(body, encoding="utf-8")
    with pytest.raises(PolicyError) as exc:
        load_policy(f)
    assert needle in str(exc.value) and str(f) in str(exc.value)


def test_policy_file_setting_is_checked_at_start_up(tmp_path, monkeypatch):
    clear_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.toml").write_text('[quiet_hours]\nstart = "nine"', encoding="utf-8")
    monkeypatch.setenv("CHECKIN_POLICY_FILE", str(tmp_path / "p.toml"))
    with pytest.raises(SettingsError, match="CHECKIN_POLICY_FILE.*quiet_hours.start='nine'"):
        load_settings()
    monkeypatch.setenv("CHECKIN_POLICY_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(SettingsError, match="missing.toml"):
        load_settings()


# ---- cadence -----------------------------------------------------------------------


def test_checkin_cadence_per_level():
    p = load_policy()
    week = (at(2027, 3, 1), at(2027, 3, 8))  # Monday to Monday
    strict = checkin_slots(p, "strict", SH, *week)
    ordinary = checkin_slots(p, "ordinary", SH, *week)
    lenient = checkin_slots(p, "lenient", SH, *week)
    assert [s.period_key for s in strict] == [f"2027-03-0{d}" for d in range(1, 8)]
    assert [s.period_key for s in ordinary] == ["2027-03-01", "2027-03-04"]
    assert [s.period_key for s in lenient] == ["2027-03-01"]
    first = strict[0]
    assert first.due_at == at(2027, 3, 1, 9)
    assert first.remind_at == at(2027, 3, 1, 11) and first.window_end_at == at(2027, 3, 1, 13)


def test_a_check_in_set_in_quiet_hours_waits_for_their_end(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[checkin.strict]\ntime = "06:30"', encoding="utf-8")
    (slot,) = checkin_slots(load_policy(f), "strict", SH, at(2027, 3, 1), at(2027, 3, 2))
    assert slot.due_at == at(2027, 3, 1, 8) and slot.window_end_at == at(2027, 3, 1, 12)


def test_quiet_hours_span_midnight():
    q = load_policy().quiet_hours
    assert quiet_end_after(at(2027, 3, 1, 22, 30), q, SH) == at(2027, 3, 2, 8)
    assert quiet_end_after(at(2027, 3, 2, 3, 0), q, SH) == at(2027, 3, 2, 8)
    assert quiet_end_after(at(2027, 3, 2, 8, 0), q, SH) is None
    assert quiet_end_after(at(2027, 3, 2, 20, 59), q, SH) is None


def test_person_time_zone_moves_local_times():
    london = ZoneInfo("Europe/London")
    (slot,) = checkin_slots(load_policy(), "lenient", london, at(2027, 3, 1), at(2027, 3, 8))
    assert slot.due_at == datetime(2027, 3, 1, 9, tzinfo=london).astimezone(UTC)


def test_report_periods_and_short_months(tmp_path):
    p = load_policy()
    weekly = report_slots(p, "strict", SH, at(2027, 3, 1), at(2027, 3, 15))
    assert [(s.period_key, s.due_at) for s in weekly] == [("2027-W09", at(2027, 3, 5, 9)), ("2027-W10", at(2027, 3, 12, 9))]
    assert weekly[0].window_end_at == at(2027, 3, 7, 9)
    f = tmp_path / "p.toml"
    f.write_text("[report.lenient]\nday = 31", encoding="utf-8")
    feb = report_slots(load_policy(f), "lenient", SH, at(2027, 2, 1), at(2027, 3, 1))
    assert [(s.period_key, s.due_at) for s in feb] == [("2027-02", at(2027, 2, 28, 9))]


def test_slots_stay_inside_the_supervision_dates():
    p = load_policy()
    found = default_schedule().plan(p, "strict", SH, at(2027, 3, 1), at(2027, 3, 8), date(2027, 3, 3), date(2027, 3, 5))
    assert [s.period_key for s in found if s.kind == "checkin"] == ["2027-03-03", "2027-03-04", "2027-03-05"]
    assert [s.period_key for s in found if s.kind == "report"] == ["2027-W09"]
