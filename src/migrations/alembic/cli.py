# `alembic` as the app's replicas run it at start-up (`alembic upgrade head`),
# run by rehearse with the project's interpreter in the project's folder, after
# prelude.py (which rehearse puts first), with one difference: the database
# URL rehearse gives in REHEARSE_ALEMBIC_URL, with the driver prelude.py
# chooses, is the sqlalchemy.url (and `{sqlalchemy_url}` in the environment),
# so whatever alembic.ini names (another server) is never used. An env.py that
# reads DATABASE_URL finds the same database there.
import sys

from alembic.config import CommandLine


class RehearseCommandLine(CommandLine):
    def run_cmd(self, config, options):
        try:
            url = rehearse_url(config)  # noqa: F821 (prelude.py)
        except NoDriver as e:  # noqa: F821 (prelude.py)
            sys.exit("rehearse: no PostgreSQL driver for SQLAlchemy in %s: %s" % (sys.executable, e))
        # ConfigParser interpolation: a literal % must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
        super().run_cmd(config, options)


RehearseCommandLine(prog="alembic").main(sys.argv[1:])
