"""a ladder with no dead end: escalation.rung, next_step_at (was officer_due_at), reminders, administrators;
leave requests nobody decides become alerts (escalation kind leave_undecided, leave.undecided_alert_at)

Revision ID: 0014
Revises: 0013

Every row is kept: an open alert's deadline moves from officer_due_at to next_step_at; an alert already
sent to the supervisor stands on rung 1.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_0012 = ('missed_checkin', 'missed_report', 'missed_service', 'location_missing', 'asked_officer',
              'out_of_area', 'unreachable', 'sms_opt_out', 'study_shortfall', 'service_shortfall',
              'leave_not_returned')
KINDS = KINDS_0012 + ('leave_undecided',)


def _condition(values: tuple[str, ...]) -> str:
    return f"kind IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.drop_index('ix_escalation_state_due', table_name='escalation')
    with op.batch_alter_table('escalation', schema=None) as b:
        b.alter_column('officer_due_at', new_column_name='next_step_at')
        b.add_column(sa.Column('rung', sa.Integer(), nullable=False, server_default='0'))
        b.add_column(sa.Column('admins_notified_at', sa.DateTime(), nullable=True))
        b.add_column(sa.Column('reminded_at', sa.DateTime(), nullable=True))
        b.drop_constraint('ck_escalation_kind', type_='check')
        b.create_check_constraint('ck_escalation_kind', _condition(KINDS))
    op.create_index('ix_escalation_state_due', 'escalation', ['state', 'next_step_at'])
    op.execute("UPDATE escalation SET rung = 1 WHERE supervisor_notified_at IS NOT NULL")
    with op.batch_alter_table('leave', schema=None) as b:
        b.add_column(sa.Column('undecided_alert_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('leave', schema=None) as b:
        b.drop_column('undecided_alert_at')
    held = op.get_bind().execute(sa.text("SELECT count(*) FROM escalation WHERE kind = 'leave_undecided'")).scalar()
    if held:
        raise RuntimeError(f"{held} escalations are of kind leave_undecided, which revision 0013 cannot hold; "
                           "resolve and remove them first")
    op.drop_index('ix_escalation_state_due', table_name='escalation')
    with op.batch_alter_table('escalation', schema=None) as b:
        b.drop_constraint('ck_escalation_kind', type_='check')
        b.create_check_constraint('ck_escalation_kind', _condition(KINDS_0012))
        b.drop_column('reminded_at')
        b.drop_column('admins_notified_at')
        b.drop_column('rung')
        b.alter_column('next_step_at', new_column_name='officer_due_at')
    op.create_index('ix_escalation_state_due', 'escalation', ['state', 'officer_due_at'])
