"""hosts.migration_domain: which hosts can exchange VMs (a Proxmox VE cluster, libvirt copy-storage peers)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 20:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('hosts') as batch:
        batch.add_column(sa.Column('migration_domain', sa.String(length=63), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('hosts') as batch:
        batch.drop_column('migration_domain')
