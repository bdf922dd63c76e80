# rehearse's prelude to the Python it runs with the project's interpreter
# (helper.py, cli.py, the version check): rehearse puts it first, so it runs
# before any other import.
#
# `python -c` puts the working folder (the one holding alembic.ini) first on
# sys.path. A package there named like a standard module (Airflow's
# airflow/logging/, beside its alembic.ini) then shadows it, and SQLAlchemy's
# `import logging` finds the wrong one. The `alembic` command, a console
# script, does not have that folder on sys.path: neither does rehearse.
# PYTHONPATH is kept as given, and alembic.ini's prepend_sys_path still
# adds the folder when the project asks (once the standard modules are loaded).
import os as _os
import sys as _sys


def _rehearse_drop_working_folder():
    try:
        here = _os.path.realpath(_os.getcwd())
    except OSError:
        here = None
    asked = {_os.path.realpath(p) for p in _os.environ.get("PYTHONPATH", "").split(_os.pathsep) if p}
    _sys.path[:] = [p for p in _sys.path if p and (_os.path.realpath(p) != here or _os.path.realpath(p) in asked)]


_rehearse_drop_working_folder()

import re as _re  # noqa: E402

# The drivers tried, in order, when nobody names one: SQLAlchemy 2.1's
# default for a bare postgresql:// URL, then 2.0's.
_DEFAULT_DRIVERS = ("psycopg", "psycopg2")
# What to pip install for a driver, when it is not the driver's own name.
_PIP_NAMES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "psycopg_async": "psycopg[binary]"}


class NoDriver(Exception):
    """No PostgreSQL driver SQLAlchemy can load: the one named (and where), or none of the defaults."""

    def __init__(self, driver, said_in, tried, message):
        super().__init__(message)
        self.fields = {
            "driver": driver,
            "said_in": said_in,
            "tried": tried,
            "message": message,
            "install": _PIP_NAMES.get(driver or "psycopg2", driver),
            "python": _sys.executable,
        }


def _url_driver(url):
    """The driver a postgres URL names (`postgresql+psycopg2://` → psycopg2), else None."""
    found = _re.match(r"\s*postgres(?:ql)?\+(\w+)://", url or "")
    return found.group(1) if found else None


def _load_driver(driver):
    """Loads SQLAlchemy's postgresql dialect for `driver` and its DBAPI module;
    None when it loads, else why not."""
    import sqlalchemy

    try:
        dialect = sqlalchemy.engine.make_url("postgresql+%s://" % driver).get_dialect()
        load = getattr(dialect, "import_dbapi", None) or dialect.dbapi
        load()
        return None
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)


def rehearse_driver(ini_url):
    """(driver, where it was named): migrations.driver, or the driver of the
    user's DATABASE_URL, as rehearse passes it; else the one alembic.ini's
    sqlalchemy.url names; else the first of psycopg (3) and psycopg2 that
    loads. Raises NoDriver when the one named, or every default, does not load."""
    said, said_in = _os.environ.get("REHEARSE_ALEMBIC_DRIVER"), _os.environ.get("REHEARSE_ALEMBIC_DRIVER_FROM")
    if not said and _url_driver(ini_url):
        said, said_in = _url_driver(ini_url), "sqlalchemy.url in alembic.ini"
    if said:
        why = _load_driver(said)
        if why:
            raise NoDriver(said, said_in, [said], why)
        return said, said_in
    tried = []
    for driver in _DEFAULT_DRIVERS:
        why = _load_driver(driver)
        if why is None:
            return driver, "the first PostgreSQL driver this Python imports"
        tried.append("%s (%s)" % (driver, why))
    raise NoDriver(None, None, list(_DEFAULT_DRIVERS), "; ".join(tried))


def ini_url(cfg):
    """alembic.ini's sqlalchemy.url, as written (None when it has an interpolation it cannot resolve)."""
    try:
        return cfg.get_main_option("sqlalchemy.url")
    except Exception:
        return None


def rehearse_url(cfg):
    """The throwaway database's URL for SQLAlchemy, with the chosen driver
    (`postgresql+<driver>://`), from the one rehearse passes in
    REHEARSE_ALEMBIC_URL; `{sqlalchemy_url}` in the environment
    (migrations.env) becomes it too, before env.py reads it."""
    driver, _ = rehearse_driver(ini_url(cfg))
    url = _re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql+%s://" % driver, _os.environ["REHEARSE_ALEMBIC_URL"])
    for name, value in list(_os.environ.items()):
        if "{sqlalchemy_url}" in value:
            _os.environ[name] = value.replace("{sqlalchemy_url}", url)
    return url
