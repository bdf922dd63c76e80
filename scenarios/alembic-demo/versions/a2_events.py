"""events table (in production)

Revision ID: a2_events
"""
import sqlalchemy as sa
from alembic import op

revision = "a2_events"
down_revision = "a1_baseline"
branch_labels = None
depends_on = None


def upgrade():
    pass  # events: scenarios/demo/migrations/0002


def downgrade():
    pass
