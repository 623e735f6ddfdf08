"""checks.holder: the worker process that holds (or last held) a check's lease; markers

Revision ID: 0003_check_holder
Revises: 0002
Create Date: 2026-12-01 20:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_check_holder"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("holder", sa.String(length=96), nullable=True))
    op.create_table(
        "markers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("(CURRENT_TIMESTAMP)"),
                  nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_markers")),
    )


def downgrade() -> None:
    op.drop_table("markers")
    with op.batch_alter_table("checks") as batch:
        batch.drop_column("holder")
