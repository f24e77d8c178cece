"""`checkin doctor`: what an operator checks on a server, one line each, with what to do about a problem.

Each check says `ok`, `warn` (works, but will bite) or `fail` (something does
not work); the command exits non-zero on any failure. The checks use only the
settings, the database and the providers' read-only calls (Telegram `getMe`
and `getWebhookInfo`, Twilio's account and number), never a send.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import holidays
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

import bot.channels  # noqa: F401  (first: httpx without its command-line client, bot/channels/__init__.py)
from bot.settings import Settings
from storage import outbox
from storage.crypto import DecryptError, KeyringError
from storage.db import current_revision, head_revision, make_engine, session_scope
from storage.models import Officer, Supervisee
from storage.service_models import last_beat

OUTBOX_WARN, OUTBOX_FAIL = timedelta(minutes=10), timedelta(hours=1)  # the oldest message due and not sent
SWEEP_FAIL = timedelta(minutes=10)  # the sweep runs every minute while the service runs
PENDING_UPDATES_WARN = 100


@dataclass(frozen=True)
class Finding:
    check: str
    level: str  # ok, warn, fail
    says: str
    fix: str = ""


def ok(check: str, says: str) -> Finding:
    return Finding(check, "ok", says)


def warn(check: str, says: str, fix: str) -> Finding:
    return Finding(check, "warn", says, fix)


def fail(check: str, says: str, fix: str) -> Finding:
    return Finding(check, "fail", says, fix)


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
        return warn("paths", "relative to the working directory: " + ", ".join(relative),
                    "give absolute paths (a service started by systemd runs in /): see deploy/checkin.env")
    return ok("paths", "absolute")


def _database_and_keys(s: Settings, now: datetime) -> list[Finding]:
    try:
        keyring = s.keyring()
    except KeyringError as exc:
        return [fail("keys", str(exc), "set CHECKIN_KEY_FILE to the key file kept with this database")]
    engine = make_engine(s.database_url, keyring)
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision, head = current_revision(engine), head_revision()
    except Exception as exc:  # any driver's error: the operator needs its words
        engine.dispose()
        return [fail("database", f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                     "check CHECKIN_DATABASE_URL and that the server is up")]
    out = []
    if revision is None:
        out.append(fail("database", f"{where} has no checkin tables", "run `checkin init`"))
    elif revision != head:
        out.append(fail("database", f"{where} is at revision {revision}, this version needs {head}",
                        "run `checkin init` (it migrates), then restart the service"))
    else:
        out.append(ok("database", f"{where} at revision {revision} (the latest)"))
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
            out.append(ok("keys", "open the stored data" if sample else "loaded (nothing stored yet to open)"))
        except DecryptError as exc:
            out.append(fail("keys", f"cannot open the stored data ({exc})",
                            "use the key file this database was made with (CHECKIN_KEY_FILE)"))
        oldest = outbox.oldest_due(db, now)
        if oldest is None:
            out.append(ok("outbox", "nothing waiting"))
        else:
            age = now - oldest
            words = f"the oldest message due has waited {_age(age)}"
            level = fail if age > OUTBOX_FAIL else warn if age > OUTBOX_WARN else None
            out.append(level("outbox", words, "is `checkin run` running, and are the channels set up? "
                             "see the log for send errors") if level else ok("outbox", words))
        beat = last_beat(db, "sweep")
    if beat is None:
        out.append(warn("sweep", "has never run on this database", "start the service (`checkin run`)"))
    elif beat.at > now + timedelta(minutes=1):
        out.append(warn("sweep", f"last ran at {beat.at.isoformat()}, after this machine's time",
                        "check the clock (timedatectl) and CHECKIN_CLOCK"))
    elif now - beat.at > SWEEP_FAIL:
        out.append(fail("sweep", f"last ran {_age(now - beat.at)} ago", "start `checkin run` (with the "
                        "scheduler: one process without --no-scheduler)"))
    else:
        out.append(ok("sweep", f"last ran {_age(now - beat.at)} ago, in {beat.seconds:.2f} s"))
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


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def _key_file(s: Settings) -> Finding:
    if s.data_keys:
        return ok("key file", "keys come from the environment (CHECKIN_DATA_KEYS)")
    path = Path(s.key_file)
    if not path.exists():
        return fail("key file", f"{path} does not exist", "restore it from its copy (never from the backup)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return fail("key file", f"{path} is readable by others (mode {mode:o})", f"chmod 600 {path}")
    if hasattr(os, "getuid") and path.stat().st_uid != os.getuid():
        return warn("key file", f"{path} belongs to another user", "chown it to the user the service runs as")
    return ok("key file", f"{path}, mode {mode:o}")


def _time_zone(s: Settings, now: datetime) -> Finding:
    local = now.astimezone(s.zone)
    return ok("time zone", f"{s.timezone}: {local:%Y-%m-%d %H:%M} (UTC{local:%z})")


def _holidays(s: Settings, now: datetime) -> Finding:
    year = now.astimezone(s.zone).year
    missing = [y for y in (year, year + 1) if not holidays.country_holidays(s.holiday_country, years=y)]
    if missing:
        return warn("holidays", f"the {s.holiday_country} calendar has no holidays for {missing}",
                    "upgrade the holidays package (pip install -U holidays): greetings and working days use it")
    return ok("holidays", f"{s.holiday_country} calendar covers {year} and {year + 1}")


def _telegram(s: Settings) -> list[Finding]:
    import httpx  # after bot.channels: without httpx's command-line client (bot/channels/__init__.py)

    base = f"{s.telegram_base_url}{s.telegram_bot_token}"
    try:
        me = httpx.get(f"{base}/getMe", timeout=10).json()
        if not me.get("ok"):
            return [fail("telegram", f"getMe refused: {me.get('description')}",
                         "check TELEGRAM_BOT_TOKEN (BotFather's /token)")]
        info = httpx.get(f"{base}/getWebhookInfo", timeout=10).json().get("result", {})
    except (httpx.HTTPError, ValueError) as exc:
        return [fail("telegram", f"Bot API not reachable ({type(exc).__name__})",
                     "check the server's way out to api.telegram.org (TELEGRAM_BASE_URL)")]
    out = [ok("telegram", f"@{me['result'].get('username')}")]
    want = f"{s.public_url.rstrip('/')}/telegram/webhook" if s.public_url else ""
    if info.get("url", "") != want:
        out.append(fail("telegram webhook", f"registered: {info.get('url') or 'none (polling)'}; expected: "
                        f"{want or 'none (polling)'}", "restart `checkin run`: it registers the webhook for "
                        "CHECKIN_PUBLIC_URL (or deletes it for polling)"))
    else:
        out.append(ok("telegram webhook", want or "none (polling)"))
    pending = int(info.get("pending_update_count") or 0)
    if pending > PENDING_UPDATES_WARN:
        out.append(warn("telegram updates", f"{pending} waiting at Telegram", "is the service receiving? see its log"))
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
        return [fail("twilio", f"refused (HTTP {exc.status}, code {exc.code})",
                     "check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")]
    except OSError as exc:
        return [fail("twilio", f"not reachable ({type(exc).__name__})", "check the server's way out to Twilio")]
    out = [ok("twilio", f"account {account.status}") if account.status == "active" else
           fail("twilio", f"account {account.status}", "reactivate it in the Twilio console")]
    for check, n, setting in (("twilio voice number", numbers[0], "TWILIO_VOICE_FROM"),
                              ("twilio number", numbers[1], "TWILIO_FROM_NUMBER")):
        if n:
            out.append(ok(check, f"{n[:4]}…{n[-2:]} is the account's") if n in owned else
                       fail(check, f"{n[:4]}…{n[-2:]} is not a number of this account",
                            f"set {setting} to a number the account owns"))
    return out


def _templates(s: Settings) -> Finding:
    from content.samples import SAMPLE
    from content.sms_templates import check, load_templates

    found = check(load_templates(s.sms_templates_file), SAMPLE)
    if not found.ok:
        return fail("sms templates", f"{len(found.drifted)} drifted, {len(found.too_long)} over a limit",
                    "run `checkin sms templates check`")
    return ok("sms templates", "match the messages")


def _public_url(s: Settings) -> Finding:
    if not s.public_url:
        return warn("public url", "not set: no webhooks, no calls, no console links",
                    "set CHECKIN_PUBLIC_URL to the HTTPS address in front of the service")
    import httpx

    url = f"{s.public_url.rstrip('/')}/livez"
    try:
        resp = httpx.get(url, timeout=10)
    except httpx.HTTPError as exc:
        return fail("public url", f"{url} not reachable from here ({type(exc).__name__})",
                    "is the service running, and the reverse proxy in front of it (deploy/Caddyfile)?")
    if resp.status_code != 200:
        return fail("public url", f"{url} answered {resp.status_code}", "check the reverse proxy's upstream")
    return ok("public url", f"{url} answers")
