"""Supervision policy: the defaults in policy.toml, overridden by an administrator's file."""

from __future__ import annotations

import tomllib
from datetime import time, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULTS = Path(__file__).with_name("policy.toml")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LEVELS = ("strict", "ordinary", "lenient")


class PolicyError(ValueError):
    """The policy file is unreadable or has a bad value; the message names the key and value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hhmm(v: object) -> time:
    if isinstance(v, time):
        return v
    try:
        hh, mm = str(v).split(":")
        return time(int(hh), int(mm))
    except ValueError:
        raise ValueError("expected a time as HH:MM") from None


class CheckinRule(_Strict):
    weekdays: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(min_length=1)
    time: time

    _t = field_validator("time", mode="before")(_hhmm)

    def weekday_numbers(self) -> frozenset[int]:
        """Python weekday numbers (Monday 0)."""
        return frozenset(WEEKDAYS.index(d) for d in self.weekdays)


class Window(_Strict):
    reply_hours: float = Field(gt=0, le=24)
    reminder_hours: float = Field(gt=0)

    @model_validator(mode="after")
    def _inside(self) -> Window:
        if self.reminder_hours >= self.reply_hours:
            raise ValueError("reminder_hours must be less than reply_hours")
        return self

    @property
    def reply(self) -> timedelta:
        return timedelta(hours=self.reply_hours)

    @property
    def reminder(self) -> timedelta:
        return timedelta(hours=self.reminder_hours)


class ReportRule(_Strict):
    period: Literal["week", "month"]
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "fri"
    day: int = Field(25, ge=1, le=31)
    time: time
    deadline_hours: float = Field(gt=0, le=24 * 28)
    reminder_hours: float = Field(gt=0)

    _t = field_validator("time", mode="before")(_hhmm)

    @model_validator(mode="after")
    def _inside(self) -> ReportRule:
        if self.reminder_hours >= self.deadline_hours:
            raise ValueError("reminder_hours must be less than deadline_hours")
        return self


class QuietHours(_Strict):
    start: time
    end: time

    _t = field_validator("start", "end", mode="before")(_hhmm)

    def contains(self, t: time) -> bool:
        """True when local time `t` falls in the quiet hours (which may span midnight)."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


class Escalation(_Strict):
    officer_sla_hours: float = Field(gt=0, le=72)
    supervisor_sla_hours: float = Field(8, gt=0, le=72)
    outcome_hours: float = Field(24, gt=0, le=24 * 7)
    working_days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(
        ("mon", "tue", "wed", "thu", "fri"), min_length=1)
    working_start: time = time(8, 30)
    working_end: time = time(17, 30)
    public_holidays_off: bool = True
    bulk_from: int = Field(5, ge=2, le=1000)  # this many alerts for one officer at once come as one list

    _t = field_validator("working_start", "working_end", mode="before")(_hhmm)

    @model_validator(mode="after")
    def _day(self) -> Escalation:
        if self.working_start >= self.working_end:
            raise ValueError("working_start must be before working_end")
        return self

    @property
    def officer_sla(self) -> timedelta:
        return timedelta(hours=self.officer_sla_hours)

    @property
    def supervisor_sla(self) -> timedelta:
        return timedelta(hours=self.supervisor_sla_hours)

    @property
    def outcome(self) -> timedelta:
        return timedelta(hours=self.outcome_hours)

    def working_day_numbers(self) -> frozenset[int]:
        return frozenset(WEEKDAYS.index(d) for d in self.working_days)


class Greetings(_Strict):
    enabled: bool = True
    time: time

    _t = field_validator("time", mode="before")(_hhmm)


class MonthlyTarget(_Strict):
    """Minutes owed each month; those behind are reminded on `remind_day` and escalated on `escalate_day`."""

    monthly_minutes: int = Field(ge=0, le=10000)
    remind_day: int = Field(ge=1, le=28)
    escalate_day: int = Field(ge=1, le=28)


class Study(MonthlyTarget):
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    time: time
    window_days: float = Field(gt=0, le=31)
    reminder_days: float = Field(gt=0)

    _t = field_validator("time", mode="before")(_hhmm)

    @model_validator(mode="after")
    def _order(self) -> Study:
        if self.reminder_days >= self.window_days:
            raise ValueError("reminder_days must be less than window_days")
        if self.escalate_day < self.remind_day:
            raise ValueError("escalate_day must not come before remind_day")
        return self


