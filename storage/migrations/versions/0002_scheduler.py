"""scheduler: obligation timing, escalations, written reports

Revision ID: 0002
Revises: 0001

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table('escalation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supervisee_id', sa.Integer(), nullable=False),
    sa.Column('obligation_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('officer_id', sa.Integer(), nullable=False),
    sa.Column('supervisor_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('officer_due_at', sa.DateTime(), nullable=True),
    sa.Column('supervisor_notified_at', sa.DateTime(), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(), nullable=True),
    sa.Column('acknowledged_by', sa.Integer(), nullable=True),
    sa.Column('resolution', sa.String(length=20), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.Column('resolved_by', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['officer.id'], ),
    sa.ForeignKeyConstraint(['obligation_id'], ['obligation.id'], ),
    sa.ForeignKeyConstraint(['officer_id'], ['officer.id'], ),
    sa.ForeignKeyConstraint(['resolved_by'], ['officer.id'], ),
    sa.ForeignKeyConstraint(['supervisee_id'], ['supervisee.id'], ),
    sa.ForeignKeyConstraint(['supervisor_id'], ['officer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('obligation_id', 'kind', name='uq_escalation_obligation')
    )
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalation_officer_id'), ['officer_id'], unique=False)
        batch_op.create_index('ix_escalation_state_due', ['state', 'officer_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_escalation_supervisee_id'), ['supervisee_id'], unique=False)

    op.create_table('written_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supervisee_id', sa.Integer(), nullable=False),
    sa.Column('obligation_id', sa.Integer(), nullable=True),
    sa.Column('receipt', sa.String(length=24), nullable=False),
    sa.Column('parts', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['obligation_id'], ['obligation.id'], ),
    sa.ForeignKeyConstraint(['supervisee_id'], ['supervisee.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('receipt')
    )
    with op.batch_alter_table('written_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_written_report_supervisee_id'), ['supervisee_id'], unique=False)

    with op.batch_alter_table('obligation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('remind_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('next_check_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('prompted_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('reminded_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_obligation_state_next', ['state', 'next_check_at'], unique=False)

    with op.batch_alter_table('supervisee', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_contact_kind', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('planned_until', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_supervisee_planned_until'), ['planned_until'], unique=False)
        batch_op.create_index('ix_supervisee_status_end', ['status', 'supervision_end'], unique=False)




def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('supervisee', schema=None) as batch_op:
        batch_op.drop_index('ix_supervisee_status_end')
        batch_op.drop_index(batch_op.f('ix_supervisee_planned_until'))
        batch_op.drop_column('planned_until')
        batch_op.drop_column('last_contact_kind')

    with op.batch_alter_table('obligation', schema=None) as batch_op:
        batch_op.drop_index('ix_obligation_state_next')
        batch_op.drop_column('reminded_at')
        batch_op.drop_column('prompted_at')
        batch_op.drop_column('next_check_at')
        batch_op.drop_column('remind_at')

    with op.batch_alter_table('written_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_written_report_supervisee_id'))

    op.drop_table('written_report')
    with op.batch_alter_table('escalation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_escalation_supervisee_id'))
        batch_op.drop_index('ix_escalation_state_due')
        batch_op.drop_index(batch_op.f('ix_escalation_officer_id'))

    op.drop_table('escalation')

