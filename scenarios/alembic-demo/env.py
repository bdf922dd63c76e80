"""The demo app's env.py: it reads DATABASE_URL, as the app does in Kubernetes.

Production runs `alembic upgrade head` in a pre-deploy Job; rehearse runs the
same revisions one at a time against a throwaway copy of production.
"""
import os

from alembic import context
from sqlalchemy import create_engine, pool


def run_migrations_offline():
    context.configure(url=os.environ["DATABASE_URL"], literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(os.environ["DATABASE_URL"], poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
