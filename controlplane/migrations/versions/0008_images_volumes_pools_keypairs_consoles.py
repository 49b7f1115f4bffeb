"""images, storage pools, data volumes, keypairs, console tokens; VMs get a root disk from an image

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def stamps() -> list[sa.Column]:
    return [sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False)]


def upgrade() -> None:
    op.create_table('storage_pools',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('name', sa.String(length=63), nullable=False),
                    sa.Column('kind', sa.String(length=8), nullable=False),
                    sa.Column('capacity_gib', sa.Integer(), nullable=True),
                    sa.Column('is_default', sa.Boolean(), nullable=False),
                    sa.Column('full_copy', sa.Boolean(), nullable=False),
                    sa.Column('description', sa.Text(), nullable=True),
                    sa.Column('version', sa.Integer(), nullable=False),
                    *stamps(),
                    sa.CheckConstraint('capacity_gib IS NULL OR capacity_gib >= 0', name='ck_storage_pools_capacity'),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('name'))
    op.create_table('pool_allocations',
                    sa.Column('pool_id', sa.String(length=36), nullable=False),
                    sa.Column('disk_gib', sa.Integer(), nullable=False),
                    sa.ForeignKeyConstraint(['pool_id'], ['storage_pools.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('pool_id'))
    op.create_table('images',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('tenant_id', sa.String(length=36), nullable=True),
                    sa.Column('name', sa.String(length=63), nullable=False),
                    sa.Column('os_name', sa.String(length=63), nullable=True),
                    sa.Column('os_version', sa.String(length=63), nullable=True),
                    sa.Column('source', sa.Text(), nullable=False),
                    sa.Column('format', sa.String(length=8), nullable=True),
                    sa.Column('checksum', sa.String(length=80), nullable=False),
                    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
                    sa.Column('virtual_size_bytes', sa.BigInteger(), nullable=True),
                    sa.Column('min_disk_gib', sa.Integer(), nullable=False),
                    sa.Column('min_ram_mib', sa.Integer(), nullable=False),
                    sa.Column('state', sa.String(length=16), nullable=False),
                    sa.Column('status_reason', sa.Text(), nullable=True),
                    sa.Column('created_by', sa.String(length=36), nullable=True),
                    sa.Column('version', sa.Integer(), nullable=False),
                    *stamps(),
                    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
                    sa.CheckConstraint('min_disk_gib >= 0 AND min_ram_mib >= 0', name='ck_images_minimums'),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
                    sa.ForeignKeyConstraint(['created_by'], ['users.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_images_tenant_state', 'images', ['tenant_id', 'state'])
    op.create_table('keypairs',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('tenant_id', sa.String(length=36), nullable=False),
                    sa.Column('name', sa.String(length=63), nullable=False),
                    sa.Column('public_key', sa.Text(), nullable=False),
                    sa.Column('key_type', sa.String(length=40), nullable=False),
                    sa.Column('fingerprint', sa.String(length=64), nullable=False),
                    sa.Column('created_by', sa.String(length=36), nullable=True),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
                    sa.ForeignKeyConstraint(['created_by'], ['users.id']),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('tenant_id', 'name', name='uq_keypairs_tenant_name'))
    with op.batch_alter_table('vms') as batch:
        batch.add_column(sa.Column('image_id', sa.String(length=36), nullable=True))
        batch.add_column(sa.Column('pool_id', sa.String(length=36), nullable=True))
        batch.add_column(sa.Column('host_disk_gib', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('hostname', sa.String(length=63), nullable=True))
        batch.add_column(sa.Column('ssh_keys', sa.Text(), nullable=True))
        batch.add_column(sa.Column('key_name', sa.String(length=63), nullable=True))
        batch.add_column(sa.Column('user_data', sa.Text(), nullable=True))
        batch.add_column(sa.Column('network', sa.JSON(), nullable=True))
        batch.create_foreign_key('fk_vms_image_id', 'images', ['image_id'], ['id'])
        batch.create_foreign_key('fk_vms_pool_id', 'storage_pools', ['pool_id'], ['id'])
    op.execute("UPDATE vms SET host_disk_gib = disk_gib")  # every VM so far claimed its disk on its host
    with op.batch_alter_table('vms') as batch:
        batch.create_check_constraint('ck_vms_host_disk', 'host_disk_gib >= 0 AND host_disk_gib <= disk_gib')
    op.create_table('volumes',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('tenant_id', sa.String(length=36), nullable=False),
                    sa.Column('name', sa.String(length=63), nullable=False),
                    sa.Column('size_gib', sa.Integer(), nullable=False),
                    sa.Column('previous_size_gib', sa.Integer(), nullable=True),
                    sa.Column('pool_id', sa.String(length=36), nullable=False),
                    sa.Column('vm_id', sa.String(length=36), nullable=True),
                    sa.Column('host_id', sa.String(length=36), nullable=True),
                    sa.Column('native_id', sa.String(length=500), nullable=True),
                    sa.Column('device', sa.String(length=16), nullable=True),
                    sa.Column('state', sa.String(length=16), nullable=False),
                    sa.Column('status_reason', sa.Text(), nullable=True),
                    sa.Column('created_by', sa.String(length=36), nullable=True),
                    sa.Column('version', sa.Integer(), nullable=False),
                    *stamps(),
                    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
                    sa.CheckConstraint('size_gib > 0', name='ck_volumes_size_pos'),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
                    sa.ForeignKeyConstraint(['pool_id'], ['storage_pools.id']),
                    sa.ForeignKeyConstraint(['vm_id'], ['vms.id']),
                    sa.ForeignKeyConstraint(['host_id'], ['hosts.id']),
                    sa.ForeignKeyConstraint(['created_by'], ['users.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_volumes_tenant_state', 'volumes', ['tenant_id', 'state'])
    op.create_index('ix_volumes_vm', 'volumes', ['vm_id'])
    op.create_table('console_tokens',
                    sa.Column('id', sa.String(length=36), nullable=False),
                    sa.Column('token_hash', sa.String(length=64), nullable=False),
                    sa.Column('vm_id', sa.String(length=36), nullable=False),
                    sa.Column('tenant_id', sa.String(length=36), nullable=False),
                    sa.Column('host', sa.String(length=255), nullable=False),
                    sa.Column('port', sa.Integer(), nullable=False),
                    sa.Column('password', sa.Text(), nullable=True),
                    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
                    sa.Column('created_by', sa.String(length=36), nullable=True),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.ForeignKeyConstraint(['vm_id'], ['vms.id']),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id']),
                    sa.ForeignKeyConstraint(['created_by'], ['users.id']),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('token_hash'))
    op.create_index('ix_console_tokens_vm_id', 'console_tokens', ['vm_id'])
    with op.batch_alter_table('hosts') as batch:
        batch.add_column(sa.Column('storage_pools', sa.JSON(), nullable=True))
    with op.batch_alter_table('tenants') as batch:
        batch.add_column(sa.Column('quota_images', sa.Integer(), nullable=False, server_default='5'))
    with op.batch_alter_table('operations') as batch:
        batch.add_column(sa.Column('params', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('operations') as batch:
        batch.drop_column('params')
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('quota_images')
    with op.batch_alter_table('hosts') as batch:
        batch.drop_column('storage_pools')
    op.drop_index('ix_console_tokens_vm_id', table_name='console_tokens')
    op.drop_table('console_tokens')
    op.drop_index('ix_volumes_vm', table_name='volumes')
    op.drop_index('ix_volumes_tenant_state', table_name='volumes')
    op.drop_table('volumes')
    with op.batch_alter_table('vms') as batch:
        batch.drop_constraint('ck_vms_host_disk', type_='check')
        batch.drop_constraint('fk_vms_pool_id', type_='foreignkey')
        batch.drop_constraint('fk_vms_image_id', type_='foreignkey')
        for column in ('network', 'user_data', 'key_name', 'ssh_keys', 'hostname', 'host_disk_gib', 'pool_id',
                       'image_id'):
            batch.drop_column(column)
    op.drop_table('keypairs')
    op.drop_index('ix_images_tenant_state', table_name='images')
    op.drop_table('images')
    op.drop_table('pool_allocations')
    op.drop_table('storage_pools')
