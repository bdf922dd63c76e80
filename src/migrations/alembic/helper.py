# rehearse's Alembic helper: run by rehearse with the user's Python, after
# prelude.py (which rehearse puts first: sys.path without the working folder,
# the driver choice), it asks Alembic itself (never `alembic history` text) and
# prints JSON lines that start with MARK; anything else on stdout (an env.py
# that prints) is ignored.
#
#   check    --config INI                 before anything is provisioned: Alembic, SQLAlchemy and a
#                                         PostgreSQL driver import, in the folder and environment of the run
#   discover --config INI --target REV   current heads (read through env.py, as `alembic current` does,
#            [--version-table T] [--version-table-schema S]   so its version table is the one read) and the
#                                         pending revisions, in upgrade order
#   upgrade  --config INI --revision REV  apply one revision in-process, tracing every statement
#   offline  --config INI --revisions JSON  `upgrade prev:rev --sql` for each revision
#
# The database URL (with its password) comes in REHEARSE_ALEMBIC_URL, never on
# the command line; Alembic gets it with the driver prelude.py chooses. Every
# connection SQLAlchemy opens is checked against the identity of the throwaway
# database (REHEARSE_EXPECTED_IDENTITY, read by rehearse with
# REHEARSE_IDENTITY_SQL) before anything runs on it. Every event is one JSON
# object with a "type"; rehearse reads them into an enum
# (src/migrations/alembic/protocol.rs) and refuses anything it does not know.
import time

STARTED = time.time()

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402

MARK = "@@rehearse@@ "
OUT = sys.stdout


def emit(kind, **fields):
    fields["type"] = kind
    OUT.write(MARK + json.dumps(fields, default=str) + "\n")
    OUT.flush()


try:
    import sqlalchemy
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError
except ImportError as e:  # reported as "Alembic not found in this Python"
    emit("missing", message=str(e), python=sys.executable)
    sys.exit(3)

# The query rehearse's own per-statement capture runs (src/catalog/locks.rs,
# OWN_LOCKS), passed in by rehearse: the relation locks this session holds,
# the WAL insert position and lock_timeout.
OWN_LOCKS = os.environ.get("REHEARSE_OWN_LOCKS_SQL", "")


def config(path):
    cfg = Config(path)
    guard_connections()
    try:
        url = rehearse_url(cfg)
    except NoDriver as e:
        emit("no_driver", **e.fields)
        sys.exit(4)
    # ConfigParser interpolation: a literal % must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def check(args):
    """Before anything is provisioned, run as the real runs are (same folder,
    same environment, this prelude): the imports above worked, and a
    PostgreSQL driver SQLAlchemy can use is there."""
    try:
        driver, said_in = rehearse_driver(ini_url(Config(args.config)))
    except NoDriver as e:
        emit("no_driver", **e.fields)
        return 4
    emit("checked", driver=driver, said_in=said_in)
    return 0


def guard_connections():
    """Every connection SQLAlchemy opens (env.py's engine included) must be
    the throwaway database: a PostgreSQL server whose current_database() and
    start time are those rehearse read from it. Anything else (an env.py that
    builds its URL from its own settings, and falls back to SQLite) stops the
    process before a statement runs there."""
    expected = os.environ.get("REHEARSE_EXPECTED_IDENTITY")
    query = os.environ.get("REHEARSE_IDENTITY_SQL")
    if not expected or not query:
        return

    def refuse(rec, database):
        where = rec.info.get("rehearse_where", {})
        emit("wrong_database", **dict(where, database=database or where.get("database")))
        # Not an exception: env.py may catch those and go on.
        os._exit(4)

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "do_connect")
    def where(dialect, rec, cargs, cparams):
        database = cparams.get("dbname") or cparams.get("database") or (cargs[0] if cargs else None)
        rec.info["rehearse_where"] = {
            "dialect": dialect.name,
            "driver": dialect.driver,
            "host": cparams.get("host"),
            "port": None if cparams.get("port") is None else str(cparams.get("port")),
            "database": None if database is None else str(database),
        }
        if dialect.name != "postgresql":
            refuse(rec, None)

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "connect")
    def identify(dbapi_connection, rec):
        cursor = dbapi_connection.cursor()
        cursor.execute(query)
        found = list(cursor.fetchone())
        cursor.close()
        # The query opened a transaction (drivers start one on the first
        # statement): end it, so env.py can still choose an isolation level.
        dbapi_connection.rollback()
        if found != json.loads(expected):
            refuse(rec, found[0])


