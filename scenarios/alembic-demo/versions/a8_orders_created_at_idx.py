"""index orders.created_at concurrently

Revision ID: a8_orders_created_at_idx
"""
import sqlalchemy as sa
from alembic import op

revision = "a8_orders_created_at_idx"
down_revision = "a7_events_kind_occurred_idx"
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index("orders_created_at_idx", "orders", ["created_at"], postgresql_concurrently=True)


def downgrade():
    pass
