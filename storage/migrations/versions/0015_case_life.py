"""the life of a case: pauses, early ends with their reason, lost contact found by the sweep

Revision ID: 0015
Revises: 0014

Adds supervisee.paused_from, paused_until, pause_reason (encrypted), ended_reason, lost_contact_since, and the
escalation kind lost_contact. Every row is kept; people already ended get ended_reason 'ended'.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | Sequence[str] | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_0014 = ('missed_checkin', 'missed_report', 'missed_service', 'location_missing', 'asked_officer',
              'out_of_area', 'unreachable', 'sms_opt_out', 'study_shortfall', 'service_shortfall',
              'leave_not_returned', 'leave_undecided')
KINDS = KINDS_0014 + ('lost_contact',)


def _condition(values: tuple[str, ...]) -> str:
    return f"kind IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    with op.batch_alter_table('supervisee', schema=None) as b:
        b.add_column(sa.Column('paused_from', sa.Date(), nullable=True))
        b.add_column(sa.Column('paused_until', sa.Date(), nullable=True))
        b.add_column(sa.Column('pause_reason', sa.Text(), nullable=True))
        b.add_column(sa.Column('ended_reason', sa.String(length=16), nullable=True))
        b.add_column(sa.Column('lost_contact_since', sa.DateTime(), nullable=True))
    op.execute("UPDATE supervisee SET ended_reason = 'ended' WHERE status = 'ended'")
    with op.batch_alter_table('escalation', schema=None) as b:
        b.drop_constraint('ck_escalation_kind', type_='check')
        b.create_check_constraint('ck_escalation_kind', _condition(KINDS))


def downgrade() -> None:
    held = op.get_bind().execute(sa.text("SELECT count(*) FROM escalation WHERE kind = 'lost_contact'")).scalar()
    if held:
        raise RuntimeError(f"{held} escalations are of kind lost_contact, which revision 0014 cannot hold; "
                           "resolve and remove them first")
    with op.batch_alter_table('escalation', schema=None) as b:
        b.drop_constraint('ck_escalation_kind', type_='check')
        b.create_check_constraint('ck_escalation_kind', _condition(KINDS_0014))
    with op.batch_alter_table('supervisee', schema=None) as b:
        for column in ('lost_contact_since', 'ended_reason', 'pause_reason', 'paused_until', 'paused_from'):
            b.drop_column(column)
