"""usage accounting: one interval per VM and size it counted with (running, or stopped with its disk)

The VMs that count when this runs start their first interval now: their usage before it is not known.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 18:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('usage_intervals',
                    sa.Column('id', BIG, autoincrement=True, nullable=False),
                    sa.Column('vm_id', sa.String(length=36), nullable=False),
                    sa.Column('tenant_id', sa.String(length=36), nullable=False),
                    sa.Column('kind', sa.String(length=8), nullable=False),
                    sa.Column('vcpus', sa.Integer(), nullable=False),
                    sa.Column('ram_mib', sa.Integer(), nullable=False),
                    sa.Column('disk_gib', sa.Integer(), nullable=False),
                    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
                    sa.ForeignKeyConstraint(['vm_id'], ['vms.id']),
                    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_usage_tenant_span', 'usage_intervals', ['tenant_id', 'started_at'])
    op.create_index('ix_usage_open', 'usage_intervals', ['vm_id', 'ended_at'])
    now = "date_trunc('second', now())" if op.get_bind().dialect.name == "postgresql" else "strftime('%Y-%m-%d %H:%M:%S', 'now')"
    op.execute(f"""INSERT INTO usage_intervals (vm_id, tenant_id, kind, vcpus, ram_mib, disk_gib, started_at)
        SELECT id, tenant_id, CASE WHEN state = 'STOPPED' THEN 'stopped' ELSE 'running' END,
               vcpus, ram_mib, disk_gib, {now}
        FROM vms WHERE state IN ('ACTIVE', 'MIGRATING', 'STOPPED')""")


def downgrade() -> None:
    op.drop_index('ix_usage_open', table_name='usage_intervals')
    op.drop_index('ix_usage_tenant_span', table_name='usage_intervals')
    op.drop_table('usage_intervals')
