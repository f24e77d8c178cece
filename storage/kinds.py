"""The kinds and states the tables hold, as enums: roles, levels, statuses, channels, obligation and escalation
kinds. Stored as their values (storage/columns.py); `storage.models` re-exports them beside the tables."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    assistant = "assistant"
    supervisor = "supervisor"
    admin = "admin"


class Category(StrEnum):
    probation = "probation"
    parole = "parole"
    control = "control"
    medical_parole = "medical_parole"
    deprivation = "deprivation"


class Level(StrEnum):
    strict = "strict"
    ordinary = "ordinary"
    lenient = "lenient"


class Status(StrEnum):
    active = "active"
    ended = "ended"
    lost_contact = "lost_contact"


class EndReason(StrEnum):
    """Why a supervision ended: its term ran out, or early."""

    ended = "ended"  # the term is over (also: released early by a court)
    revoked = "revoked"  # probation or parole revoked: taken into custody
    moved_out = "moved_out"  # supervision moved to another county
    died = "died"


# Under supervision, whether or not in contact: who is planned for, tallied, greeted.
SUPERVISED = (Status.active, Status.lost_contact)


class ChannelName(StrEnum):
    telegram = "telegram"
    sms = "sms"
    console = "console"
    voice = "voice"  # phone calls answered on the keypad (bot/channels/voice.py)


class Direction(StrEnum):
    inbound = "in"
    outbound = "out"


class MessageStatus(StrEnum):
    received = "received"  # inbound, stored
    handled = "handled"  # inbound, replies enqueued
    queued = "queued"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    undelivered = "undelivered"  # the carrier could not deliver (Twilio's status)
    failed = "failed"
    expired = "expired"  # not sent by its `expires_at` (a holiday greeting after the holiday): dropped, never late


class ObligationState(StrEnum):
    planned = "planned"
    prompted = "prompted"
    reminded = "reminded"
    done = "done"
    late = "late"  # answered after the window closed
    missed = "missed"
    excused = "excused"
    partial = "partial"  # answered, but without the location the check-in required


OPEN_OBLIGATION = (ObligationState.planned, ObligationState.prompted, ObligationState.reminded)


class ObligationKind(StrEnum):
    checkin = "checkin"
    report = "report"
    study = "study"
    service = "service"


class EscalationKind(StrEnum):
    """Why an alert went to an officer; each kind has one row in handlers.schedule's table."""

    missed_checkin = "missed_checkin"
    missed_report = "missed_report"
    missed_service = "missed_service"
    location_missing = "location_missing"  # answered "1" without the location the check-in needed
    asked_officer = "asked_officer"
    out_of_area = "out_of_area"
    unreachable = "unreachable"  # a channel failed for good (blocked bot, SMS number dead)
    sms_opt_out = "sms_opt_out"
    study_shortfall = "study_shortfall"
    service_shortfall = "service_shortfall"
    leave_not_returned = "leave_not_returned"
    leave_undecided = "leave_undecided"  # a leave request nobody decided within the policy's hours
    lost_contact = "lost_contact"  # no answer and no officer's contact for the report's number of days


class ConversationState(StrEnum):
    """Where a conversation stands: idle, or in the middle of a flow that takes the next plain text."""

    idle = "idle"
    report = "report"  # a written report in parts
    leave = "leave"  # a leave request step by step
    excuse_reason = "excuse_reason"  # an officer pressed Excuse and owes the reason


class EscalationState(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"


class Resolution(StrEnum):
    reached = "reached"
    unreachable = "unreachable"
    excused = "excused"
    answered_late = "answered_late"
    decided = "decided"  # the leave request it was about was decided (or withdrawn)
    contact_resumed = "contact_resumed"  # lost contact: the person answered again, or an officer reached them
    case_ended = "case_ended"  # the supervision ended early (revoked, moved out, died)


class LeaveState(StrEnum):
    requested = "requested"
    approved = "approved"
    refused = "refused"
    returned = "returned"  # approved, travelled, reported back
    cancelled = "cancelled"
