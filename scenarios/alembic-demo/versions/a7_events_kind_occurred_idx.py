"""index events (kind, occurred_at): not concurrent

Revision ID: a7_events_kind_occurred_idx
"""
import sqlalchemy as sa
from alembic import op

revision = "a7_events_kind_occurred_idx"
down_revision = "a6_backfill_refund_reason"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("events_kind_occurred_at_idx", "events", ["kind", "occurred_at"])


def downgrade():
    pass
