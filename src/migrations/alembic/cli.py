# `alembic` as the app's replicas run it at start-up (`alembic upgrade head`),
# run by rehearse with the project's interpreter in the project's folder, with
# one difference: the database URL rehearse gives in REHEARSE_ALEMBIC_URL is
# the sqlalchemy.url, so whatever alembic.ini names (another server) is never
# used. An env.py that reads DATABASE_URL finds the same database there.
import os
import sys

from alembic.config import CommandLine


class RehearseCommandLine(CommandLine):
    def run_cmd(self, config, options):
        # ConfigParser interpolation: a literal % must be doubled.
        config.set_main_option("sqlalchemy.url", os.environ["REHEARSE_ALEMBIC_URL"].replace("%", "%%"))
        super().run_cmd(config, options)


RehearseCommandLine(prog="alembic").main(sys.argv[1:])
