"""location and leave

Revision ID: 0009
Revises: 0008

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('leave',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supervisee_id', sa.Integer(), nullable=False),
    sa.Column('officer_id', sa.Integer(), nullable=False),
    sa.Column('destination', sa.String(length=200), nullable=False),
    sa.Column('destination_area', sa.String(length=40), nullable=True),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('mode', sa.String(length=12), nullable=True),
    sa.Column('requested_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decided_by', sa.Integer(), nullable=True),
    sa.Column('decision_note', sa.String(length=500), nullable=True),
    sa.Column('reminded_at', sa.DateTime(), nullable=True),
    sa.Column('escalated_at', sa.DateTime(), nullable=True),
    sa.Column('returned_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['decided_by'], ['officer.id'], ),
    sa.ForeignKeyConstraint(['officer_id'], ['officer.id'], ),
    sa.ForeignKeyConstraint(['supervisee_id'], ['supervisee.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('leave', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_leave_officer_id'), ['officer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_leave_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_leave_supervisee_id'), ['supervisee_id'], unique=False)

    op.create_table('location_check',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supervisee_id', sa.Integer(), nullable=False),
    sa.Column('obligation_id', sa.Integer(), nullable=True),
    sa.Column('leave_id', sa.Integer(), nullable=True),
    sa.Column('latitude', sa.Float(), nullable=False),
    sa.Column('longitude', sa.Float(), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.Column('taken_at', sa.DateTime(), nullable=False),
    sa.Column('area', sa.String(length=40), nullable=True),
    sa.Column('allowed_area', sa.String(length=40), nullable=True),
    sa.Column('inside', sa.Boolean(), nullable=True),
    sa.Column('distance_m', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['leave_id'], ['leave.id'], ),
    sa.ForeignKeyConstraint(['obligation_id'], ['obligation.id'], ),
    sa.ForeignKeyConstraint(['supervisee_id'], ['supervisee.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('location_check', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_location_check_supervisee_id'), ['supervisee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_location_check_taken_at'), ['taken_at'], unique=False)

    with op.batch_alter_table('obligation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('location_required', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('partial_at', sa.DateTime(), nullable=True))



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('obligation', schema=None) as batch_op:
        batch_op.drop_column('partial_at')
        batch_op.drop_column('location_required')

    with op.batch_alter_table('location_check', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_location_check_taken_at'))
        batch_op.drop_index(batch_op.f('ix_location_check_supervisee_id'))

    op.drop_table('location_check')
    with op.batch_alter_table('leave', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_leave_supervisee_id'))
        batch_op.drop_index(batch_op.f('ix_leave_state'))
        batch_op.drop_index(batch_op.f('ix_leave_officer_id'))

    op.drop_table('leave')
