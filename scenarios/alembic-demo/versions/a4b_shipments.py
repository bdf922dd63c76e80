"""shipments table (a second branch)

Revision ID: a4b_shipments
"""
import sqlalchemy as sa
from alembic import op

revision = "a4b_shipments"
down_revision = "a3_orders_refund_reason"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "shipments",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("order_id", sa.BigInteger(), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("carrier", sa.Text(), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True)),
    )


def downgrade():
    pass
