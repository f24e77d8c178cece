"""bulk messages expire: message.expires_at (a holiday greeting is not sent after its holiday)

Revision ID: 0013
Revises: 0012
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as b:
        b.add_column(sa.Column('expires_at', sa.DateTime(), nullable=True))
    op.create_index('ix_message_expires_at', 'message', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_message_expires_at', table_name='message')
    with op.batch_alter_table('message', schema=None) as b:
        b.drop_column('expires_at')
