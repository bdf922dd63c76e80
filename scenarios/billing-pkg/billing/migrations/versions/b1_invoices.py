"""billing: invoices table

Revision ID: b1_invoices
"""
from alembic import op

revision = "b1_invoices"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE billing_invoices (id bigserial PRIMARY KEY, order_id bigint NOT NULL, cents bigint NOT NULL)")


def downgrade():
    op.execute("DROP TABLE billing_invoices")
