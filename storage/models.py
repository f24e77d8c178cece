"""SQLModel tables: the database is the source of truth."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Text,
    UniqueConstraint,
    event,
)
from sqlmodel import Field, SQLModel

from storage.columns import UTCDateTime, _blind, _kind, _secret, _ts, one_of, partial_index, written_in  # noqa: F401
from storage.crypto import keyring_for
from storage.kinds import (  # noqa: F401  (re-exported: the tables and their kinds, from one place)
    OPEN_OBLIGATION,
    SUPERVISED,
    Category,
    ChannelName,
    ConversationState,
    Direction,
    EndReason,
    EscalationKind,
    EscalationState,
    LeaveState,
    Level,
    MessageStatus,
    ObligationKind,
    ObligationState,
    Resolution,
    Role,
    Status,
)


class Officer(SQLModel, table=True):
    """An assistant officer, a township supervisor or an administrator."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = _secret("officer.name")
    township: str = Field(max_length=100, index=True)
    role: str = Field(default=Role.assistant, max_length=16)
    supervisor_id: int | None = Field(default=None, foreign_key="officer.id")
    telegram_id: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True))
    phone: str | None = _secret("officer.phone", nullable=True)
    phone_index: str | None = _blind()
    language: str = Field(default="zh-CN", max_length=8)
    active: bool = True
    created_at: datetime | None = _ts(nullable=False)
    # The web console: an argon2 hash (never the password), and administrators' TOTP secret (encrypted).
    password_hash: str | None = Field(default=None, max_length=200)
    password_set_at: datetime | None = _ts()
    totp_secret: str | None = _secret("officer.totp_secret", nullable=True)


class Supervisee(SQLModel, table=True):
    """A person under supervision."""

    __table_args__ = (Index("ix_supervisee_status_end", "status", "supervision_end"),
                      partial_index("ix_supervisee_unplanned", "id", where="planned_until IS NULL"),
                      partial_index("ix_supervisee_lost_contact", "id", where="status = 'lost_contact'"))

    id: int | None = Field(default=None, primary_key=True)
    case_number: str = Field(max_length=40, unique=True)
    name: str = _secret("supervisee.name")
    phone: str | None = _secret("supervisee.phone", nullable=True)
    phone_index: str | None = _blind()
    language: str = Field(default="zh-CN", max_length=8)
    category: str = Field(max_length=20)
    level: str = Field(max_length=12, index=True)
    township: str = Field(max_length=100, index=True)
    officer_id: int = Field(foreign_key="officer.id", index=True)
    supervision_start: date
    supervision_end: date
    status: str = Field(default=Status.active, max_length=16, index=True)
    telegram_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True))
    telegram_blocked_at: datetime | None = _ts()  # the person blocked the bot: reach them by SMS
    sms_blocked_at: datetime | None = _ts()  # opted out (STOP) or undeliverable: SMS no longer reaches them
    sms_blocked_reason: str | None = Field(default=None, max_length=32)
    preferred_channel: str = Field(default=ChannelName.sms, max_length=12)
    timezone: str | None = Field(default=None, max_length=64)
    last_contact_at: datetime | None = _ts()
    last_contact_kind: str | None = Field(default=None, max_length=20)
    # Obligations exist up to here; the sweep plans the people whose mark falls behind.
    planned_until: datetime | None = _ts(index=True)
    created_at: datetime | None = _ts(nullable=False)
    updated_at: datetime | None = _ts(nullable=False)
    purged_at: datetime | None = _ts()  # personal data removed after the retention period (`checkin purge`)
    # A pause (hospital, detention, court): nothing planned or missed from `paused_from` to `paused_until`.
    paused_from: date | None = None
    paused_until: date | None = None
    pause_reason: str | None = _secret("supervisee.pause_reason", nullable=True)
    ended_reason: str | None = Field(default=None, max_length=16)  # EndReason, when status is ended
    lost_contact_since: datetime | None = _ts()  # when the sweep found the person out of contact


class EnrolmentCode(SQLModel, table=True):
    """A single-use code that binds a Telegram chat to a supervisee or an officer."""

    __tablename__ = "enrolment_code"

    id: int | None = Field(default=None, primary_key=True)
    # For a supervisee, or (officer_id) for an officer binding their own chat.
    supervisee_id: int | None = Field(default=None, foreign_key="supervisee.id", index=True)
    officer_id: int | None = Field(default=None, foreign_key="officer.id")
    code: str = Field(max_length=16, unique=True)
    created_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False)
    used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()


