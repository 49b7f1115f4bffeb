"""operations remember when their task was sent; plans carry the token of their one step chain

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 18:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('operations') as batch:
        batch.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('plans') as batch:
        batch.add_column(sa.Column('step_token', sa.String(length=36), nullable=True))
        batch.add_column(sa.Column('next_step_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('plans') as batch:
        batch.drop_column('next_step_at')
        batch.drop_column('step_token')
    with op.batch_alter_table('operations') as batch:
        batch.drop_column('sent_at')
