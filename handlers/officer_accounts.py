"""Officer accounts over their life: edit, deactivate with the caseload handed over (never orphaned), and the
web console's password."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import update
from sqlmodel import Session, col, func, select

from content.catalog import text
from content.refusals import PhoneError, Refused
from handlers.contract import Context, Inbound, Reply
from storage import audit, queries
from storage.console_models import LoginLink, WebSession
from storage.models import (
    Escalation,
    EscalationState,
    Leave,
    LeaveState,
    Officer,
    Role,
    Status,
    Supervisee,
)

log = logging.getLogger(__name__)

EDITABLE = ("name", "township", "role", "supervisor_id", "telegram_id", "phone", "language")


class AccountError(Refused):
    """A change that cannot be made; `render` names the field and value in the reader's language (`field` and
    `value` in its params: the command line says the field as its option)."""

    section = "account"


@dataclass
class Handover:
    """What a deactivation moved to the successor."""

    people: int = 0
    alerts: int = 0
    leave: int = 0
    officers: int = 0  # assistants whose supervisor it was


def checked_changes(session: Session, officer: Officer, raw: dict, region: str = "CN") -> dict:
    """The changes to make, from values as typed (None: leave as it is); an AccountError names the field and
    value. The CLI's `officer edit` and the console's officer page both use it."""
    from content.catalog import LANGUAGES
    from handlers.roster import normalise_phone

    changes: dict = {}
    for field in ("name", "township"):
        if raw.get(field) is not None:
            if not str(raw[field]).strip():
                raise AccountError("empty", field=field)
            changes[field] = str(raw[field]).strip()
    if raw.get("role") is not None:
        if raw["role"] not in Role.__members__:
            raise AccountError("one_of", field="role", value=repr(raw["role"]), values=", ".join(Role))
        changes["role"] = raw["role"]
    if raw.get("language") is not None:
        if raw["language"] not in LANGUAGES:
            raise AccountError("one_of", field="language", value=repr(raw["language"]), values=", ".join(LANGUAGES))
        changes["language"] = raw["language"]
    if raw.get("phone") is not None:
        try:
            changes["phone"] = normalise_phone(str(raw["phone"]), region)
        except PhoneError as exc:
            raise AccountError("phone", field="phone", value=repr(raw["phone"]),
                               cause=exc) from None
        other = queries.officer_by_phone(session, changes["phone"])
        if other is not None and other.id != officer.id:
            raise AccountError("phone_taken", field="phone", value=repr(raw["phone"]), officer=other.id)
    if raw.get("supervisor_id") is not None:
        boss = session.get(Officer, int(raw["supervisor_id"]))
        if boss is None or boss.role not in (Role.supervisor, Role.admin) or not boss.active:
            raise AccountError("no_supervisor", field="supervisor", value=raw["supervisor_id"])
        changes["supervisor_id"] = boss.id
    if raw.get("telegram_id") is not None:
        other = queries.officer_by_telegram(session, int(raw["telegram_id"]))
        if other is not None and other.id != officer.id:
            raise AccountError("telegram_taken", field="telegram_id", value=raw["telegram_id"], officer=other.id)
        changes["telegram_id"] = int(raw["telegram_id"])
    return changes


def edit(session: Session, officer: Officer, changes: dict, now: datetime, *, actor: str) -> list[str]:
    """Change the given fields (as `checked_changes` gives them); the names of the fields that changed."""
    changed = [f for f in EDITABLE if f in changes and getattr(officer, f) != changes[f]]
    if "supervisor_id" in changed and changes["supervisor_id"] == officer.id:
        raise AccountError("own_supervisor", field="supervisor", value=officer.id)
    for f in changed:
        setattr(officer, f, changes[f])
    session.add(officer)
    if changed:
        audit.append(session, actor=actor, action="officer.edit", now=now, subject=f"officer:{officer.id}",
                     details={"fields": changed})  # which fields, not their values (names and numbers are personal)
        log.info("officer %s edited: %s", officer.id, ", ".join(changed))
    return changed


def add(session: Session, *, name: str, township: str, role: str, now: datetime, actor: str, region: str = "CN",
        supervisor_id: int | None = None, telegram_id: int | None = None, phone: str | None = None,
        language: str = "zh-CN") -> Officer:
    """A new officer, checked as the CLI and the console both need: an AccountError names the field and value."""
    from content.catalog import LANGUAGES
    from handlers.roster import normalise_phone

    name, township = name.strip(), township.strip()
    if not name or not township:
        raise AccountError("name_township")
    if role not in Role.__members__:
        raise AccountError("one_of", field="role", value=repr(role), values=", ".join(Role))
    if language not in LANGUAGES:
        raise AccountError("one_of", field="language", value=repr(language), values=", ".join(LANGUAGES))
    if phone:
        try:
            phone = normalise_phone(phone, region)
        except PhoneError as exc:
            raise AccountError("phone", field="phone", value=repr(phone),
                               cause=exc) from None
        if queries.officer_by_phone(session, phone):
            raise AccountError("phone_taken_other", field="phone", value=phone)
    if supervisor_id is not None:
        boss = session.get(Officer, supervisor_id)
        if boss is None or boss.role not in (Role.supervisor, Role.admin):
            raise AccountError("no_supervisor", field="supervisor", value=supervisor_id)
    if telegram_id is not None and queries.officer_by_telegram(session, telegram_id):
        raise AccountError("telegram_taken_other", field="telegram_id", value=telegram_id)
    officer = queries.add_officer(session, name=name, township=township, role=role, now=now,
                                  supervisor_id=supervisor_id, telegram_id=telegram_id, phone=phone or None,
                                  language=language)
    audit.append(session, actor=actor, action="officer.add", now=now, subject=f"officer:{officer.id}",
                 details={"role": role, "township": township})
    return officer


def deactivate(session: Session, officer: Officer, successor: Officer | None, now: datetime, *,
               actor: str) -> Handover:
    """End an officer's access. Their people, open alerts, leave and subordinates go to `successor`;
    refused while anything would be left without an officer."""
    if not officer.active:
        raise AccountError("already_deactivated", officer=officer.id)
    people = session.exec(select(func.count()).select_from(Supervisee).where(
        Supervisee.officer_id == officer.id, Supervisee.status != Status.ended)).one()
    if successor is None:
        if people:
            raise AccountError("still_supervises", officer=officer.id, people=people)
    elif successor.id == officer.id or not successor.active or successor.role == Role.admin:
        raise AccountError("bad_successor", field="reassign_to", value=successor.id)
    moved = Handover()
    if successor is not None:
        moved.people = session.execute(update(Supervisee).where(Supervisee.officer_id == officer.id)
                                       .values(officer_id=successor.id, updated_at=now)).rowcount or 0
        moved.alerts = session.execute(
            update(Escalation).where(Escalation.officer_id == officer.id,
                                     Escalation.state != EscalationState.resolved)
            .values(officer_id=successor.id)).rowcount or 0
        moved.leave = session.execute(
            update(Leave).where(Leave.officer_id == officer.id,
                                col(Leave.state).in_([LeaveState.requested, LeaveState.approved]))
            .values(officer_id=successor.id)).rowcount or 0
        moved.officers = session.execute(update(Officer).where(Officer.supervisor_id == officer.id,
                                                               Officer.id != successor.id)
                                         .values(supervisor_id=successor.id)).rowcount or 0
    officer.active = False
    session.execute(update(WebSession).where(WebSession.officer_id == officer.id, WebSession.revoked_at.is_(None))
                    .values(revoked_at=now))  # signed out of the web console at once
    session.add(officer)
    audit.append(session, actor=actor, action="officer.deactivate", now=now, subject=f"officer:{officer.id}",
                 details={"successor": successor.id if successor else None, "people": moved.people,
                          "alerts": moved.alerts, "leave": moved.leave, "officers": moved.officers})
    log.info("officer %s deactivated; %s people, %s alerts, %s leave to officer %s", officer.id, moved.people,
             moved.alerts, moved.leave, successor.id if successor else None)
    return moved


# ---- the web console's passwords -----------------------------------------------------

MIN_PASSWORD = 10
_hasher = PasswordHasher()


class PasswordError(Refused):
    section = "password"


def set_password(session: Session, officer: Officer, password: str, now: datetime, *, actor: str,
                 totp_secret: str | None = None) -> None:
    """Set (or reset) an officer's console password, an argon2 hash; every session of theirs ends."""
    if len(password) < MIN_PASSWORD:
        raise PasswordError("too_short", min=MIN_PASSWORD)
    officer.password_hash, officer.password_set_at = _hasher.hash(password), now
    if totp_secret is not None:
        officer.totp_secret = totp_secret
    session.add(officer)
    session.execute(update(WebSession).where(WebSession.officer_id == officer.id, WebSession.revoked_at.is_(None))
                    .values(revoked_at=now))
    audit.append(session, actor=actor, action="officer.password", now=now, subject=f"officer:{officer.id}",
                 details={"totp": totp_secret is not None} if totp_secret is not None else None)


