"""orders.refund_reason, with a lock_timeout

Revision ID: a3_orders_refund_reason
"""
import sqlalchemy as sa
from alembic import op

revision = "a3_orders_refund_reason"
down_revision = "a2_events"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("SET lock_timeout = '2s'")
    op.add_column("orders", sa.Column("refund_reason", sa.Text()))


def downgrade():
    pass
