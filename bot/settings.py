"""Typed settings, read once from the environment and `.env`."""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers
from pydantic import AliasChoices, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from content.areas import load_areas
from content.policy import load_policy
from content.sms_templates import load_templates
from storage.crypto import Keyring, KeyringError, new_key

# The settings naming a file of the county's own, and what reads (and so checks) each: PolicyError, AreaError,
# TemplateError.
CHECKED_FILES = {
    "policy_file": load_policy,
    "areas_file": lambda path: load_areas(path, geometry=False),
    "sms_templates_file": load_templates,
}

LANGUAGES = ("zh-CN", "en")
_CLOCK = re.compile(r"^(?P<start>[^@]+)@(?P<speed>[0-9]+(\.[0-9]+)?)$")


def _env(name: str):
    """A field bound to exactly one environment variable name."""
    return AliasChoices(name, name.lower())


class SettingsError(Exception):
    """A setting has an invalid value; the message names the setting and the value."""


class Settings(BaseSettings):
    """Every knob of a checkin instance; names as in the contract."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=False
    )

    database_url: str = Field("sqlite:///checkin.db", validation_alias=_env("CHECKIN_DATABASE_URL"))
    timezone: str = Field("Asia/Shanghai", validation_alias=_env("CHECKIN_TIMEZONE"))
    language: str = Field("zh-CN", validation_alias=_env("CHECKIN_LANGUAGE"))
    holiday_country: str = Field("CN", validation_alias=_env("CHECKIN_HOLIDAY_COUNTRY"))
    phone_region: str = Field("CN", validation_alias=_env("CHECKIN_PHONE_REGION"))
    clock: str | None = Field(None, validation_alias=_env("CHECKIN_CLOCK"))
    public_url: str | None = Field(None, validation_alias=_env("CHECKIN_PUBLIC_URL"))
    http_host: str = Field("127.0.0.1", validation_alias=_env("CHECKIN_HTTP_HOST"))
    http_port: int = Field(8080, ge=1, le=65535, validation_alias=_env("CHECKIN_HTTP_PORT"))
    # Several `checkin run --no-scheduler` processes on one port (SO_REUSEPORT: the kernel spreads connections).
    http_reuse_port: bool = Field(False, validation_alias=_env("CHECKIN_HTTP_REUSE_PORT"))
    # glibc's own variable: when the environment sets it, the service leaves the malloc arenas to it.
    malloc_arena_max: int | None = Field(None, ge=1, validation_alias=_env("MALLOC_ARENA_MAX"))
    enrol_code_days: int = Field(7, ge=1, le=365, validation_alias=_env("CHECKIN_ENROL_CODE_DAYS"))
    telegram_bot_token: str | None = Field(None, validation_alias=_env("TELEGRAM_BOT_TOKEN"))
    telegram_bot_username: str | None = Field(None, validation_alias=_env("TELEGRAM_BOT_USERNAME"))
    telegram_base_url: str = Field(
        "https://api.telegram.org/bot", validation_alias=_env("TELEGRAM_BASE_URL")
    )
    telegram_webhook_secret: str | None = Field(None, validation_alias=_env("TELEGRAM_WEBHOOK_SECRET"))
    twilio_account_sid: str | None = Field(None, validation_alias=_env("TWILIO_ACCOUNT_SID"))
    twilio_auth_token: str | None = Field(None, validation_alias=_env("TWILIO_AUTH_TOKEN"))
    twilio_from_number: str | None = Field(None, validation_alias=_env("TWILIO_FROM_NUMBER"))
    twilio_messaging_service_sid: str | None = Field(
        None, validation_alias=_env("TWILIO_MESSAGING_SERVICE_SID")
    )
    twilio_api_base_url: str = Field("https://api.twilio.com", validation_alias=_env("TWILIO_API_BASE_URL"))
    policy_file: str | None = Field(None, validation_alias=_env("CHECKIN_POLICY_FILE"))
    areas_file: str | None = Field(None, validation_alias=_env("CHECKIN_AREAS_FILE"))
    telegram_rate: float = Field(30.0, gt=0, le=1000, validation_alias=_env("CHECKIN_TELEGRAM_RATE"))
    telegram_paid_broadcast: bool = Field(False, validation_alias=_env("CHECKIN_TELEGRAM_PAID_BROADCAST"))
    claim_lease_seconds: float = Field(300, gt=0, le=86400, validation_alias=_env("CHECKIN_CLAIM_LEASE_SECONDS"))
    telegram_concurrency: int = Field(8, ge=1, le=512, validation_alias=_env("CHECKIN_TELEGRAM_CONCURRENCY"))
    telegram_chat_rate: float = Field(1.0, gt=0, le=100, validation_alias=_env("CHECKIN_TELEGRAM_CHAT_RATE"))
    sms_rate: float = Field(1.0, gt=0, le=1000, validation_alias=_env("CHECKIN_SMS_RATE"))
    # Logging (bot/logs.py): the level (default WARNING for commands, INFO for `checkin run`), text or JSON lines.
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = Field(
        None, validation_alias=_env("CHECKIN_LOG_LEVEL"))
    log_format: Literal["text", "json"] = Field("text", validation_alias=_env("CHECKIN_LOG_FORMAT"))
    # Which provider carries the `sms` channel: Twilio, or Tencent Cloud SMS for mainland China (docs/sms-china.md).
    sms_provider: Literal["twilio", "tencent"] = Field("twilio", validation_alias=_env("CHECKIN_SMS_PROVIDER"))
    tencent_secret_id: str | None = Field(None, validation_alias=_env("TENCENTCLOUD_SECRET_ID"))
    tencent_secret_key: str | None = Field(None, validation_alias=_env("TENCENTCLOUD_SECRET_KEY"), repr=False)
    tencent_sms_app_id: str | None = Field(None, validation_alias=_env("CHECKIN_TENCENT_SMS_APP_ID"))
    tencent_region: str = Field("ap-guangzhou", validation_alias=_env("CHECKIN_TENCENT_REGION"))
    # The API's address: Tencent Cloud's own, or the stand-in's (http://127.0.0.1:PORT) in tests and the demo.
    tencent_sms_endpoint: str = Field("https://sms.tencentcloudapi.com",
                                      validation_alias=_env("CHECKIN_TENCENT_SMS_ENDPOINT"))
    sms_sign_name: str | None = Field(None, validation_alias=_env("CHECKIN_SMS_SIGN_NAME"))
    sms_templates_file: str | None = Field(None, validation_alias=_env("CHECKIN_SMS_TEMPLATES_FILE"))
    # Tencent's callbacks are not signed: their path carries this secret, and they may be held to these networks.
    tencent_callback_secret: str | None = Field(None, min_length=24, repr=False,
                                                validation_alias=_env("CHECKIN_TENCENT_CALLBACK_SECRET"))
    tencent_callback_networks: str | None = Field(None, validation_alias=_env("CHECKIN_TENCENT_CALLBACK_NETWORKS"))
    # Calls (bot/channels/voice.py): from this number, else the SMS number; placed at most this many a second.
    twilio_voice_from: str | None = Field(None, validation_alias=_env("TWILIO_VOICE_FROM"))
    voice_rate: float = Field(1.0, gt=0, le=100, validation_alias=_env("CHECKIN_VOICE_RATE"))
    # Encryption at rest (storage.crypto): data keys newest first, the blind-index key; or a key file holding both.
    data_keys: str | None = Field(None, validation_alias=_env("CHECKIN_DATA_KEYS"), repr=False)
    index_key: str | None = Field(None, validation_alias=_env("CHECKIN_INDEX_KEY"), repr=False)
    key_file: str = Field("checkin.keys", validation_alias=_env("CHECKIN_KEY_FILE"))

    @field_validator("database_url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            make_url(v)
        except ArgumentError as exc:
            raise ValueError("not a database URL (e.g. sqlite:///checkin.db)") from exc
        return v

    @field_validator(*CHECKED_FILES)
    @classmethod
    def _file(cls, v: str | None, info: ValidationInfo) -> str | None:
        """A file of the county's own, read now: its error (a ValueError naming the entry, field and value) stops
        the start rather than the first use."""
        if v in (None, ""):
            return None
        CHECKED_FILES[info.field_name](v)
        return v

    @field_validator("tencent_callback_networks")
    @classmethod
    def _networks(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        for net in v.split(","):
            try:
                ipaddress.ip_network(net.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{net.strip()!r} is not a network (e.g. 203.0.113.0/24)") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone (e.g. Asia/Shanghai)") from exc
        return v

    @field_validator("language")
    @classmethod
    def _lang(cls, v: str) -> str:
        if v not in LANGUAGES:
            raise ValueError(f"must be one of {', '.join(LANGUAGES)}")
        return v

    @field_validator("holiday_country")
    @classmethod
    def _country(cls, v: str) -> str:
        if v not in holidays.list_supported_countries():
            raise ValueError("not a country the holidays package knows (e.g. CN)")
        return v

    @field_validator("phone_region")
    @classmethod
    def _region(cls, v: str) -> str:
        if v not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("not a phone region (e.g. CN)")
        return v

    @field_validator("clock")
    @classmethod
    def _clock(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        parse_clock(v)
        return v

    @field_validator("public_url", "telegram_base_url", "twilio_api_base_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _keys(self) -> Settings:
        if self.data_keys or self.index_key:
            if not (self.data_keys and self.index_key):
                raise ValueError("set both CHECKIN_DATA_KEYS and CHECKIN_INDEX_KEY, or neither (and use a key file)")
            Keyring.parse(self.data_keys, self.index_key)  # KeyringError (a ValueError) names the bad key
        return self

    @model_validator(mode="after")
    def _twilio_pair(self) -> Settings:
        if self.twilio_from_number and self.twilio_messaging_service_sid:
            raise ValueError(
                "set TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID, not both"
            )
        return self

    def keyring(self) -> Keyring:
        """The encryption keys: from CHECKIN_DATA_KEYS/CHECKIN_INDEX_KEY, else from the key file."""
        if self.data_keys:
            return Keyring.parse(self.data_keys, self.index_key or "")
        path = Path(self.key_file)
        if not path.exists():
            raise KeyringError(
                f"no encryption keys: CHECKIN_DATA_KEYS and CHECKIN_INDEX_KEY are not set and the key file "
                f"{path} does not exist (`checkin init` makes one for a new database)")
        values = read_key_file(path)
        return Keyring.parse(values.get("CHECKIN_DATA_KEYS", ""), values.get("CHECKIN_INDEX_KEY", ""))

    @property
    def zone(self) -> ZoneInfo:
        """The county's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def telegram_enabled(self) -> bool:
        """Telegram is on when a bot token is set."""
        return bool(self.telegram_bot_token)

    @property
    def voice_enabled(self) -> bool:
        """Calls are on with Twilio's credentials, a number to call from, and a public URL for Twilio to fetch the
        call's words from."""
        return bool(self.twilio_account_sid and self.twilio_auth_token and self.public_url
                    and (self.twilio_voice_from or self.twilio_from_number))

    @property
    def sms_enabled(self) -> bool:
        """SMS is on when its provider's credentials and a sender are set (Twilio: a number or a messaging service;
        Tencent Cloud: the SMS application and the county's approved signature)."""
        if self.sms_provider == "tencent":
            return bool(self.tencent_secret_id and self.tencent_secret_key and self.tencent_sms_app_id
                        and self.sms_sign_name)
        return bool(
            self.twilio_account_sid
            and self.twilio_auth_token
            and (self.twilio_from_number or self.twilio_messaging_service_sid)
        )


