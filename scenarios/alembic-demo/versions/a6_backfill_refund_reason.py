"""backfill refund_reason for refunded orders

Revision ID: a6_backfill_refund_reason
"""
import sqlalchemy as sa
from alembic import op

revision = "a6_backfill_refund_reason"
down_revision = "a5_merge"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("UPDATE orders SET refund_reason = 'unknown' WHERE status = 'refunded'")


def downgrade():
    pass
