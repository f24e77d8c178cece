"""Enrolment: issuing single-use codes and binding a Telegram chat with /start CODE."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlmodel import Session, select

from content.catalog import text
from handlers.contract import Context, Inbound, Recipient, Reply, SenderKind
from storage import queries
from storage.models import ChannelName, EnrolmentCode, Officer, Supervisee

log = logging.getLogger(__name__)

# Wrong codes from one chat: this many within the window, then refusals until it passes.
THROTTLE_WINDOW = timedelta(hours=1)  # the policy's wrong_codes_per_hour counts over this window
# No 0/O, 1/I/L: codes are read aloud and typed on keypads.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def new_code() -> str:
    """A random code like K7Q2-9MZD."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def normalise_code(raw: str) -> str:
    """Accept codes typed in lower case, with or without the dash or spaces."""
    clean = "".join(ch for ch in raw.upper() if ch.isalnum())
    return f"{clean[:4]}-{clean[4:]}" if len(clean) == 8 else clean


def issue_code(session: Session, who: Supervisee | Officer, now: datetime, days: int) -> EnrolmentCode:
    """A fresh code for a supervisee or an officer; their earlier unused codes are revoked."""
    column = EnrolmentCode.officer_id if isinstance(who, Officer) else EnrolmentCode.supervisee_id
    for old in session.exec(
        select(EnrolmentCode).where(
            column == who.id,
            EnrolmentCode.used_at.is_(None),  # type: ignore[union-attr]
            EnrolmentCode.revoked_at.is_(None),  # type: ignore[union-attr]
        )
    ):
        old.revoked_at = now
        session.add(old)
    code = EnrolmentCode(code=new_code(), created_at=now, expires_at=now + timedelta(days=days))
    if isinstance(who, Officer):
        code.officer_id = who.id
    else:
        code.supervisee_id = who.id
    session.add(code)
    session.flush()
    return code


def _throttled(ctx: Context) -> bool:
    """True when this chat has sent too many wrong codes lately; counts this attempt."""
    data = ctx.state_data()
    since = data.get("bad_codes_since")
    fresh = since is not None and ctx.now - datetime.fromisoformat(since) < THROTTLE_WINDOW
    count = data.get("bad_codes", 0) if fresh else 0
    return count >= ctx.policy.limits.wrong_codes_per_hour


def _count_bad_code(ctx: Context) -> None:
    data = ctx.state_data()
    since = data.get("bad_codes_since")
    if since is None or ctx.now - datetime.fromisoformat(since) >= THROTTLE_WINDOW:
        data = {"bad_codes": 0, "bad_codes_since": ctx.now.isoformat()}
    data["bad_codes"] = data.get("bad_codes", 0) + 1
    ctx.set_state(ctx.conversation.state, data)


async def start(inbound: Inbound, ctx: Context) -> list[Reply]:
    """/start CODE: bind this Telegram chat to the person the code was issued for."""
    words = inbound.words()
    if ctx.sender.kind is SenderKind.supervisee:
        return [Reply(text(ctx.language, "enrol.already"))]
    if ctx.sender.kind is SenderKind.officer:
        return [Reply(text(ctx.language, "help.officer"))]
    if len(words) < 2:
        return [Reply(text(ctx.default_language, "unknown.intro"))]
    if _throttled(ctx):
        log.info("enrolment throttled for %s:%s", inbound.channel, "chat")
        return [Reply(text(ctx.default_language, "enrol.throttled"))]
    code = queries.enrolment_code(ctx.session, normalise_code("".join(words[1:])))
    if code is None or code.revoked_at is not None:
        _count_bad_code(ctx)
        return [Reply(text(ctx.default_language, "enrol.code_unknown"))]
    owner = (
        ctx.session.get(Officer, code.officer_id)
        if code.officer_id
        else ctx.session.get(Supervisee, code.supervisee_id)
    )
    lang = owner.language
    if code.used_at is not None:
        _count_bad_code(ctx)
        return [Reply(text(lang, "enrol.code_used"))]
    if code.expires_at <= ctx.now:
        _count_bad_code(ctx)
        return [Reply(text(lang, "enrol.code_expired"))]
    if inbound.channel != ChannelName.telegram:
        return [Reply(text(lang, "enrol.already"))]
    code.used_at = ctx.now
    ctx.session.add(code)
    if isinstance(owner, Officer):
        if queries.officer_by_telegram(ctx.session, int(inbound.address)) not in (None, owner):
            return [Reply(text(lang, "enrol.code_used"))]
        owner.telegram_id = int(inbound.address)
        ctx.session.add(owner)
        log.info("officer %s bound telegram (code %s)", owner.id, code.id)
        return [Reply(text(lang, "help.officer"))]
    person = owner
    person.telegram_chat_id = int(inbound.address)
    person.telegram_blocked_at = None
    person.preferred_channel = ChannelName.telegram
    person.updated_at = ctx.now
    ctx.session.add(person)
    ctx.sender.supervisee, ctx.sender.kind, ctx.sender.language = person, SenderKind.supervisee, lang
    officer = ctx.session.get(Officer, person.officer_id)
    log.info("supervisee %s enrolled on telegram (code %s)", person.id, code.id)
    return [
        Reply(text(lang, "enrol.welcome", name=person.name, officer=officer.name), kind="enrol"),
        Reply(
            text(officer.language, "enrol.officer_notice", name=person.name, case_number=person.case_number),
            to=Recipient(SenderKind.officer, officer.id),
            kind="notice",
        ),
    ]


async def unknown(inbound: Inbound, ctx: Context) -> list[Reply]:
    """Someone the service does not know: how to enrol on Telegram; a neutral line by SMS. Never anyone's data."""
    key = "unknown.neutral" if inbound.channel == "sms" else "unknown.intro"
    return [Reply(text(ctx.default_language, key))]