def read_key_file(path: Path) -> dict[str, str]:
    """NAME=value lines of a key file (the .env format: it may be included in one)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and not name.startswith("#"):
            values[name.strip()] = value.strip().strip('"').strip("'")
    return values


def new_key_text() -> dict[str, str]:
    """Fresh keys, as the key file's lines name them."""
    return {"CHECKIN_DATA_KEYS": new_key(), "CHECKIN_INDEX_KEY": new_key()}


def write_key_file(path: Path, keyring_text: dict[str, str]) -> None:
    """Write a key file readable by its owner only (replacing it atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# checkin encryption keys: without them the database cannot be read. Keep a copy apart from it.\n")
        for name, value in keyring_text.items():
            f.write(f"{name}={value}\n")
    os.replace(tmp, path)


def own_keys(path: Path) -> dict[str, str]:
    """The keys in the key file at `path` (made when missing), as `load_settings` overrides (the demo's own)."""
    if not path.exists():
        write_key_file(path, new_key_text())
    values = read_key_file(path)
    return {"data_keys": values["CHECKIN_DATA_KEYS"], "index_key": values["CHECKIN_INDEX_KEY"]}


def parse_clock(value: str) -> tuple[datetime, float]:
    """Parse `START@SPEED` (aware ISO-8601 start, speed > 0)."""
    m = _CLOCK.match(value.strip())
    if not m:
        raise ValueError("expected START@SPEED, e.g. 2027-03-01T06:00+08:00@720")
    try:
        start = datetime.fromisoformat(m["start"])
    except ValueError as exc:
        raise ValueError(f"start {m['start']!r} is not an ISO-8601 date-time") from exc
    if start.tzinfo is None:
        raise ValueError("start needs a UTC offset, e.g. +08:00")
    speed = float(m["speed"])
    if speed <= 0:
        raise ValueError("speed must be above 0")
    return start, speed


_ALIASES = {name: f.validation_alias.choices[0] for name, f in Settings.model_fields.items()}


def load_settings(**overrides) -> Settings:
    """Read the settings once; raise SettingsError naming each bad setting and value."""
    try:
        return Settings(**{_ALIASES.get(k, k): v for k, v in overrides.items()})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = err.get("msg", "invalid").removeprefix("Value error, ")
            if not err.get("loc"):
                lines.append(f"invalid settings: {msg}")
                continue
            name = str(err["loc"][0])
            name = _ALIASES.get(name, name).upper()
            lines.append(f"invalid setting {name}={err.get('input')!r}: {msg}")
        raise SettingsError("\n".join(lines)) from None
