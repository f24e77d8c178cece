"""`checkin doctor`: what an operator checks on a server, one line each, with what to do about a problem.

Each check says `ok`, `warn` (works, but will bite) or `fail` (something does
not work); the command exits non-zero on any failure. The checks use only the
settings, the database and the providers' read-only calls (Telegram `getMe`
and `getWebhookInfo`, Twilio's account and number), never a send.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import holidays
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

import bot.channels  # noqa: F401  (first: httpx without its command-line client, bot/channels/__init__.py)
from bot.settings import Settings
from content import catalog
from storage import outbox
from storage.crypto import DecryptError, KeyringError
from storage.db import current_revision, head_revision, make_engine, session_scope
from storage.models import Officer, Supervisee
from storage.service_models import last_beat

OUTBOX_WARN, OUTBOX_FAIL = timedelta(minutes=10), timedelta(hours=1)  # the oldest message due and not sent
SWEEP_FAIL = timedelta(minutes=10)  # the sweep runs every minute while the service runs
PENDING_UPDATES_WARN = 100


class Words(str):
    """A value that is itself a text of `office.doctor.`: said in the reader's language too."""


@dataclass(frozen=True)
class Finding:
    """One check's verdict: what it found and what to do, as keys of the office's texts (`office.doctor.`) with
    their values, said in the reader's language."""

    check: str  # the check's name: "database", "key file" ...
    level: str  # ok, warn, fail
    found: str
    todo: str = ""
    params: dict = field(default_factory=dict, compare=False)

    def label(self, lang: str) -> str:
        return catalog.text(lang, f"office.doctor.check_{self.check.replace(' ', '_')}")

    def says(self, lang: str) -> str:
        return catalog.text(lang, f"office.doctor.{self.found}", **self._values(lang))

    def fix(self, lang: str) -> str:
        return catalog.text(lang, f"office.doctor.{self.todo}", **self._values(lang)) if self.todo else ""

    def _values(self, lang: str) -> dict:
        """The values, with `minutes` also said as an `age` in the reader's words (25 min, 2 h 5 min)."""
        values = {k: catalog.text(lang, f"office.doctor.{v}") if isinstance(v, Words) else v
                  for k, v in self.params.items()}
        if "minutes" in values:
            h, m = divmod(int(values["minutes"]), 60)
            values["age"] = catalog.text(lang, "office.doctor.hours", h=h, m=m) if h \
                else catalog.text(lang, "office.doctor.minutes", m=m)
        return values


def ok(check: str, found: str, /, **params: object) -> Finding:
    return Finding(check, "ok", found, "", params)


def warn(check: str, found: str, todo: str, /, **params: object) -> Finding:
    return Finding(check, "warn", found, todo, params)


def fail(check: str, found: str, todo: str, /, **params: object) -> Finding:
    return Finding(check, "fail", found, todo, params)


def examine(s: Settings, now: datetime) -> list[Finding]:
    """Every check, in the order an operator would go: files, database, keys, providers, the running service."""
    found = [_paths(s), *_database_and_keys(s, now), _key_file(s), _time_zone(s, now), _holidays(s, now)]
    if s.telegram_enabled:
        found += _telegram(s)
    if (s.sms_enabled and s.sms_provider == "twilio") or s.voice_enabled:
        found += _twilio(s)
    if s.sms_enabled and s.sms_provider == "tencent":
        found.append(_templates(s))
    found.append(_public_url(s))
    return found


