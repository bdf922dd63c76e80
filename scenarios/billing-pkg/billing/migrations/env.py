"""The billing package's env.py: its own version table, so it can share a database with other apps."""
from alembic import context
from sqlalchemy import engine_from_config, pool

VERSION_TABLE = "billing_alembic_version"


def run_migrations_offline():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True, version_table=VERSION_TABLE
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = engine_from_config(context.config.get_section(context.config.config_ini_section), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
