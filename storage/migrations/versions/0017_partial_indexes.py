"""partial indexes for what the sweep looks for among many rows: open obligations by next check, people never
planned, people in lost contact (SQLite's planner scanned the table for each at 100,000 people)

Revision ID: 0017
Revises: 0016
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | Sequence[str] | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ('ix_obligation_open_next', 'obligation', ['next_check_at', 'id'], "state IN ('planned', 'prompted', 'reminded')"),
    ('ix_supervisee_unplanned', 'supervisee', ['id'], 'planned_until IS NULL'),
    ('ix_supervisee_lost_contact', 'supervisee', ['id'], "status = 'lost_contact'"),
)


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        op.create_index(name, table, columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def downgrade() -> None:
    for name, table, _, _ in INDEXES:
        op.drop_index(name, table_name=table)
