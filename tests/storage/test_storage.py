"""Schema, migrations and the UTC datetime column, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from storage.db import alembic_config, current_revision, has_schema, head_revision, migrate, session_scope
from storage.models import Conversation, Message, SQLModel
from tests.conftest import NOW, make_engine
from tests.factories import officer, supervisee


def test_migrations_match_the_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), SQLModel.metadata)
    assert diff == []
    assert current_revision(db.engine) == head_revision() == "0020"


def test_migrate_twice_is_a_no_op(db):
    migrate(db.engine)
    assert has_schema(db.engine)


def test_fresh_sqlite_file_gets_wal_and_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000


def test_datetimes_come_back_aware_utc(db):
    o = officer(db.engine, NOW)
    shanghai = timezone(timedelta(hours=8))
    supervisee(db.engine, NOW.astimezone(shanghai), o.id)
    with session_scope(db.engine) as s:
        from storage.models import Supervisee

        p = s.exec(select(Supervisee)).one()
    assert p.created_at == NOW and p.created_at.tzinfo == UTC


def test_naive_datetime_is_refused(db):
    o = officer(db.engine, NOW)
    with pytest.raises(Exception, match="naive"):
        supervisee(db.engine, datetime(2027, 1, 1), o.id)


def test_foreign_keys_are_enforced(db):
    with pytest.raises(IntegrityError):
        supervisee(db.engine, NOW, officer_id=999)


def test_message_dedupe_key_is_unique(db):
    row = dict(direction="out", channel="sms", address="+8613812345678", body="x", status="queued",
               dedupe_key="k1", created_at=NOW, updated_at=NOW)
    with session_scope(db.engine) as s:
        s.add(Message(**row))
    with pytest.raises(IntegrityError):
        with session_scope(db.engine) as s:
            s.add(Message(**row))


def test_upgrade_from_the_first_schema_keeps_data(empty_url):
    engine = make_engine(empty_url)
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO officer (name, township, role, language, active, created_at) "
            "VALUES ('李娜', '红果镇', 'assistant', 'zh-CN', true, '2027-01-01 00:00:00')")
        conn.exec_driver_sql(
            "INSERT INTO supervisee (case_number, name, phone, language, category, level, township, officer_id, "
            "supervision_start, supervision_end, status, preferred_channel, created_at, updated_at) VALUES "
            "('JZ1', '王伟', '+8613800000001', 'zh-CN', 'probation', 'strict', '红果镇', 1, '2027-01-01', "
            "'2028-01-01', 'active', 'sms', '2027-01-01 00:00:00', '2027-01-01 00:00:00')")
    migrate(engine)
    assert current_revision(engine) == head_revision()
    with session_scope(engine) as s:
        from storage.models import Supervisee

        p = s.exec(select(Supervisee)).one()
        assert p.name == "王伟" and p.planned_until is None
    engine.dispose()


def test_upgrade_to_encryption_encrypts_what_is_there(empty_url):
    """0010 -> 0011 with rows in place: encrypted, indexed, conversations re-keyed, the audit chain re-hashed."""
    from storage import audit, queries
    from storage.models import AuditEntry, Conversation, LocationCheck, Supervisee
    from tests.conftest import KEYRING

    engine = make_engine(empty_url)
    migrate(engine, "0010")
    stamp = "'2027-03-01 01:00:00'"
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO officer (name, township, role, language, active, created_at, phone) "
            f"VALUES ('李娜', '红果镇', 'assistant', 'zh-CN', true, {stamp}, '+8613900000009')",
            "INSERT INTO supervisee (case_number, name, phone, language, category, level, township, officer_id, "
            "supervision_start, supervision_end, status, preferred_channel, created_at, updated_at) VALUES "
            "('JZ1', '王伟', '+8613800000001', 'zh-CN', 'probation', 'strict', '红果镇', 1, '2027-01-01', "
            f"'2028-01-01', 'active', 'sms', {stamp}, {stamp})",
            "INSERT INTO message (direction, channel, address, supervisee_id, kind, body, status, attempts, "
            f"created_at, updated_at) VALUES ('in', 'sms', '+8613800000001', 1, 'text', '我在家', 'handled', 0, "
            f"{stamp}, {stamp})",
            "INSERT INTO conversation (channel, address, state, data, updated_at) VALUES "
            f"('sms', '+8613800000001', 'report', '{{\"parts\": [\"草稿\"]}}', {stamp})",
            "INSERT INTO location_check (supervisee_id, latitude, longitude, taken_at) "
            f"VALUES (1, 27.1, 106.3, {stamp})",
        ):
            conn.exec_driver_sql(sql)
        for i, reason in enumerate(("迟到", "未报到")):
            conn.exec_driver_sql(
                "INSERT INTO audit_entry (at, actor, action, supervisee_id, subject, details, prev_hash, hash) "
                f"VALUES ({stamp}, 'officer:1', 'warning.add', 1, 'warning:{i + 1}', "
                f"'{{\"reason\": \"{reason}\"}}', '{i}', 'old{i}')")
    migrate(engine)
    with session_scope(engine) as s:
        assert queries.supervisee_by_phone(s, "+8613800000001").name == "王伟"
        assert queries.officer_by_phone(s, "+8613900000009").name == "李娜"
        assert s.exec(select(Message)).one().body == "我在家"
        conv = s.exec(select(Conversation)).one()
        assert conv.address == KEYRING.blind("+8613800000001") and "草稿" in conv.data
        assert s.exec(select(LocationCheck)).one().latitude == 27.1
        assert [e.details for e in s.exec(select(AuditEntry).order_by(AuditEntry.id))] == [
            '{"reason": "迟到"}', '{"reason": "未报到"}']
        assert audit.verify(s) == audit.Verdict(True, 2)
        assert s.exec(select(Supervisee)).one().phone_index == KEYRING.blind("+8613800000001")
    with engine.connect() as conn:
        raw = " ".join(str(v) for t in ("supervisee", "message", "conversation", "audit_entry")
                       for row in conn.exec_driver_sql(f"SELECT * FROM {t}") for v in row)
    assert "王伟" not in raw and "8613800000001" not in raw and "我在家" not in raw and "迟到" not in raw
    engine.dispose()


def _rows_at_0011(engine, escalation_kind: str = "missed_checkin") -> None:
    """An officer, a person, a check-in and its alert, as 0011 stored them (strings)."""
    stamp = "'2027-03-01 01:00:00'"
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO officer (name, township, role, language, active, created_at) "
            f"VALUES ('x', '红果镇', 'assistant', 'zh-CN', true, {stamp})",
            "INSERT INTO supervisee (case_number, name, language, category, level, township, officer_id, "
            "supervision_start, supervision_end, status, preferred_channel, created_at, updated_at) VALUES "
            f"('JZ1', 'x', 'zh-CN', 'probation', 'strict', '红果镇', 1, '2027-01-01', '2028-01-01', 'active', 'sms', "
            f"{stamp}, {stamp})",
            "INSERT INTO obligation (supervisee_id, kind, period_key, due_at, window_end_at, state, created_at, "
            f"location_required) VALUES (1, 'checkin', '2027-03-01', {stamp}, {stamp}, 'missed', {stamp}, false)",
            "INSERT INTO escalation (supervisee_id, obligation_id, kind, officer_id, state, opened_at) "
            f"VALUES (1, 1, '{escalation_kind}', 1, 'open', {stamp})",
            f"INSERT INTO conversation (channel, address, state, data, updated_at) VALUES ('sms', 'i', 'report', "
            f"'x', {stamp})",
        ):
            conn.exec_driver_sql(sql)


def test_upgrade_to_typed_kinds_keeps_every_row(empty_url):
    from storage.models import ConversationState, Escalation, EscalationKind, Obligation, ObligationKind

    engine = make_engine(empty_url)
    migrate(engine, "0011")
    _rows_at_0011(engine)
    migrate(engine)
    with session_scope(engine) as s:
        assert s.exec(select(Obligation)).one().kind is ObligationKind.checkin
        assert s.exec(select(Escalation)).one().kind is EscalationKind.missed_checkin
        assert s.exec(select(Conversation.state)).one() is ConversationState.report
    with pytest.raises(IntegrityError):  # the schema itself refuses a kind that is no member
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE escalation SET kind = 'missed_lunch'")
    engine.dispose()


def test_upgrade_to_typed_kinds_stops_on_a_stray_value_and_changes_nothing(empty_url):
    engine = make_engine(empty_url)
    migrate(engine, "0011")
    _rows_at_0011(engine, escalation_kind="missed_lunch")
    with pytest.raises(RuntimeError, match=r"escalation\.kind holds values outside .*missed_lunch"):
        migrate(engine)
    assert current_revision(engine) == "0011"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT kind FROM escalation").scalar() == "missed_lunch"
    engine.dispose()


def test_upgrade_to_the_ladder_keeps_each_alert_where_it_stood(empty_url):
    from storage.models import Escalation

    engine = make_engine(empty_url)
    migrate(engine, "0013")
    _rows_at_0011(engine)
    with engine.begin() as conn:  # a second alert, already with the supervisor; the first still the officer's
        conn.exec_driver_sql("UPDATE escalation SET officer_due_at = '2027-03-01 05:00:00'")
        conn.exec_driver_sql(
            "INSERT INTO escalation (supervisee_id, kind, officer_id, supervisor_id, state, opened_at, "
            "supervisor_notified_at) VALUES (1, 'asked_officer', 1, 1, 'open', '2027-03-01 01:00:00', "
            "'2027-03-01 05:00:00')")
        conn.exec_driver_sql("UPDATE supervisee SET status = 'ended'")
    migrate(engine)
    with session_scope(engine) as s:
        first, second = s.exec(select(Escalation).order_by(Escalation.id)).all()
        assert (first.rung, first.next_step_at) == (0, datetime(2027, 3, 1, 5, tzinfo=UTC))
        assert (second.rung, second.next_step_at) == (1, None)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT ended_reason FROM supervisee").scalar() == "ended"
    with pytest.raises(IntegrityError):  # the new kinds are in the constraint, nothing else is
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE escalation SET kind = 'missed_lunch'")
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE escalation SET kind = 'lost_contact' WHERE id = 2")
    with pytest.raises(RuntimeError, match="kind lost_contact"):  # a downgrade never drops an alert silently
        command.downgrade(alembic_config(engine), "0014")
    # Stopped before 0015 -> 0014 (PostgreSQL rolls the whole downgrade back; SQLite keeps the steps before it).
    assert current_revision(engine) in ("0015", head_revision())
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT kind FROM escalation WHERE id = 2").scalar() == "lost_contact"
    engine.dispose()
