"""the deployment secret: one row that every key of ours is derived from

Revision ID: 0005_deployment_secret
Revises: 0004_stream_closing

The row is generated here (and again by ``voxqueue db upgrade`` if it is ever missing),
unless ``VOXQUEUE_SECRET_KEY`` is set: that setting wins, and a deployment that gives
it keeps no secret in its database.
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = '0005_deployment_secret'
down_revision = '0004_stream_closing'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('deployment_secret',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('value', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployment_secret'))
    )
    from config.settings import get_settings

    if get_settings().secret_key is None:
        op.bulk_insert(table, [{'id': 1, 'value': secrets.token_urlsafe(32)}])


def downgrade() -> None:
    op.drop_table('deployment_secret')