def current_heads(cfg, script, args):
    """The database's heads, read as `alembic current` reads them: through the
    project's env.py, so the version table (and schema) env.py configures is
    the one read. Returns (heads, table, schema). An env.py that never calls
    run_migrations online falls back to the table the scenario names."""
    from alembic.runtime.environment import EnvironmentContext

    seen = {}

    def read(rev, context):
        seen["heads"] = list(context.get_current_heads())
        seen["table"] = context.version_table
        seen["schema"] = context.version_table_schema
        return []

    with EnvironmentContext(cfg, script, fn=read, dont_mutate=True):
        script.run_env()
    if "heads" in seen:
        return seen["heads"], seen["table"], seen["schema"]
    opts = {"version_table": args.version_table or "alembic_version"}
    if args.version_table_schema:
        opts["version_table_schema"] = args.version_table_schema
    engine = sqlalchemy.create_engine(cfg.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            heads = list(MigrationContext.configure(conn, opts=opts).get_current_heads())
    finally:
        engine.dispose()
    return heads, opts["version_table"], opts.get("version_table_schema")


def discover(args):
    cfg = config(args.config)
    script = ScriptDirectory.from_config(cfg)
    current, table, schema = current_heads(cfg, script, args)
    emit("history", current=current, version_table=table, version_table_schema=schema)
    for rev in current:
        try:
            if script.get_revision(rev) is None:
                raise CommandError("no such revision")
        except Exception:
            emit("unknown_revision", revision=rev, heads=list(script.get_heads()))
            return 3
    try:
        # What `alembic upgrade TARGET` would run: iterate_revisions walks from
        # the target down to the current heads; reversed, it is upgrade order
        # (ScriptDirectory._upgrade_revs does the same), branches and merges included.
        revs = list(script.iterate_revisions(args.target, tuple(current), implicit_base=True))
    except Exception as e:
        emit("bad_target", message=str(e), target=args.target, heads=list(script.get_heads()), current=current)
        return 3
    pending = []
    for s in reversed(revs):
        down = s.down_revision
        downs = list(down) if isinstance(down, (tuple, list)) else ([down] if down else [])
        pending.append(
            {"revision": s.revision, "down": downs, "message": s.doc or "", "path": s.path, "is_merge": len(downs) > 1}
        )
    emit("discovered", current=current, pending=pending, heads=list(script.get_heads()))
    return 0


def upgrade(args):
    cfg = config(args.config)
    held = set()

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute")
    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("rehearse_started", []).append(time.perf_counter())

    @sqlalchemy.event.listens_for(sqlalchemy.engine.Engine, "after_cursor_execute")
    def after(conn, cursor, statement, parameters, context, executemany):
        began = conn.info["rehearse_started"].pop()
        ms = (time.perf_counter() - began) * 1000.0
        locks, wal, timeout = [], None, None
        try:
            if not OWN_LOCKS:
                raise RuntimeError("REHEARSE_OWN_LOCKS_SQL is not set")
            probe = cursor.connection.cursor()
            probe.execute(OWN_LOCKS)
            wal, timeout, locks_json = probe.fetchone()
            probe.close()
            locks = json.loads(locks_json)
        except Exception:
            pass
        # Credit a statement with the locks it added to those already held
        # (all are released at commit, so the held set follows the session).
        now = {(oid, mode) for oid, _, _, mode in locks}
        new = [l for l in locks if (l[0], l[3]) not in held]
        held.clear()
        held.update(now)
        emit("statement", sql=statement, ms=ms, rows=cursor.rowcount, wal=wal, lock_timeout=timeout, locks=new,
             at=time.time())

    emit("ready", started=STARTED, at=time.time())
    try:
        command.upgrade(cfg, args.revision)
    except Exception as e:
        orig = getattr(e, "orig", None)
        diag = getattr(orig, "diag", None)
        emit(
            "failed",
            message=str(orig or e).strip(),
            sqlstate=getattr(orig, "pgcode", None) or getattr(diag, "sqlstate", None),
            statement=getattr(e, "statement", None),
            traceback="".join(traceback.format_exc().splitlines(True)[-25:]),
            at=time.time(),
        )
        return 2
    emit("done", at=time.time())
    return 0


def offline(args):
    cfg = config(args.config)
    for item in json.loads(args.revisions):
        buf = io.StringIO()
        cfg.output_buffer = buf
        try:
            command.upgrade(cfg, item["range"], sql=True)
            emit("offline", revision=item["revision"], sql=buf.getvalue())
        except BaseException as e:  # env.py may sys.exit in offline mode
            emit("offline", revision=item["revision"], error=str(e) or type(e).__name__)
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["check", "discover", "upgrade", "offline"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--target")
    parser.add_argument("--revision")
    parser.add_argument("--revisions")
    parser.add_argument("--version-table")
    parser.add_argument("--version-table-schema")
    args = parser.parse_args()
    return {"check": check, "discover": discover, "upgrade": upgrade, "offline": offline}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