class Service(MonthlyTarget):
    announce_hours: float = Field(24, ge=0, le=24 * 14)
    remind_hours: float = Field(2, ge=0, le=48)


class Limits(_Strict):
    forward_chars: int = Field(500, ge=50, le=4000)
    say_chars: int = Field(500, ge=50, le=4000)
    report_parts: int = Field(50, ge=1, le=500)
    wrong_codes_per_hour: int = Field(5, ge=1, le=100)
    sms_undelivered_in_a_row: int = Field(3, ge=1, le=20)
    bare_answer_chars: int = Field(4, ge=0, le=20)
    page_chars: int = Field(1500, ge=200, le=4000)


class Voice(_Strict):
    retries: int = Field(2, ge=0, le=5)  # an unanswered check-in call is placed again this many times
    retry_minutes: int = Field(20, ge=5, le=240)  # this long after the last, inside the window, never in quiet hours
    unanswered_in_a_row: int = Field(5, ge=2, le=50)  # check-in calls left unanswered in a row: unreachable by voice
    call_before_escalating: bool = False  # a person on SMS or Telegram is called once before a check-in is missed
    call_minutes_before_close: int = Field(60, ge=5, le=720)  # when: this long before the check-in's window closes


class ReportFigures(_Strict):
    lost_contact_days: int = Field(ge=1, le=365)
    target_per_mille: float = Field(ge=0, le=1000)


class Location(_Strict):
    levels: tuple[Literal["strict", "ordinary", "lenient"], ...] = ("strict",)
    home_area: str = Field("county", min_length=1)
    accuracy_credit_m: float = Field(100, ge=0, le=5000)
    retention_days: int = Field(180, ge=1, le=3650)
    map_url: str = "https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=13/{lat}/{lon}"

    @field_validator("map_url")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        try:
            v.format(lat=0, lon=0)
        except (KeyError, IndexError, ValueError):
            raise ValueError("may use only {lat} and {lon}") from None
        return v

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)


class Leave(_Strict):
    max_days: int = Field(30, ge=1, le=366)
    min_notice_days: int = Field(0, ge=0, le=60)
    remind_time: time = time(9, 0)
    return_grace_hours: float = Field(24, ge=0, le=24 * 14)
    decide_hours: float = Field(48, gt=0, le=24 * 14)  # a request undecided this long becomes an alert
    _t = field_validator("remind_time", mode="before")(_hhmm)

    @property
    def return_grace(self) -> timedelta:
        return timedelta(hours=self.return_grace_hours)

    @property
    def decide(self) -> timedelta:
        return timedelta(hours=self.decide_hours)


class Retention(_Strict):
    personal_data_years: int = Field(5, ge=1, le=100)


class Planning(_Strict):
    horizon_days: int = Field(ge=1, le=31)
    people_per_sweep: int = Field(ge=1)


class Policy(_Strict):
    checkin: dict[Literal["strict", "ordinary", "lenient"], CheckinRule]
    window: Window
    report: dict[Literal["strict", "ordinary", "lenient"], ReportRule]
    quiet_hours: QuietHours
    escalation: Escalation
    planning: Planning
    greetings: Greetings
    study: Study
    service: Service
    report_figures: ReportFigures
    location: Location = Location()
    leave: Leave = Leave()
    retention: Retention = Retention()
    limits: Limits = Limits()
    voice: Voice = Voice()

    @model_validator(mode="after")
    def _every_level(self) -> Policy:
        for part in ("checkin", "report"):
            missing = set(LEVELS) - set(getattr(self, part))
            if missing:
                raise ValueError(f"[{part}] lacks levels {sorted(missing)}")
        return self


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def load_policy(path: str | Path | None = None) -> Policy:
    """The default policy, with the file at `path` (if any) merged over it."""
    with DEFAULTS.open("rb") as fh:
        data = tomllib.load(fh)
    source = str(DEFAULTS)
    if path:
        source = str(path)
        try:
            with Path(path).open("rb") as fh:
                data = _merge(data, tomllib.load(fh))
        except OSError as exc:
            raise PolicyError(f"policy file {source}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"policy file {source}: not valid TOML ({exc})") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top)"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"policy file {source}: {key}={err.get('input')!r}: {msg}")
        raise PolicyError("\n".join(lines)) from None
