"""stream closing: when a live stream's close was accepted

Revision ID: 0004_stream_closing
Revises: 0003_check_holder
Create Date: 2026-11-24 10:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0004_stream_closing'
down_revision = '0003_check_holder'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
