"""the audit log becomes an RFC 9162 Merkle tree: per-municipality numbers, salts, signed tree heads

Every entry is sealed again in the new hashed form (the sealer does it, in sequence order, after the upgrade):
run `confluencia audit verify` before upgrading to check the old hash chain one last time.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 17:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('audit_entries') as batch:
        batch.add_column(sa.Column('tenant_seq', BIG, nullable=True))
        batch.add_column(sa.Column('salt', sa.String(length=32), nullable=True))
        batch.drop_column('prev_hash')
        batch.create_index('ix_audit_tenant_number', ['tenant_id', 'tenant_seq'], unique=True)
    op.execute("UPDATE audit_entries SET chain_seq = NULL, entry_hash = NULL")
    # salts for the entries written before salts existed (32 hex digits from the database's random source)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE audit_entries SET salt = md5(random()::text || clock_timestamp()::text || seq::text)")
    else:
        op.execute("UPDATE audit_entries SET salt = lower(hex(randomblob(16)))")
    op.execute("UPDATE audit_head SET last_hash = '', last_seq = 0")
    op.create_table('audit_tree_heads',
                    sa.Column('tree_size', BIG, autoincrement=False, nullable=False),
                    sa.Column('root_hash', sa.String(length=64), nullable=False),
                    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('statement', sa.JSON(), nullable=False),
                    sa.PrimaryKeyConstraint('tree_size'))


def downgrade() -> None:
    op.drop_table('audit_tree_heads')
    op.execute("UPDATE audit_entries SET chain_seq = NULL, entry_hash = NULL")
    op.execute("UPDATE audit_head SET last_hash = '" + "0" * 64 + "', last_seq = 0")
    with op.batch_alter_table('audit_entries') as batch:
        batch.drop_index('ix_audit_tenant_number')
        batch.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch.drop_column('salt')
        batch.drop_column('tenant_seq')
