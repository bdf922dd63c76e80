"""baseline schema (in production)

Revision ID: a1_baseline
"""
import sqlalchemy as sa
from alembic import op

revision = "a1_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    pass  # users, coupons, orders, order_items: scenarios/demo/migrations/0001


def downgrade():
    pass
