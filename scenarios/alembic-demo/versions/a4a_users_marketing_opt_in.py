"""users.marketing_opt_in (constant default: no rewrite)

Revision ID: a4a_users_marketing_opt_in
"""
import sqlalchemy as sa
from alembic import op

revision = "a4a_users_marketing_opt_in"
down_revision = "a3_orders_refund_reason"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("marketing_opt_in", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    pass
