"""frames reviewers see (case frames and no-candidate samples), and the detector's class of a
case

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('frames',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('source_kind', sa.String(length=20), nullable=False),
    sa.Column('source_id', sa.String(length=200), nullable=False),
    sa.Column('captured_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('model', sa.JSON(), nullable=False),
    sa.Column('added', sa.JSON(), nullable=False),
    sa.Column('reviewed_by', sa.String(length=100), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_index(op.f('ix_frames_job_id'), 'frames', ['job_id'], unique=False)
    op.create_index(op.f('ix_frames_kind'), 'frames', ['kind'], unique=False)
    op.create_index(op.f('ix_frames_reviewed_at'), 'frames', ['reviewed_at'], unique=False)
    with op.batch_alter_table('cases') as batch:
        batch.add_column(sa.Column('detected', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('frame', sa.String(length=64), nullable=True))
        batch.create_index(batch.f('ix_cases_frame'), ['frame'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cases') as batch:
        batch.drop_index(batch.f('ix_cases_frame'))
        batch.drop_column('frame')
        batch.drop_column('detected')
    op.drop_index(op.f('ix_frames_reviewed_at'), table_name='frames')
    op.drop_index(op.f('ix_frames_kind'), table_name='frames')
    op.drop_index(op.f('ix_frames_job_id'), table_name='frames')
    op.drop_table('frames')
