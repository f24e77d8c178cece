"""The web console's tables: signed-in sessions, sign-in attempts (for throttling), one-time sign-in links."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from storage.columns import _ts


class WebSession(SQLModel, table=True):
    """A signed-in officer in the web console: the cookie carries a random token, the row its hash."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    officer_id: int = Field(foreign_key="officer.id", index=True)
    csrf: str = Field(max_length=64)  # every form carries it
    created_at: datetime | None = _ts(nullable=False)
    last_seen_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False)
    revoked_at: datetime | None = _ts()


class LoginAttempt(SQLModel, table=True):
    """A try at signing in, kept for throttling: per account and per address (an HMAC of it, never the address)."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=80)  # officer:ID or addr:HMAC
    at: datetime | None = _ts(nullable=False)
    ok: bool = False


class LoginLink(SQLModel, table=True):
    """A one-time sign-in link an officer asked the bot for (`/web`): single use, minutes long."""

    __tablename__ = "login_link"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    officer_id: int = Field(foreign_key="officer.id")
    created_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False)
    used_at: datetime | None = _ts()
