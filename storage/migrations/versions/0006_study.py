"""study progress

Revision ID: 0006
Revises: 0005

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table('study_progress',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('supervisee_id', sa.Integer(), nullable=False),
    sa.Column('module_id', sa.String(length=40), nullable=False),
    sa.Column('obligation_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('question', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=False),
    sa.Column('passed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['obligation_id'], ['obligation.id'], ),
    sa.ForeignKeyConstraint(['supervisee_id'], ['supervisee.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('study_progress', schema=None) as batch_op:
        batch_op.create_index('ix_study_person_state', ['supervisee_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_progress_passed_at'), ['passed_at'], unique=False)




def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('study_progress', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_progress_passed_at'))
        batch_op.drop_index('ix_study_person_state')

    op.drop_table('study_progress')

