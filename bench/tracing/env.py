"""The env.py `alembic init` writes (one transaction for the release), for
bench/tracing.sh: by hand the database is BENCH_URL's; under rehearse,
sqlalchemy.url is the throwaway database."""
import os

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
if os.environ.get("BENCH_URL"):
    config.set_main_option("sqlalchemy.url", os.environ["BENCH_URL"])


def run_migrations_online():
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
