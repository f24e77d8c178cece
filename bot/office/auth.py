"""Signing in to the console: passwords (argon2), administrators' TOTP, server-side sessions, CSRF, throttling."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

import phonenumbers
import pyotp
import segno
from sqlmodel import Session, func, select

from scheduler.metrics import LOGINS
from storage import queries
from storage.console_models import LoginAttempt, WebSession
from storage.crypto import keyring_for
from storage.models import Officer, Role

COOKIE = "checkin_office"
SESSION_IDLE = timedelta(hours=8)  # an evening's work on a phone without signing in again
SESSION_MAX = timedelta(days=7)
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_ACCOUNT = 5
MAX_FAILURES_ADDRESS = 20
ISSUER = "checkin"

def needs_totp(officer: Officer) -> bool:
    """Administrators sign in with a TOTP code as well."""
    return officer.role == Role.admin


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(officer: Officer, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=f"officer-{officer.id}", issuer_name=ISSUER)


def totp_ok(officer: Officer, code: str, now: datetime) -> bool:
    if not officer.totp_secret or not code.strip().isdigit():
        return False
    return pyotp.TOTP(officer.totp_secret).verify(code.strip(), for_time=now, valid_window=1)


def qr_png(uri: str, path: str) -> None:
    """The QR code an authenticator app scans, as a PNG."""
    segno.make(uri, error="m").save(path, kind="png", scale=6, border=2)


def find_officer(session: Session, login: str, region: str = "CN") -> Officer | None:
    """An officer by their mobile number (as they would type it) or by their id."""
    login = login.strip()
    if login.isdigit() and len(login) <= 6:
        return session.get(Officer, int(login))
    try:
        number = phonenumbers.parse(login, region)
    except phonenumbers.NumberParseException:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return queries.officer_by_phone(session, e164)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def address_key(session: Session, address: str) -> str:
    """The throttling key of a client address: a keyed hash, so that no address is stored."""
    return "addr:" + keyring_for(session).blind(address)[:40]


def throttled(session: Session, officer_id: int | None, address: str, now: datetime) -> bool:
    """Too many failures lately for this account or from this address."""
    since = now - THROTTLE_WINDOW

    def failures(key: str) -> int:
        return session.exec(select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.key == key, LoginAttempt.at >= since, LoginAttempt.ok.is_(False))).one()

    if officer_id is not None and failures(f"officer:{officer_id}") >= MAX_FAILURES_ACCOUNT:
        return True
    return failures(address_key(session, address)) >= MAX_FAILURES_ADDRESS


def record_attempt(session: Session, officer_id: int | None, address: str, ok: bool, now: datetime) -> None:
    keys = [address_key(session, address)] + ([f"officer:{officer_id}"] if officer_id is not None else [])
    for key in keys:
        session.add(LoginAttempt(key=key, at=now, ok=ok))
    LOGINS.labels("ok" if ok else "refused").inc()


def start_session(session: Session, officer: Officer, now: datetime) -> str:
    """A new session; returns the cookie's token (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=_digest(token), officer_id=officer.id, csrf=secrets.token_urlsafe(24),
                           created_at=now, last_seen_at=now, expires_at=now + SESSION_IDLE))
    return token


def current(session: Session, token: str | None, now: datetime) -> tuple[WebSession, Officer] | None:
    """The live session behind a cookie, slid forward; None when unknown, revoked, expired, or the officer is no
    longer active (deactivation ends every session at once)."""
    if not token:
        return None
    row = session.exec(select(WebSession).where(WebSession.token_hash == _digest(token))).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now or row.created_at + SESSION_MAX <= now:
        return None
    officer = session.get(Officer, row.officer_id)
    if officer is None or not officer.active:
        return None
    row.last_seen_at, row.expires_at = now, min(now + SESSION_IDLE, row.created_at + SESSION_MAX)
    session.add(row)
    return row, officer


def end_session(session: Session, token: str | None, now: datetime) -> None:
    if token:
        row = session.exec(select(WebSession).where(WebSession.token_hash == _digest(token))).first()
        if row is not None and row.revoked_at is None:
            row.revoked_at = now
            session.add(row)


def csrf_ok(row: WebSession, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(row.csrf, submitted)
