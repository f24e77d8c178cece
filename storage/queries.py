"""Lookups and small writes shared by the handlers and the CLI."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from storage.crypto import keyring_for
from storage.models import SUPERVISED, Conversation, EnrolmentCode, Officer, Supervisee


def officer_by_telegram(session: Session, telegram_id: int) -> Officer | None:
    return session.exec(select(Officer).where(Officer.telegram_id == telegram_id)).first()


def officer_by_phone(session: Session, phone: str) -> Officer | None:
    """By E.164 number, through the blind index (the number itself is stored encrypted)."""
    return session.exec(select(Officer).where(Officer.phone_index == keyring_for(session).blind(phone))).first()


def supervisee_by_telegram(session: Session, chat_id: int) -> Supervisee | None:
    return session.exec(select(Supervisee).where(Supervisee.telegram_chat_id == chat_id)).first()


def supervisee_by_phone(session: Session, phone: str) -> Supervisee | None:
    """By E.164 number, through the blind index (the number itself is stored encrypted)."""
    return session.exec(select(Supervisee).where(Supervisee.phone_index == keyring_for(session).blind(phone))).first()


def supervisee_by_case(session: Session, case_number: str) -> Supervisee | None:
    return session.exec(select(Supervisee).where(Supervisee.case_number == case_number)).first()


def enrolment_code(session: Session, code: str) -> EnrolmentCode | None:
    return session.exec(select(EnrolmentCode).where(EnrolmentCode.code == code)).first()


def conversation_for(session: Session, channel: str, address: str, now: datetime) -> Conversation:
    """The conversation row of (channel, address); a new idle one, not yet added, when there is none.

    The row holds the blind index of the address (a phone number on SMS), not the
    address. An idle conversation is stored only when it moves to another state
    (`Context.set_state` adds it): most messages never leave idle.
    """
    address = keyring_for(session).blind(address)
    conv = session.exec(
        select(Conversation).where(Conversation.channel == channel, Conversation.address == address)
    ).first()
    return conv or Conversation(channel=channel, address=address, state="idle", data="{}", updated_at=now)


def caseload(session: Session, officer_id: int) -> list[Supervisee]:
    """The active people assigned to an officer, by case number."""
    return list(
        session.exec(
            select(Supervisee)
            .where(Supervisee.officer_id == officer_id, Supervisee.status != "ended")
            .order_by(Supervisee.case_number)
        )
    )


def add_officer(
    session: Session,
    *,
    name: str,
    township: str,
    role: str,
    now: datetime,
    supervisor_id: int | None = None,
    telegram_id: int | None = None,
    phone: str | None = None,
    language: str = "zh-CN",
) -> Officer:
    """Insert an officer and return it with its id."""
    officer = Officer(
        name=name, township=township, role=role, supervisor_id=supervisor_id,
        telegram_id=telegram_id, phone=phone, language=language, created_at=now,
    )
    session.add(officer)
    session.flush()
    return officer


def caseload_counts(session: Session) -> dict[int, int]:
    """How many people (not ended) each officer has, by officer id."""
    rows = session.exec(
        select(Supervisee.officer_id, func.count()).where(Supervisee.status != "ended").group_by(Supervisee.officer_id)
    ).all()
    return dict(rows)


def supervised_tally(session: Session, value: ColumnElement, ids: list[int] | None = None) -> dict[int, int]:
    """`value`, an expression over a `Supervisee` row (minutes credited, say), per person under supervision
    (optionally only `ids`)."""
    query = select(Supervisee.id, value).where(col(Supervisee.status).in_(SUPERVISED))
    if ids is not None:
        query = query.where(col(Supervisee.id).in_(ids))
    return {pid: int(v) for pid, v in session.exec(query).all()}
