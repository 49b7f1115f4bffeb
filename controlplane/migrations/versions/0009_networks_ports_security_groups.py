"""tenant networks (private and provider), ports with their addresses, security groups and rules

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 15:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('networks',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('tenant_id', sa.String(length=36), nullable=True),
                    sa.Column('name', sa.String(length=63), nullable=False),
                    sa.Column('kind', sa.String(length=16), nullable=False),
                    sa.Column('physnet', sa.String(length=63), nullable=False),
                    sa.Column('segment', sa.Integer(), nullable=False),
                    sa.Column('cidr', sa.String(length=64), nullable=False),
                    sa.Column('gateway', sa.String(length=45), nullable=True),
                    sa.Column('dns', sa.JSON(), nullable=True),
                    sa.Column('alloc_start', sa.String(length=45), nullable=False),
                    sa.Column('alloc_end', sa.String(length=45), nullable=False),
                    sa.Column('cidr6', sa.String(length=64), nullable=True),
                    sa.Column('gateway6', sa.String(length=45), nullable=True),
                    sa.Column('description', sa.Text(), nullable=True),
                    sa.Column('created_by', sa.String(length=36), nullable=True),
                    sa.Column('version', sa.Integer(), nullable=False),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
                    sa.ForeignKeyConstraint(['created_by'], ['users.id']),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('physnet', 'segment', name='uq_networks_segment'))
    op.create_index('ix_networks_tenant', 'networks', ['tenant_id'])
    op.create_table('network_grants',
                    sa.Column('network_id', sa.String(length=36), nullable=False),
                    sa.Column('tenant_id', sa.String(length=36), nullable=False),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.ForeignKeyConstraint(['network_id'], ['networks.id'], ondelete='CASCADE'),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
                    sa.PrimaryKeyConstraint('network_id', 'tenant_id'))
    op.create_table('ports',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('network_id', sa.String(length=36), nullable=False),
                    sa.Column('tenant_id', sa.String(length=36), nullable=False),
                    sa.Column('vm_id', sa.String(length=36), nullable=True),
                    sa.Column('device_index', sa.Integer(), nullable=True),
                    sa.Column('mac', sa.String(length=17), nullable=False),
                    sa.Column('address', sa.String(length=45), nullable=False),
                    sa.Column('address6', sa.String(length=45), nullable=True),
                    sa.Column('reserved', sa.Boolean(), nullable=False),
                    sa.Column('name', sa.String(length=63), nullable=True),
                    sa.Column('created_by', sa.String(length=36), nullable=True),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.ForeignKeyConstraint(['network_id'], ['networks.id']),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
                    sa.ForeignKeyConstraint(['vm_id'], ['vms.id']),
                    sa.ForeignKeyConstraint(['created_by'], ['users.id']),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('network_id', 'address', name='uq_ports_address'),
                    sa.UniqueConstraint('network_id', 'mac', name='uq_ports_mac'))
    op.create_index('ix_ports_vm', 'ports', ['vm_id'])
    op.create_index('ix_ports_tenant', 'ports', ['tenant_id'])
    op.create_table('security_groups',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('tenant_id', sa.String(length=36), nullable=False),
                    sa.Column('name', sa.String(length=63), nullable=False),
                    sa.Column('description', sa.Text(), nullable=True),
                    sa.Column('version', sa.Integer(), nullable=False),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('tenant_id', 'name', name='uq_security_groups_name'))
    op.create_table('security_rules',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('group_id', sa.String(length=36), nullable=False),
                    sa.Column('protocol', sa.String(length=8), nullable=False),
                    sa.Column('port_min', sa.Integer(), nullable=True),
                    sa.Column('port_max', sa.Integer(), nullable=True),
                    sa.Column('remote_cidr', sa.String(length=64), nullable=True),
                    sa.Column('remote_group_id', sa.String(length=36), nullable=True),
                    sa.Column('description', sa.Text(), nullable=True),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.ForeignKeyConstraint(['group_id'], ['security_groups.id'], ondelete='CASCADE'),
                    sa.ForeignKeyConstraint(['remote_group_id'], ['security_groups.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_security_rules_group_id', 'security_rules', ['group_id'])
    op.create_table('port_security_groups',
                    sa.Column('port_id', sa.String(length=36), nullable=False),
                    sa.Column('group_id', sa.String(length=36), nullable=False),
                    sa.ForeignKeyConstraint(['port_id'], ['ports.id'], ondelete='CASCADE'),
                    sa.ForeignKeyConstraint(['group_id'], ['security_groups.id']),
                    sa.PrimaryKeyConstraint('port_id', 'group_id'))
    with op.batch_alter_table('hosts') as batch:
        batch.add_column(sa.Column('physnets', sa.JSON(), nullable=True))
    with op.batch_alter_table('tenants') as batch:
        batch.add_column(sa.Column('quota_networks', sa.Integer(), nullable=False, server_default='5'))
        batch.add_column(sa.Column('quota_addresses', sa.Integer(), nullable=False, server_default='200'))


def downgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('quota_addresses')
        batch.drop_column('quota_networks')
    with op.batch_alter_table('hosts') as batch:
        batch.drop_column('physnets')
    op.drop_table('port_security_groups')
    op.drop_index('ix_security_rules_group_id', table_name='security_rules')
    op.drop_table('security_rules')
    op.drop_table('security_groups')
    op.drop_index('ix_ports_tenant', table_name='ports')
    op.drop_index('ix_ports_vm', table_name='ports')
    op.drop_table('ports')
    op.drop_table('network_grants')
    op.drop_index('ix_networks_tenant', table_name='networks')
    op.drop_table('networks')
