"""merge the marketing and shipments branches

Revision ID: a5_merge
"""
import sqlalchemy as sa
from alembic import op

revision = "a5_merge"
down_revision = ("a4a_users_marketing_opt_in", "a4b_shipments")
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
