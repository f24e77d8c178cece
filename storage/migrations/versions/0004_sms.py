"""sms: blocked numbers

Revision ID: 0004
Revises: 0003

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""

    with op.batch_alter_table('supervisee', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sms_blocked_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('sms_blocked_reason', sa.String(length=32), nullable=True))




def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('supervisee', schema=None) as batch_op:
        batch_op.drop_column('sms_blocked_reason')
        batch_op.drop_column('sms_blocked_at')