def _paths(s: Settings) -> Finding:
    """Relative paths resolve against the working directory: under systemd that is `/`, not the install."""
    relative = []
    url = make_url(s.database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_absolute():
        relative.append(f"CHECKIN_DATABASE_URL={s.database_url}")
    if not s.data_keys and not Path(s.key_file).is_absolute():
        relative.append(f"CHECKIN_KEY_FILE={s.key_file}")
    if relative:
        return warn("paths", "paths_relative", "paths_fix", paths=", ".join(relative))
    return ok("paths", "paths_ok")


def _database_and_keys(s: Settings, now: datetime) -> list[Finding]:
    try:
        keyring = s.keyring()
    except KeyringError as exc:
        return [fail("keys", "keys_error", "keys_fix", error=exc)]
    engine = make_engine(s.database_url, keyring)
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision, head = current_revision(engine), head_revision()
    except Exception as exc:  # any driver's error: the operator needs its words
        engine.dispose()
        return [fail("database", "database_error", "database_fix", where=where,
                     error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")]
    out = []
    if revision is None:
        out.append(fail("database", "database_empty", "database_init", where=where))
    elif revision != head:
        out.append(fail("database", "database_behind", "database_migrate", where=where, revision=revision, head=head))
    else:
        out.append(ok("database", "database_ok", where=where, revision=revision))
    if revision == head:  # an older schema lacks what the checks of the stored data read
        out += _stored(engine, now)
    engine.dispose()
    return out


def _stored(engine, now: datetime) -> list[Finding]:
    """The keys open a stored value; the outbox is moving; the sweep is running."""
    out = []
    with session_scope(engine) as db:
        try:
            sample = (db.execute(select(Supervisee.name).limit(1)).scalar()
                      or db.execute(select(Officer.name).limit(1)).scalar())
            out.append(ok("keys", "keys_open" if sample else "keys_loaded"))
        except DecryptError as exc:
            out.append(fail("keys", "keys_cannot_open", "keys_other_file", error=exc))
        oldest = outbox.oldest_due(db, now)
        if oldest is None:
            out.append(ok("outbox", "outbox_empty"))
        else:
            age = now - oldest
            level = fail if age > OUTBOX_FAIL else warn if age > OUTBOX_WARN else None
            out.append(level("outbox", "outbox_waited", "outbox_fix", minutes=_minutes(age)) if level
                       else ok("outbox", "outbox_waited", minutes=_minutes(age)))
        beat = last_beat(db, "sweep")
    if beat is None:
        out.append(warn("sweep", "sweep_never", "sweep_start"))
    elif beat.at > now + timedelta(minutes=1):
        out.append(warn("sweep", "sweep_future", "sweep_clock", at=beat.at.isoformat()))
    elif now - beat.at > SWEEP_FAIL:
        out.append(fail("sweep", "sweep_stale", "sweep_run", minutes=_minutes(now - beat.at)))
    else:
        out.append(ok("sweep", "sweep_ok", minutes=_minutes(now - beat.at), seconds=f"{beat.seconds:.2f}"))
    return out


def readiness(engine, now: datetime) -> tuple[bool, dict]:
    """What `/healthz` answers: the database answers, the sweep ran lately, the outbox is not stuck."""
    try:
        with session_scope(engine) as db:
            beat = last_beat(db, "sweep")
            oldest = outbox.oldest_due(db, now)
    except Exception as exc:  # the database is down, or not ours
        return False, {"database": f"{type(exc).__name__}"}
    sweep_age = (now - beat.at).total_seconds() if beat else None
    outbox_age = (now - oldest).total_seconds() if oldest else 0.0
    ready = sweep_age is not None and sweep_age <= SWEEP_FAIL.total_seconds() \
        and outbox_age <= OUTBOX_FAIL.total_seconds()
    return ready, {"database": "ok", "sweep_age_seconds": sweep_age, "oldest_due_seconds": outbox_age}


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _key_file(s: Settings) -> Finding:
    if s.data_keys:
        return ok("key file", "key_file_env")
    path = Path(s.key_file)
    if not path.exists():
        return fail("key file", "key_file_missing", "key_file_restore", path=path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return fail("key file", "key_file_open", "key_file_chmod", path=path, mode=f"{mode:o}")
    if hasattr(os, "getuid") and path.stat().st_uid != os.getuid():
        return warn("key file", "key_file_owner", "key_file_chown", path=path)
    return ok("key file", "key_file_ok", path=path, mode=f"{mode:o}")


def _time_zone(s: Settings, now: datetime) -> Finding:
    local = now.astimezone(s.zone)
    return ok("time zone", "time_zone", zone=s.timezone, local=f"{local:%Y-%m-%d %H:%M}", offset=f"{local:%z}")


def _holidays(s: Settings, now: datetime) -> Finding:
    year = now.astimezone(s.zone).year
    missing = [y for y in (year, year + 1) if not holidays.country_holidays(s.holiday_country, years=y)]
    if missing:
        return warn("holidays", "holidays_missing", "holidays_upgrade", country=s.holiday_country,
                    years=", ".join(map(str, missing)))
    return ok("holidays", "holidays_ok", country=s.holiday_country, year=year, next=year + 1)


def _telegram(s: Settings) -> list[Finding]:
    import httpx  # after bot.channels: without httpx's command-line client (bot/channels/__init__.py)

    base = f"{s.telegram_base_url}{s.telegram_bot_token}"
    try:
        me = httpx.get(f"{base}/getMe", timeout=10).json()
        if not me.get("ok"):
            return [fail("telegram", "telegram_refused", "telegram_token", error=me.get("description"))]
        info = httpx.get(f"{base}/getWebhookInfo", timeout=10).json().get("result", {})
    except (httpx.HTTPError, ValueError) as exc:
        return [fail("telegram", "telegram_unreachable", "telegram_way_out", error=type(exc).__name__)]
    out = [ok("telegram", "telegram_ok", username=me["result"].get("username"))]
    want = f"{s.public_url.rstrip('/')}/telegram/webhook" if s.public_url else ""
    if info.get("url", "") != want:
        polling = Words("webhook_polling")
        out.append(fail("telegram webhook", "webhook_wrong", "webhook_restart", registered=info.get("url") or polling,
                        expected=want or polling))
    elif want:
        out.append(ok("telegram webhook", "webhook_ok", url=want))
    else:
        out.append(ok("telegram webhook", "webhook_polling"))
    pending = int(info.get("pending_update_count") or 0)
    if pending > PENDING_UPDATES_WARN:
        out.append(warn("telegram updates", "updates_waiting", "updates_fix", count=pending))
    return out


def _twilio(s: Settings) -> list[Finding]:
    from twilio.base.exceptions import TwilioRestException

    from bot.channels.sms import twilio_client

    client = twilio_client(s.twilio_account_sid or "", s.twilio_auth_token or "", s.twilio_api_base_url)
    try:
        account = client.api.v2010.accounts(s.twilio_account_sid).fetch()
        numbers = [s.twilio_voice_from or "", s.twilio_from_number or ""]
        owned = {n for n in numbers if n and client.incoming_phone_numbers.list(phone_number=n, limit=1)}
    except TwilioRestException as exc:
        return [fail("twilio", "twilio_refused", "twilio_credentials", status=exc.status, code=exc.code)]
    except OSError as exc:
        return [fail("twilio", "twilio_unreachable", "twilio_way_out", error=type(exc).__name__)]
    out = [ok("twilio", "twilio_account", status=account.status) if account.status == "active" else
           fail("twilio", "twilio_account", "twilio_reactivate", status=account.status)]
    for check, n, setting in (("twilio voice number", numbers[0], "TWILIO_VOICE_FROM"),
                              ("twilio number", numbers[1], "TWILIO_FROM_NUMBER")):
        if n:
            out.append(ok(check, "number_owned", number=f"{n[:4]}…{n[-2:]}") if n in owned else
                       fail(check, "number_not_owned", "number_set", number=f"{n[:4]}…{n[-2:]}", setting=setting))
    return out


def _templates(s: Settings) -> Finding:
    from content.samples import SAMPLE
    from content.sms_templates import check, load_templates

    found = check(load_templates(s.sms_templates_file), SAMPLE)
    if not found.ok:
        return fail("sms templates", "templates_wrong", "templates_check", drifted=len(found.drifted),
                    too_long=len(found.too_long))
    return ok("sms templates", "templates_ok")


def _public_url(s: Settings) -> Finding:
    if not s.public_url:
        return warn("public url", "public_url_unset", "public_url_set")
    import httpx

    url = f"{s.public_url.rstrip('/')}/livez"
    try:
        resp = httpx.get(url, timeout=10)
    except httpx.HTTPError as exc:
        return fail("public url", "public_url_unreachable", "public_url_proxy", url=url, error=type(exc).__name__)
    if resp.status_code != 200:
        return fail("public url", "public_url_status", "public_url_upstream", url=url, status=resp.status_code)
    return ok("public url", "public_url_ok", url=url)
