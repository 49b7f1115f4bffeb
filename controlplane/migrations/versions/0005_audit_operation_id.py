"""audit entries name the operation they belong to

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 16:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_entries') as batch:
        batch.add_column(sa.Column('operation_id', sa.String(length=36), nullable=True))
        batch.create_index('ix_audit_entries_operation_id', ['operation_id'])


def downgrade() -> None:
    with op.batch_alter_table('audit_entries') as batch:
        batch.drop_index('ix_audit_entries_operation_id')
        batch.drop_column('operation_id')
