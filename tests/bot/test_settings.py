"""Settings: contract names, defaults, .env, and errors that name the setting and value."""

from datetime import UTC, datetime, timedelta

import pytest

from bot.settings import SettingsError, load_settings, parse_clock
from scheduler.clock import FastClock
from tests.conftest import clear_env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    clear_env(monkeypatch)


def test_defaults_are_the_contract():
    s = load_settings()
    assert s.database_url == "sqlite:///checkin.db"
    assert s.timezone == "Asia/Shanghai"
    assert s.language == "zh-CN"
    assert s.holiday_country == "CN"
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8080)
    assert s.telegram_base_url == "https://api.telegram.org/bot"
    assert s.twilio_api_base_url == "https://api.twilio.com"
    assert s.clock is None and s.public_url is None
    assert not s.telegram_enabled and not s.sms_enabled


def test_environment_and_dotenv(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("CHECKIN_LANGUAGE=en\nTELEGRAM_BOT_TOKEN=123:abc\n", encoding="utf-8")
    monkeypatch.setenv("CHECKIN_HTTP_PORT", "9000")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC1")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "tok")
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+15005550006")
    s = load_settings()
    assert s.language == "en" and s.http_port == 9000
    assert s.telegram_enabled and s.sms_enabled


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHECKIN_TIMEZONE", "Mars/Olympus"),
        ("CHECKIN_LANGUAGE", "fr"),
        ("CHECKIN_HTTP_PORT", "eighty"),
        ("CHECKIN_HTTP_PORT", "70000"),
        ("CHECKIN_CLOCK", "2027-03-01T06:00@720"),
        ("CHECKIN_CLOCK", "tomorrow@fast"),
        ("CHECKIN_DATABASE_URL", "not a url"),
        ("CHECKIN_HOLIDAY_COUNTRY", "XX"),
        ("CHECKIN_PUBLIC_URL", "ftp://example"),
    ],
)
def test_invalid_value_names_setting_and_value(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert name in str(exc.value)
    assert repr(value) in str(exc.value)


def test_cli_stops_with_the_message(monkeypatch):
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.setenv("CHECKIN_TIMEZONE", "Nowhere/Land")
    result = CliRunner(env={"CHECKIN_LANGUAGE": "en"}).invoke(app, ["officer", "list"])
    assert result.exit_code == 2
    assert "CHECKIN_TIMEZONE='Nowhere/Land'" in result.output


def test_fast_clock_runs_speed_times_faster():
    start, speed = parse_clock("2027-03-01T06:00+08:00@720")
    assert start == datetime(2027, 2, 28, 22, 0, tzinfo=UTC) and speed == 720
    ticks = iter([100.0, 100.0, 105.0])
    clock = FastClock(start, speed, monotonic=lambda: next(ticks))
    assert clock.now() == start
    assert clock.now() == start + timedelta(hours=1)  # 5 s real = 3600 s simulated
