"""telegram: blocked chats, officer enrolment codes

Revision ID: 0003
Revises: 0002

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""

    with op.batch_alter_table('enrolment_code', schema=None) as batch_op:
        batch_op.add_column(sa.Column('officer_id', sa.Integer(), nullable=True))
        batch_op.alter_column('supervisee_id',
               existing_type=sa.INTEGER(),
               nullable=True)
        batch_op.create_foreign_key('fk_enrolment_code_officer_id', 'officer', ['officer_id'], ['id'])

    with op.batch_alter_table('supervisee', schema=None) as batch_op:
        batch_op.add_column(sa.Column('telegram_blocked_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('supervisee', schema=None) as batch_op:
        batch_op.drop_column('telegram_blocked_at')

    with op.batch_alter_table('enrolment_code', schema=None) as batch_op:
        batch_op.drop_constraint('fk_enrolment_code_officer_id', type_='foreignkey')
        batch_op.alter_column('supervisee_id',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('officer_id')


