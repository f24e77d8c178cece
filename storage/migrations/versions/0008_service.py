"""community service

Revision ID: 0008
Revises: 0007

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table('service_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('place', sa.String(length=200), nullable=False),
    sa.Column('township', sa.String(length=100), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('hours', sa.Float(), nullable=False),
    sa.Column('code', sa.String(length=12), nullable=False),
    sa.Column('officer_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['officer_id'], ['officer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('service_attendance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('supervisee_id', sa.Integer(), nullable=False),
    sa.Column('obligation_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('verified_at', sa.DateTime(), nullable=True),
    sa.Column('verified_by', sa.Integer(), nullable=True),
    sa.Column('hours', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['obligation_id'], ['obligation.id'], ),
    sa.ForeignKeyConstraint(['session_id'], ['service_session.id'], ),
    sa.ForeignKeyConstraint(['supervisee_id'], ['supervisee.id'], ),
    sa.ForeignKeyConstraint(['verified_by'], ['officer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('session_id', 'supervisee_id', name='uq_attendance')
    )
    with op.batch_alter_table('service_attendance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_attendance_session_id'), ['session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_attendance_supervisee_id'), ['supervisee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_attendance_verified_at'), ['verified_at'], unique=False)




def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('service_attendance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_attendance_verified_at'))
        batch_op.drop_index(batch_op.f('ix_service_attendance_supervisee_id'))
        batch_op.drop_index(batch_op.f('ix_service_attendance_session_id'))

    op.drop_table('service_attendance')
    op.drop_table('service_session')

