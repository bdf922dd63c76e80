"""baseline schema (in production)

Revision ID: a1_baseline
"""
from pathlib import Path

import sqlalchemy as sa
from alembic import op

# Production ran the SQL folder's 0001_create_schema.sql before this tree took over; a
# database built from empty (rehearse drift) runs the same file here.
SQL = Path(__file__).resolve().parents[2] / "demo" / "migrations" / "0001_create_schema.sql"

revision = "a1_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute(SQL.read_text())  # users, coupons, orders, order_items


def downgrade():
    pass
