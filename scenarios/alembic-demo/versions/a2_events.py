"""events table (in production)

Revision ID: a2_events
"""
from pathlib import Path

import sqlalchemy as sa
from alembic import op

# Production ran the SQL folder's 0002_add_events.sql before this tree took over; a
# database built from empty (rehearse drift) runs the same file here.
SQL = Path(__file__).resolve().parents[2] / "demo" / "migrations" / "0002_add_events.sql"

revision = "a2_events"
down_revision = "a1_baseline"
branch_labels = None
depends_on = None


def upgrade():
    op.execute(SQL.read_text())  # events


def downgrade():
    pass