class Conversation(SQLModel, table=True):
    """Where a conversation with one (channel, address) stands."""

    __table_args__ = (UniqueConstraint("channel", "address", name="uq_conversation_address"),
                      one_of("state", ConversationState, "ck_conversation_state"))

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=12)
    address: str = Field(max_length=64)  # the blind index of the address, never the address itself
    state: ConversationState = _kind(ConversationState, 40, ConversationState.idle)
    data: str = _secret("conversation.data")  # drafts of reports and leave requests
    updated_at: datetime | None = _ts(nullable=False)


class Obligation(SQLModel, table=True):
    """Something a supervisee owes in one period: a check-in, a report, study, service."""

    __table_args__ = (
        UniqueConstraint("supervisee_id", "kind", "period_key", name="uq_obligation_period"),
        Index("ix_obligation_state_due", "state", "due_at"),
        Index("ix_obligation_state_next", "state", "next_check_at"),
        partial_index("ix_obligation_open_next", "next_check_at", "id",
                      where=f"state IN ({', '.join(repr(str(v)) for v in OPEN_OBLIGATION)})"),
        one_of("kind", ObligationKind, "ck_obligation_kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    supervisee_id: int = Field(foreign_key="supervisee.id", index=True)
    kind: ObligationKind = _kind(ObligationKind, 20)
    period_key: str = Field(max_length=32)
    due_at: datetime | None = _ts(nullable=False)
    window_end_at: datetime | None = _ts(nullable=False)
    remind_at: datetime | None = _ts()
    state: str = Field(default=ObligationState.planned, max_length=12)
    # When the sweep must next look at this row: due_at, then remind_at, then window_end_at.
    next_check_at: datetime | None = _ts()
    prompted_at: datetime | None = _ts()
    reminded_at: datetime | None = _ts()
    answered_at: datetime | None = _ts()
    created_at: datetime | None = _ts(nullable=False)
    location_required: bool = False  # the prompt asked for a location share (Telegram, a level the policy names)
    partial_at: datetime | None = _ts()  # answered without the required location


class Escalation(SQLModel, table=True):
    """Something that needs a human: to the assistant officer, then the township supervisor."""

    __table_args__ = (
        UniqueConstraint("obligation_id", "kind", name="uq_escalation_obligation"),
        Index("ix_escalation_state_due", "state", "next_step_at"),
        one_of("kind", EscalationKind, "ck_escalation_kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    supervisee_id: int = Field(foreign_key="supervisee.id", index=True)
    obligation_id: int | None = Field(default=None, foreign_key="obligation.id")
    kind: EscalationKind = _kind(EscalationKind, 32)
    officer_id: int = Field(foreign_key="officer.id", index=True)
    supervisor_id: int | None = Field(default=None, foreign_key="officer.id")
    state: str = Field(default=EscalationState.open, max_length=16)
    opened_at: datetime | None = _ts(nullable=False)
    # Where on its kind's ladder it stands (0: the assigned officer), and when the sweep next looks at it:
    # the current rung's limit, or (acknowledged) when an outcome is due; None: nothing more to do.
    rung: int = 0
    next_step_at: datetime | None = _ts()
    supervisor_notified_at: datetime | None = _ts()
    admins_notified_at: datetime | None = _ts()
    reminded_at: datetime | None = _ts()  # acknowledged, no outcome yet: the reminder went
    acknowledged_at: datetime | None = _ts()
    acknowledged_by: int | None = Field(default=None, foreign_key="officer.id")
    resolution: str | None = Field(default=None, max_length=20)
    resolved_at: datetime | None = _ts()
    resolved_by: int | None = Field(default=None, foreign_key="officer.id")
    note: str | None = _secret("escalation.note", nullable=True)


class WrittenReport(SQLModel, table=True):
    """A written report as the person sent it, in one or more messages."""

    __tablename__ = "written_report"

    id: int | None = Field(default=None, primary_key=True)
    supervisee_id: int = Field(foreign_key="supervisee.id", index=True)
    obligation_id: int | None = Field(default=None, foreign_key="obligation.id")
    receipt: str = Field(max_length=24, unique=True)
    parts: int = 0
    body: str = _secret("written_report.body")
    submitted_at: datetime | None = _ts(nullable=False)
    # A spoken report (a call's recording): where the provider keeps it (encrypted) and how long it is.
    recording_url: str | None = _secret("written_report.recording_url", nullable=True)
    recording_seconds: int | None = None


class Message(SQLModel, table=True):
    """Every message in and out: the audit trail, and (outbound) the outbox."""

    __table_args__ = (
        UniqueConstraint("channel", "provider_id", "direction", name="uq_message_provider"),
        Index("ix_message_outbox", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    direction: str = Field(max_length=3)
    channel: str = Field(max_length=12)
    address: str = _secret("message.address")
    supervisee_id: int | None = Field(default=None, foreign_key="supervisee.id", index=True)
    officer_id: int | None = Field(default=None, foreign_key="officer.id", index=True)
    kind: str = Field(default="reply", max_length=32)
    body: str = _secret("message.body")
    payload: str | None = _secret("message.payload", nullable=True)
    status: str = Field(max_length=12)
    provider_id: str | None = Field(default=None, max_length=64)
    error_code: str | None = Field(default=None, max_length=64)  # Tencent Cloud's codes are words
    error_detail: str | None = _secret("message.error_detail", nullable=True)  # a provider's text may quote the number
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    claimed_at: datetime | None = _ts()
    # Bulk messages: not sent after this instant. Indexed: the sweep looks for expired rows every minute.
    expires_at: datetime | None = _ts(index=True)
    claim_token: str | None = Field(default=None, max_length=32, index=True)
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)
    created_at: datetime | None = _ts(nullable=False)
    sent_at: datetime | None = _ts()
    updated_at: datetime | None = _ts(nullable=False)


class Broadcast(SQLModel, table=True):
    """One bulk send (a holiday greeting, an announcement): its key makes re-runs resume, not repeat."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=120, unique=True)
    kind: str = Field(max_length=20)  # greeting | broadcast
    template: str = Field(max_length=60)
    filters: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    queued: int = 0
    created_at: datetime | None = _ts(nullable=False)


class StudyProgress(SQLModel, table=True):
    """One module sent to one person: its quiz, and the minutes credited when passed."""

    __tablename__ = "study_progress"
    __table_args__ = (Index("ix_study_person_state", "supervisee_id", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    supervisee_id: int = Field(foreign_key="supervisee.id")
    module_id: str = Field(max_length=40)
    obligation_id: int | None = Field(default=None, foreign_key="obligation.id")
    state: str = Field(default="sent", max_length=12)  # sent | passed
    question: int = 0  # the question being answered (0-based)
    attempts: int = 1
    minutes: int = 0
    sent_at: datetime | None = _ts(nullable=False)
    passed_at: datetime | None = _ts(index=True)


class Warning_(SQLModel, table=True):
    """The sanctions ledger: append-only. A correction or withdrawal is a new entry naming the one it amends."""

    __tablename__ = "warning"

    id: int | None = Field(default=None, primary_key=True)
    supervisee_id: int = Field(foreign_key="supervisee.id", index=True)
    officer_id: int = Field(foreign_key="officer.id")
    kind: str = Field(default="warning", max_length=12)  # warning | correction | withdrawal
    amends_id: int | None = Field(default=None, foreign_key="warning.id")
    reason: str = _secret("warning.reason")
    created_at: datetime | None = _ts(nullable=False, index=True)


class ServiceSession(SQLModel, table=True):
    """A community-service session: where, when, the hours it credits, and its attendance code."""

    __tablename__ = "service_session"

    id: int | None = Field(default=None, primary_key=True)
    place: str = Field(max_length=200)
    township: str = Field(max_length=100)
    starts_at: datetime | None = _ts(nullable=False)
    ends_at: datetime | None = _ts(nullable=False)
    hours: float
    code: str = Field(max_length=12)
    officer_id: int = Field(foreign_key="officer.id")
    created_at: datetime | None = _ts(nullable=False)


class ServiceAttendance(SQLModel, table=True):
    """One person at one session: expected, confirmed with the code, verified (hours credited) or absent."""

    __tablename__ = "service_attendance"
    __table_args__ = (UniqueConstraint("session_id", "supervisee_id", name="uq_attendance"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="service_session.id", index=True)
    supervisee_id: int = Field(foreign_key="supervisee.id", index=True)
    obligation_id: int | None = Field(default=None, foreign_key="obligation.id")
    state: str = Field(default="expected", max_length=12)  # expected | confirmed | verified | absent
    confirmed_at: datetime | None = _ts()
    verified_at: datetime | None = _ts(index=True)
    verified_by: int | None = Field(default=None, foreign_key="officer.id")
    hours: float = 0.0


class LocationCheck(SQLModel, table=True):
    """A shared point, kept for the retention period: only what the check-in needs.

    No address, no name: the point, its accuracy, when, which area it fell in,
    whether that was allowed, and how far outside.
    """

    __tablename__ = "location_check"

    id: int | None = Field(default=None, primary_key=True)
    supervisee_id: int = Field(foreign_key="supervisee.id", index=True)
    obligation_id: int | None = Field(default=None, foreign_key="obligation.id")
    leave_id: int | None = Field(default=None, foreign_key="leave.id")
    latitude: float = _secret("location_check.latitude", float_=True)
    longitude: float = _secret("location_check.longitude", float_=True)
    accuracy_m: float | None = None
    taken_at: datetime | None = _ts(nullable=False, index=True)
    area: str | None = Field(default=None, max_length=40)  # the smallest known area holding the point
    allowed_area: str | None = Field(default=None, max_length=40)  # what it was checked against; None: not checked
    inside: bool | None = None  # None: not checked (leave with the area check suspended)
    distance_m: float | None = None




class Leave(SQLModel, table=True):
    """A request to travel: where, when, why; the officer's decision; the report back."""

    id: int | None = Field(default=None, primary_key=True)
    supervisee_id: int = Field(foreign_key="supervisee.id", index=True)
    officer_id: int = Field(foreign_key="officer.id", index=True)  # the officer who decides
    destination: str = _secret("leave.destination")
    destination_area: str | None = Field(default=None, max_length=40)  # a known area the destination names
    starts_on: date
    ends_on: date
    reason: str = _secret("leave.reason")
    state: str = Field(default=LeaveState.requested, max_length=12, index=True)
    mode: str | None = Field(default=None, max_length=12)  # approved: move (area = destination) | suspend
    requested_at: datetime | None = _ts(nullable=False)
    decided_at: datetime | None = _ts()
    decided_by: int | None = Field(default=None, foreign_key="officer.id")
    decision_note: str | None = _secret("leave.decision_note", nullable=True)
    reminded_at: datetime | None = _ts()  # the last-day reminder to report back went
    escalated_at: datetime | None = _ts()  # no report back in time: escalated (once)
    undecided_alert_at: datetime | None = _ts()  # nobody decided in time: an alert opened (once)
    returned_at: datetime | None = _ts()


class AuditEntry(SQLModel, table=True):
    """One officer's or administrator's action: append-only, each entry carrying the hash of the one before."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime | None = _ts(nullable=False)
    actor: str = Field(max_length=40)  # officer:ID, or cli (an administrator at the command line)
    action: str = Field(max_length=40, index=True)
    supervisee_id: int | None = Field(default=None, index=True)  # no foreign key: a purge must not break the chain
    subject: str | None = Field(default=None, max_length=60)  # what was acted on: escalation:12, leave:3 ...
    # The details (JSON) are encrypted and may be removed by a purge; the chain covers their hash.
    details: str | None = _secret("audit_entry.details", nullable=True)
    details_hash: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


@event.listens_for(Officer, "before_insert")
@event.listens_for(Officer, "before_update")
@event.listens_for(Supervisee, "before_insert")
@event.listens_for(Supervisee, "before_update")
def _index_phone(_mapper, connection, target) -> None:
    """Keep the blind index of the phone number in step with the (encrypted) number."""
    target.phone_index = keyring_for(connection).blind(target.phone)


# The web console's tables live in their own module; imported here so that the schema is whole wherever the
# models are (Alembic's comparison, create_all in tests).
from storage.console_models import LoginAttempt, LoginLink, WebSession  # noqa: E402, F401
from storage.service_models import Heartbeat  # noqa: E402, F401
