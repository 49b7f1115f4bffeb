"""the SSH host agent: hosts.agent_ssh (its address), host_agent_state (the facts it gathered and how they
disagree with the registration, the smoothed measured load and the last sample)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 20:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('hosts') as batch:
        batch.add_column(sa.Column('agent_ssh', sa.String(length=300), nullable=True))
    op.create_table('host_agent_state',
                    sa.Column('host_id', sa.String(length=36), nullable=False),
                    sa.Column('agent_error', sa.Text(), nullable=True),
                    sa.Column('facts', sa.JSON(), nullable=True),
                    sa.Column('facts_at', sa.DateTime(timezone=True), nullable=True),
                    sa.Column('facts_mismatch', sa.JSON(), nullable=True),
                    sa.Column('load_cpu', sa.Float(), nullable=True),
                    sa.Column('load_mem', sa.Float(), nullable=True),
                    sa.Column('load_sample', sa.JSON(), nullable=True),
                    sa.Column('load_at', sa.DateTime(timezone=True), nullable=True),
                    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('host_id'))


def downgrade() -> None:
    op.drop_table('host_agent_state')
    with op.batch_alter_table('hosts') as batch:
        batch.drop_column('agent_ssh')
