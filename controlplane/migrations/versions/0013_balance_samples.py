"""the data center's balance over time: a sample every few minutes and at the end of each plan

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 19:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('balance_samples',
                    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                              nullable=False),
                    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('objective', sa.Float(), nullable=False),
                    sa.Column('stdev', sa.JSON(), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_balance_samples_at', 'balance_samples', ['at'])


def downgrade() -> None:
    op.drop_index('ix_balance_samples_at', table_name='balance_samples')
    op.drop_table('balance_samples')
