"""billing: a column on the shop's orders table

Revision ID: b2_orders_invoice_ref
"""
from alembic import op

revision = "b2_orders_invoice_ref"
down_revision = "b1_invoices"
branch_labels = None
depends_on = None


def upgrade():
    # Another app's table: an ACCESS EXCLUSIVE lock on the shop's orders.
    op.execute("ALTER TABLE orders ADD COLUMN invoice_id bigint")


def downgrade():
    op.execute("ALTER TABLE orders DROP COLUMN invoice_id")
