"""longer provider error codes: Tencent Cloud's are words (FailedOperation.PhoneNumberInBlacklist), up to 64

Revision ID: 0019
Revises: 0018
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | Sequence[str] | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite does not hold a VARCHAR to its length: only PostgreSQL's column changes (no copy of the message table).
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('message', 'error_code', type_=sa.String(64), existing_type=sa.String(32))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('message', 'error_code', type_=sa.String(32), existing_type=sa.String(64))
