"""kinds as types: obligation kinds, escalation kinds and conversation states limited to their enums

Revision ID: 0012
Revises: 0011

Every row is kept: the values already stored are the enums' values. A value
that is not (a hand edit, say) stops the upgrade with the table, column and
value, before anything is changed.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The enums' values as of this revision (a later kind is a later migration that replaces the constraint).
OBLIGATION_KINDS = ('checkin', 'report', 'study', 'service')
ESCALATION_KINDS = ('missed_checkin', 'missed_report', 'missed_service', 'location_missing', 'asked_officer',
                    'out_of_area', 'unreachable', 'sms_opt_out', 'study_shortfall', 'service_shortfall',
                    'leave_not_returned')
CONVERSATION_STATES = ('idle', 'report', 'leave', 'excuse_reason')
CHECKS = (  # table, column, values, constraint name
    ('obligation', 'kind', OBLIGATION_KINDS, 'ck_obligation_kind'),
    ('escalation', 'kind', ESCALATION_KINDS, 'ck_escalation_kind'),
    ('conversation', 'state', CONVERSATION_STATES, 'ck_conversation_state'),
)


def _condition(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    conn = op.get_bind()
    for table, column, enum, _ in CHECKS:
        stray = conn.execute(sa.text(
            f"SELECT DISTINCT {column} FROM {table} WHERE NOT ({_condition(column, enum)})")).scalars().all()
        if stray:
            raise RuntimeError(f"{table}.{column} holds values outside {enum}: {stray}; "
                               "correct those rows, then run `checkin init` again")
    for table, column, enum, name in CHECKS:
        with op.batch_alter_table(table, schema=None) as b:
            b.create_check_constraint(name, _condition(column, enum))


def downgrade() -> None:
    for table, _, _, name in CHECKS:
        with op.batch_alter_table(table, schema=None) as b:
            b.drop_constraint(name, type_='check')
