"""high availability: hosts.state_since, hosts.fence_command, hosts.fenced_at; vms.ha_enabled, vms.ha_priority;
tenants.ha_enabled

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 21:00:00
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('hosts') as batch:
        batch.add_column(sa.Column('state_since', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('fence_command', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('fenced_at', sa.DateTime(timezone=True), nullable=True))
    # Existing hosts have been in their state since an unknown time: their clock starts now (a host already down
    # gets its full grace period before high availability fences it, instead of never being considered).
    hosts = sa.table('hosts', sa.column('state_since', sa.DateTime(timezone=True)))
    op.execute(hosts.update().values(state_since=datetime.now(timezone.utc)))
    with op.batch_alter_table('vms') as batch:
        batch.add_column(sa.Column('ha_enabled', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column('ha_priority', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('tenants') as batch:
        batch.add_column(sa.Column('ha_enabled', sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('ha_enabled')
    with op.batch_alter_table('vms') as batch:
        batch.drop_column('ha_priority')
        batch.drop_column('ha_enabled')
    with op.batch_alter_table('hosts') as batch:
        batch.drop_column('fenced_at')
        batch.drop_column('fence_command')
        batch.drop_column('state_since')
