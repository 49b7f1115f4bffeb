"""running totals of claims per host and per tenant; audit entries sealed into the chain after commit

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 19:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None



def counts() -> list[sa.Column]:
    return [sa.Column(c, sa.Integer(), nullable=False) for c in ('vcpus', 'ram_mib', 'disk_gib', 'vms')]


def upgrade() -> None:
    op.create_table('host_allocations',
                    sa.Column('host_id', sa.String(length=36), nullable=False),
                    *counts(),
                    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('host_id'))
    op.create_table('tenant_usage',
                    sa.Column('tenant_id', sa.String(length=36), nullable=False),
                    *counts(),
                    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('tenant_id'))
    live = "state <> 'DELETED'"
    op.execute(f"""INSERT INTO host_allocations (host_id, vcpus, ram_mib, disk_gib, vms)
        SELECT h.id, COALESCE(SUM(c.vcpus), 0), COALESCE(SUM(c.ram_mib), 0), COALESCE(SUM(c.disk_gib), 0),
               COUNT(c.host)
        FROM hosts h LEFT JOIN (
            SELECT host_id AS host, vcpus, ram_mib, disk_gib FROM vms WHERE host_id IS NOT NULL AND {live}
            UNION ALL
            SELECT migration_target_id, vcpus, ram_mib, disk_gib FROM vms
            WHERE migration_target_id IS NOT NULL AND {live}) c ON c.host = h.id
        GROUP BY h.id""")
    op.execute(f"""INSERT INTO tenant_usage (tenant_id, vcpus, ram_mib, disk_gib, vms)
        SELECT t.id, COALESCE(SUM(v.vcpus), 0), COALESCE(SUM(v.ram_mib), 0), COALESCE(SUM(v.disk_gib), 0),
               COUNT(v.id)
        FROM tenants t LEFT JOIN vms v ON v.tenant_id = t.id AND v.host_id IS NOT NULL AND v.{live}
        GROUP BY t.id""")
    with op.batch_alter_table('audit_entries') as batch:
        batch.add_column(sa.Column('chain_seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch.create_unique_constraint('uq_audit_entries_chain_seq', ['chain_seq'])
        batch.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=True)
        batch.alter_column('entry_hash', existing_type=sa.String(length=64), nullable=True)
    op.execute("UPDATE audit_entries SET chain_seq = seq")  # every existing entry is sealed, in seq order
    if op.get_bind().dialect.name == "postgresql":  # seq used to be assigned by hand: move its sequence on
        op.execute("SELECT setval(pg_get_serial_sequence('audit_entries', 'seq'), "
                   "COALESCE((SELECT MAX(seq) FROM audit_entries), 0) + 1, false)")


def downgrade() -> None:
    op.execute("DELETE FROM audit_entries WHERE entry_hash IS NULL")  # unsealed entries cannot go back
    with op.batch_alter_table('audit_entries') as batch:
        batch.alter_column('entry_hash', existing_type=sa.String(length=64), nullable=False)
        batch.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch.drop_constraint('uq_audit_entries_chain_seq', type_='unique')
        batch.drop_column('chain_seq')
    op.drop_table('tenant_usage')
    op.drop_table('host_allocations')
