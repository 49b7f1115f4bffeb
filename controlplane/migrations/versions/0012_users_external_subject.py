"""users who sign in through the province's identity provider (OpenID Connect) are linked by issuer and subject

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 18:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('external_subject', sa.String(length=400), nullable=True))
        batch.create_unique_constraint('uq_users_external_subject', ['external_subject'])


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_constraint('uq_users_external_subject', type_='unique')
        batch.drop_column('external_subject')