def password_ok(officer: Officer, password: str) -> bool:
    if not officer.password_hash:
        _hasher.hash("x" * MIN_PASSWORD)  # the same time whether or not the account has a password
        return False
    try:
        return _hasher.verify(officer.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# ---- a one-time sign-in link from the chat ------------------------------------------

LINK_MINUTES = 10


def link_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def web_link(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/web: a link that signs the officer in to the web console once, within 10 minutes (administrators still
    give their TOTP code). Only in a private chat the officer has bound: the link is theirs alone."""
    lang, officer = ctx.language, ctx.sender.officer
    if ctx.console_url is None:
        return [Reply(text(lang, "web.no_url"))]
    if inbound.channel != "telegram":  # an SMS link could sit on a shared phone's lock screen
        return [Reply(text(lang, "web.telegram_only"))]
    token = secrets.token_urlsafe(24)
    ctx.session.add(LoginLink(token_hash=link_digest(token), officer_id=officer.id, created_at=ctx.now,
                              expires_at=ctx.now + timedelta(minutes=LINK_MINUTES)))
    audit.append(ctx.session, actor=f"officer:{officer.id}", action="web.link", now=ctx.now,
                 subject=f"officer:{officer.id}")
    return [Reply(text(lang, "web.link", url=f"{ctx.console_url}/link/{token}", minutes=LINK_MINUTES))]


def use_link(session: Session, token: str, now: datetime, *, consume: bool = True) -> Officer | None:
    """The officer a link signs in, once: None when unknown, used, expired, or the officer no longer active.
    `consume=False` only looks (an administrator's link waits for the TOTP code before it is used)."""
    link = session.exec(select(LoginLink).where(LoginLink.token_hash == link_digest(token))).first()
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    if consume:
        link.used_at = now
        session.add(link)
    officer = session.get(Officer, link.officer_id)
    return officer if officer is not None and officer.active else None
