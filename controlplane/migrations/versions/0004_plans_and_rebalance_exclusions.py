"""plans and rebalance exclusions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 11:11:16.873002
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('executor_locks',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('holder', sa.String(length=36), nullable=True),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    locks = sa.table('executor_locks', sa.column('name', sa.String))
    op.bulk_insert(locks, [{'name': 'plan-executor'}])
    op.create_table('plans',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('host_id', sa.String(length=36), nullable=True),
    sa.Column('budget', sa.JSON(), nullable=False),
    sa.Column('on_failure', sa.String(length=16), nullable=False),
    sa.Column('predicted', sa.JSON(), nullable=False),
    sa.Column('achieved', sa.JSON(), nullable=True),
    sa.Column('unplaced', sa.JSON(), nullable=False),
    sa.Column('cost_ram_mib', sa.Float(), nullable=False),
    sa.Column('current_wave', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('operation_id', sa.String(length=36), nullable=True),
    sa.Column('created_by', sa.String(length=36), nullable=True),
    sa.Column('approved_by', sa.String(length=36), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.create_index('ix_plans_status', ['status'], unique=False)

    op.create_table('plan_moves',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('plan_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('vm_id', sa.String(length=36), nullable=False),
    sa.Column('source_host_id', sa.String(length=36), nullable=False),
    sa.Column('target_host_id', sa.String(length=36), nullable=False),
    sa.Column('cost_ram_mib', sa.Float(), nullable=False),
    sa.Column('gain', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('operation_id', sa.String(length=36), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('plan_moves', schema=None) as batch_op:
        batch_op.create_index('ix_plan_moves_plan_seq', ['plan_id', 'seq'], unique=True)

    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('exclude_from_rebalance', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('exclude_from_rebalance', sa.Boolean(), nullable=False, server_default=sa.false()))

    with op.batch_alter_table('vms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pinned', sa.Boolean(), nullable=False, server_default=sa.false()))



def downgrade() -> None:
    with op.batch_alter_table('vms', schema=None) as batch_op:
        batch_op.drop_column('pinned')

    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('exclude_from_rebalance')

    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('exclude_from_rebalance')

    with op.batch_alter_table('plan_moves', schema=None) as batch_op:
        batch_op.drop_index('ix_plan_moves_plan_seq')

    op.drop_table('plan_moves')
    with op.batch_alter_table('plans', schema=None) as batch_op:
        batch_op.drop_index('ix_plans_status')

    op.drop_table('plans')
    op.drop_table('executor_locks')
