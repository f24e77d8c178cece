"""Transport-neutral message types shared by the handlers and the channel adapters."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlmodel import Session

from content.areas import Areas
from content.catalog import Said
from content.policy import Policy
from storage.models import Conversation, ConversationState, Officer, Supervisee


def zone_of(person: Supervisee, default: tzinfo) -> tzinfo:
    """A person's own time zone when set, else `default` (the county's)."""
    return ZoneInfo(person.timezone) if person.timezone else default

MAX_ROW_ID = 2**31 - 1  # a primary key fits a 32-bit integer (PostgreSQL `integer`)


def row_id(value: str | None) -> int | None:
    """An id typed or carried in button data, or None: ASCII digits only, within a database integer."""
    if not value or not value.isascii() or not value.isdigit() or len(value) > 10:
        return None
    number = int(value)
    return number if 0 < number <= MAX_ROW_ID else None


@dataclass(frozen=True)
class Target:
    """What an officer's or a person's action names: `PREFIX:ID:REST...` on a button, or `[#]ID REST` typed."""

    ref: str  # the id as given ("" when there was none)
    rest: tuple[str, ...]  # a button's further fields; typed: the text after the id, as one field

    @property
    def id(self) -> int | None:
        return row_id(self.ref)

    def arg(self, i: int, default: str = "") -> str:
        """Field `i` after the id, or `default`."""
        return self.rest[i] if i < len(self.rest) else default


_TYPED_TARGET = re.compile(r"^#?(\d+)\s*(.*)$", re.S)


def target(button: str | None, args: str) -> Target | None:
    """The id and what follows it, from button data or from the typed text after the keyword; None: no id typed."""
    if button:
        parts = button.split(":")
        return Target(parts[1] if len(parts) > 1 else "", tuple(parts[2:]))
    m = _TYPED_TARGET.match(args)
    return Target(m.group(1), (m.group(2).strip(),)) if m else None


def clean(text: str) -> str:
    """Text as it may be stored: NUL (which PostgreSQL text refuses) becomes U+FFFD."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


# Stored inbound text is capped; the rest is cut with a note, never dropped silently.
MAX_STORED_TEXT = 4000


@dataclass(frozen=True)
class Location:
    """A shared point; accuracy in metres when the device gave one."""

    latitude: float
    longitude: float
    accuracy: float | None = None


@dataclass(frozen=True)
class Recording:
    """Something spoken and recorded by the provider (a spoken report in a call): where it is, how long, its id."""

    url: str
    seconds: int
    sid: str


@dataclass(frozen=True)
class Inbound:
    """One message as it arrived from any channel."""

    channel: str
    address: str
    text: str = ""
    received_at: datetime | None = None
    location: Location | None = None
    button: str | None = None
    provider_id: str | None = None
    recording: Recording | None = None
    # Telegram: the bot message whose button was pressed, or which this message replies to.
    origin_message_id: int | None = None
    origin_text: str | None = None
    reply_to_message_id: int | None = None

    def words(self) -> list[str]:
        """The text split on whitespace."""
        return self.text.split()


@dataclass(frozen=True)
class Button:
    """A choice offered with a reply: a Telegram inline button, a digit by SMS."""

    label: str
    data: str


class SenderKind(StrEnum):
    officer = "officer"
    supervisee = "supervisee"
    unknown = "unknown"


@dataclass(frozen=True)
class Recipient:
    """Someone other than the sender to whom a reply goes."""

    kind: SenderKind
    id: int


@dataclass
class Reply:
    """Something to send; to the sender on the inbound channel unless `to` says otherwise."""

    text: str
    buttons: list[Button] = field(default_factory=list)
    request_location: bool = False
    to: Recipient | None = None
    kind: str = "reply"
    edit_origin: bool = False  # Telegram: edit the message whose button was pressed, instead of sending
    sms_hint: str | None = None  # SMS: the line that says what to reply, standing in for the buttons
    keyboard: dict | None = None  # Telegram reply keyboard with the location key: its label, more text keys
    remove_keyboard: bool = False  # Telegram: take the reply keyboard away
    about: int | None = None  # to an officer: the person it is about (a reply to it goes to them)

    def payload(self) -> dict:
        """The channel-neutral extras stored with the outbox row."""
        out: dict = {}
        if self.buttons:
            out["buttons"] = [[b.label, b.data] for b in self.buttons]
        if self.request_location:
            out["request_location"] = True
            out.update(self.keyboard or {})
        if self.remove_keyboard and not self.buttons:
            out["remove_keyboard"] = True
        if self.sms_hint:
            out["sms_hint"] = self.sms_hint
        if isinstance(self.text, Said) and (not self.sms_hint or isinstance(self.sms_hint, Said)):
            # for an SMS provider that sends approved templates only: the text's key and values (and its hint's)
            out["said"] = self.text.remembered(self.sms_hint or None)
        if self.about is not None:
            out["about"] = self.about
        return out


@dataclass
class Sender:
    """Who sent a message, as the router resolved it."""

    kind: SenderKind
    officer: Officer | None = None
    supervisee: Supervisee | None = None
    language: str = "zh-CN"

    @property
    def label(self) -> str:
        """An id for logs: never a name or phone number."""
        if self.officer is not None:
            return f"officer:{self.officer.id}"
        if self.supervisee is not None:
            return f"supervisee:{self.supervisee.id}"
        return "unknown"


@dataclass(kw_only=True)
class Context:
    """What a handler may use: the session (its effects commit with the replies), the time, the sender.

    Built by keyword by the caller, which also supplies the county's policy,
    areas and time zone: nothing here falls back on a file or a default zone.
    """

    session: Session
    now: datetime
    sender: Sender
    policy: Policy
    zone: tzinfo  # the county's
    areas: Areas  # the county, townships and known destinations
    default_language: str = "zh-CN"
    args: str = ""  # the text after the keyword that picked the handler
    keyword: str = ""  # the keyword (or button prefix) that picked the handler
    # The chat's conversation and the stored inbound message; None for an action taken in the web console.
    conversation: Conversation | None = None
    message_id: int | None = None
    console_url: str | None = None  # the web console's address from outside (CHECKIN_PUBLIC_URL + /console)

    @property
    def person_zone(self) -> tzinfo:
        """The sending supervisee's time zone, else the county's."""
        return zone_of(self.sender.supervisee, self.zone) if self.sender.supervisee else self.zone

    @property
    def language(self) -> str:
        return self.sender.language

    def state_data(self) -> dict:
        """The conversation's stored data."""
        return json.loads(self.conversation.data or "{}") if self.conversation else {}

    def set_state(self, state: ConversationState, data: dict | None = None) -> None:
        """Move the conversation to `state`, keeping `data` with it."""
        if self.conversation is None:
            raise RuntimeError("no conversation to keep a state in (an action outside a chat)")
        self.conversation.state = state
        self.conversation.data = json.dumps(data or {}, ensure_ascii=False)
        self.conversation.updated_at = self.now
        self.session.add(self.conversation)


Handler = Callable[[Inbound, Context], Awaitable[list[Reply]]]
