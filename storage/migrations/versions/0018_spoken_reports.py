"""spoken reports: a written report may be a call's recording (its address, encrypted, and its length)

Revision ID: 0018
Revises: 0017
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | Sequence[str] | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('written_report', schema=None) as b:
        b.add_column(sa.Column('recording_url', sa.Text(), nullable=True))
        b.add_column(sa.Column('recording_seconds', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('written_report', schema=None) as b:
        b.drop_column('recording_seconds')
        b.drop_column('recording_url')
