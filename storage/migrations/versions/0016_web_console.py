"""the office's web console: officers' passwords and administrators' TOTP, sessions, sign-in attempts, links

Revision ID: 0016
Revises: 0015
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | Sequence[str] | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('officer', schema=None) as b:
        b.add_column(sa.Column('password_hash', sa.String(length=200), nullable=True))
        b.add_column(sa.Column('password_set_at', sa.DateTime(), nullable=True))
        b.add_column(sa.Column('totp_secret', sa.Text(), nullable=True))
    op.create_table(
        'web_session',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('token_hash', sa.String(length=64), nullable=False, unique=True),
        sa.Column('officer_id', sa.Integer(), sa.ForeignKey('officer.id'), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
    )
    op.create_index('ix_web_session_officer_id', 'web_session', ['officer_id'])
    op.create_table(
        'login_attempt',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('key', sa.String(length=80), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
    )
    op.create_index('ix_login_attempt_key_at', 'login_attempt', ['key', 'at'])
    op.create_table(
        'login_link',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('token_hash', sa.String(length=64), nullable=False, unique=True),
        sa.Column('officer_id', sa.Integer(), sa.ForeignKey('officer.id'), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table('login_link')
    op.drop_index('ix_login_attempt_key_at', table_name='login_attempt')
    op.drop_table('login_attempt')
    op.drop_index('ix_web_session_officer_id', table_name='web_session')
    op.drop_table('web_session')
    with op.batch_alter_table('officer', schema=None) as b:
        b.drop_column('totp_secret')
        b.drop_column('password_set_at')
        b.drop_column('password_hash')
