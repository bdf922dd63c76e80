"""10,000 small statements in one revision, as a data migration sends them

Revision ID: t1_many_statements
"""
import sys
import time

from alembic import op

revision = "t1_many_statements"
down_revision = None
branch_labels = None
depends_on = None

ROWS = 5000
RUN = 100


def upgrade():
    started = time.perf_counter()
    op.execute("CREATE TABLE bench_rows (id int PRIMARY KEY, note text, touched int NOT NULL DEFAULT 0)")
    # Runs of 100 INSERTs and 100 UPDATEs, alternating: 10,000 statements of
    # two shapes, in 100 runs (a loop over rows, in chunks).
    for chunk in range(0, ROWS, RUN):
        for i in range(chunk, chunk + RUN):
            op.execute(f"INSERT INTO bench_rows (id, note) VALUES ({i}, 'row {i}')")
        for i in range(chunk, chunk + RUN):
            op.execute(f"UPDATE bench_rows SET touched = touched + 1 WHERE id = {i}")
    op.execute("CREATE INDEX bench_rows_touched ON bench_rows (touched)")
    # What the revision itself took, for bench/tracing.sh's "by hand" column.
    print(f"bench-revision-seconds {time.perf_counter() - started:.4f}", file=sys.stderr)


def downgrade():
    pass
