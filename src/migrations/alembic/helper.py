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
#   upgrade  --config INI --target REV    `alembic upgrade REV` in this one process, as production runs it:
#            [--no-trace] [--commit-each]   before each revision it says revision_start and waits for a line
#                                         `go REV` on stdin (rehearse starts observing), after it revision_end;
#                                         statements traced in batches, transactions' ends reported
#   downgrade --config INI --target REV   `alembic downgrade REV`, paced and traced as upgrade is
#                                         (rollback.downgrade: each revision's downgrade() in turn)
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
import re  # noqa: E402
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
# pg_stat_force_next_flush() (src/catalog/stats.rs, FORCE_STATS_FLUSH).
FLUSH_STATS = os.environ.get("REHEARSE_FLUSH_STATS_SQL", "")


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


# Statements that may share a batch: data statements, whose consecutive
# runs of one shape (literals stripped) take the same locks.
DATA = ("select", "insert", "update", "delete", "with", "values")
# Statements that end the transaction they run in.
ENDS = ("commit", "end", "rollback", "abort")
LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


class Batch:
    def __init__(self, shape, sql, clock, dbapi):
        self.shape, self.sql, self.clock, self.dbapi = shape, sql, clock, dbapi
        self.count, self.ms, self.rows = 0, 0.0, 0


class Tracer:
    """Every statement Alembic's sessions send, in batches: consecutive data
    statements of one shape are one batch, any other statement is a batch
    of its own. After each batch (before the next one, and before a
    transaction ends or a revision ends), the session's own locks and the
    WAL position are read with OWN_LOCKS: once a batch rather than once a
    statement, which is what keeps tracing's cost small on a revision of
    thousands of statements (bench/TRACING.md)."""

    def __init__(self, pace):
        self.pace = pace
        self.batch = None
        self.running = None
        self.depth = 0
        self.held = {}
        self.last = (None, None)

    def shape(self, statement):
        if statement is self.last[0] or statement == self.last[0]:
            return self.last[1]
        head = statement.lstrip()[:6].lower()
        shape = LITERALS.sub("?", statement) if head.startswith(DATA) else None
        self.last = (statement, shape)
        return shape

    def before(self, cursor, statement):
        shape = self.shape(statement)
        b = self.batch
        if b is not None and (shape is None or shape != b.shape or b.dbapi is not cursor.connection):
            self.flush()
        self.running = (shape, statement, self.pace.clock())

    def after(self, cursor):
        shape, statement, began = self.running
        ms = (self.pace.clock() - began) * 1000.0
        if self.batch is None:
            self.batch = Batch(shape, statement, began, cursor.connection)
        b = self.batch
        b.count += 1
        b.ms += ms
        b.rows += max(cursor.rowcount, 0)
        if shape is None:
            self.flush()
            # A transaction ended by a statement (op.execute("COMMIT")) rather than by the driver.
            words = statement.lower().split(None, 2)
            if words and words[0].rstrip(";") in ENDS and (len(words) < 2 or words[1] not in ("to", "prepared")):
                state = "rollback" if words[0].rstrip(";") in ("rollback", "abort") else "commit"
                self.held.pop(id(cursor.connection), None)
                emit("transaction", state=state, clock=self.pace.clock())

    def probe(self, dbapi):
        """OWN_LOCKS on the batch's session. Not PREPAREd: warm, its planning
        costs a tenth of a millisecond, and a prepared statement a driver or
        env.py deallocated (psycopg 3 does DEALLOCATE ALL) would fail and
        abort the migration's transaction."""
        if not OWN_LOCKS:
            raise RuntimeError("REHEARSE_OWN_LOCKS_SQL is not set")
        cursor = dbapi.cursor()
        try:
            cursor.execute(OWN_LOCKS)
            return cursor.fetchone()
        finally:
            cursor.close()

    def flush(self, dbapi=None):
        """Reports the batch (of `dbapi`'s session, when given), with the
        locks its session took since the previous batch and the WAL position."""
        b = self.batch
        if b is None or (dbapi is not None and b.dbapi is not dbapi):
            return
        self.batch = None
        new, wal, timeout = [], None, None
        try:
            wal, timeout, locks_json = self.probe(b.dbapi)
            locks = json.loads(locks_json)
        except Exception:
            # The transaction failed (an aborted one refuses every query): nothing read, nothing changed.
            locks = None
        if locks is not None:
            # Credit a batch with the locks it added to those already held
            # (all are released when the transaction ends: the set follows the session).
            held = self.held.setdefault(id(b.dbapi), set())
            new = [lock for lock in locks if (lock[0], lock[3]) not in held]
            held.clear()
            held.update((oid, mode) for oid, _, _, mode in locks)
        emit("statement", sql=b.sql, ms=b.ms, rows=b.rows, count=b.count, wal=wal, lock_timeout=timeout, locks=new,
             clock=b.clock)


def trace_statements(tracer):
    """Times every statement the dialect sends (one, one without parameters,
    or many) by wrapping the dialects' own do_execute methods, the last
    step before the driver's cursor. Not through SQLAlchemy's cursor events:
    a listener takes every connection off SQLAlchemy's fast path, which cost
    more than the tracing itself on a revision of thousands of statements
    (bench/TRACING.md). The PostgreSQL dialects are imported first so that
    their own overrides are wrapped too; a nested call (an override calling
    its parent's) is timed once."""
    import importlib

    from sqlalchemy.engine.default import DefaultDialect

    for driver in ("psycopg2", "psycopg", "pg8000", "asyncpg", "psycopg2cffi"):
        try:
            importlib.import_module("sqlalchemy.dialects.postgresql." + driver)
        except Exception:
            pass

    def wrap(original):
        def execute(dialect, cursor, statement, *rest):
            if tracer.depth:
                return original(dialect, cursor, statement, *rest)
            tracer.depth += 1
            try:
                tracer.before(cursor, statement)
                result = original(dialect, cursor, statement, *rest)
                tracer.after(cursor)
                return result
            finally:
                tracer.depth -= 1

        return execute

    classes, todo = [], [DefaultDialect]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(c for c in cls.__subclasses__() if c not in classes)
    for cls in classes:
        for name in ("do_execute", "do_execute_no_params", "do_executemany"):
            if name in cls.__dict__:
                setattr(cls, name, wrap(cls.__dict__[name]))


def trace_transactions(tracer, pace):
    """Reports each transaction's end (commit or rollback, as the driver
    finished it): every lock a transaction took is held until then. The
    dialect's do_commit/do_rollback are what SQLAlchemy (and Alembic's
    autocommit_block) end every transaction with."""
    from sqlalchemy.engine.default import DefaultDialect

    def ending(original, state):
        def end(dialect, connection):
            raw = getattr(connection, "dbapi_connection", connection)
            if tracer is not None:
                tracer.flush(raw)
            try:
                original(dialect, connection)
            finally:
                if tracer is not None:
                    # Every lock is released: the next batch's locks are all new.
                    tracer.held.pop(id(raw), None)
                emit("transaction", state=state, clock=pace.clock())
            flush_statistics(raw)

        return end

    DefaultDialect.do_commit = ending(DefaultDialect.do_commit, "commit")
    DefaultDialect.do_rollback = ending(DefaultDialect.do_rollback, "rollback")


def flush_statistics(raw):
    """Has the session's statistics flushed now, its WAL records in
    pg_stat_wal among them: a backend flushes them only when idle outside a
    transaction, at most once a second unless forced, and this process lives
    on between revisions (a process a revision had them flushed at its exit).
    Only on a connection idle outside a transaction (its own, which it then
    commits: the flush happens before that commit's reply); PostgreSQL 15+."""
    if not FLUSH_STATS:
        return
    try:
        # psycopg 3 and psycopg2 both: 0 is idle (TransactionStatus.IDLE, TRANSACTION_STATUS_IDLE).
        idle = raw.info.transaction_status == 0
    except Exception:
        return
    if not idle:
        return
    try:
        cursor = raw.cursor()
        cursor.execute(FLUSH_STATS)
        cursor.close()
        raw.commit()
    except Exception:
        try:
            raw.rollback()
        except Exception:
            pass


def pace_revisions(tracer, pace):
    """Wraps MigrationContext.run_migrations so that, for each revision
    Alembic is about to run, the helper says revision_start and waits for
    rehearse's "go"; once the revision ran (and, with a transaction per
    migration, committed) it says revision_end."""
    original = MigrationContext.run_migrations

    def run_migrations(ctx, **kw):
        steps_of = ctx._migrations_fn

        def paced(heads, context):
            steps = list(steps_of(heads, context))
            for i, step in enumerate(steps):
                revision = getattr(step, "up_revision_id", None) or step.info.up_revision_id
                emit("revision_start", revision=revision, at=time.time(), clock=pace.clock())
                pace.wait_for_go(revision)
                yield step
                # Resumed once the step's own transaction block ended.
                if tracer is not None:
                    tracer.flush()
                emit("revision_end", revision=revision, clock=pace.clock(), last=i == len(steps) - 1)

        ctx._migrations_fn = paced
        return original(ctx, **kw)

    MigrationContext.run_migrations = run_migrations


def commit_each_revision():
    """Each revision in a transaction of its own, whatever env.py says, so
    what each built is visible after it (the drift build reads the schema
    between revisions)."""
    from alembic.runtime.environment import EnvironmentContext

    original = EnvironmentContext.configure

    def configure(ctx, *a, **kw):
        kw["transaction_per_migration"] = True
        return original(ctx, *a, **kw)

    EnvironmentContext.configure = configure


def upgrade(args):
    return migrate(args, command.upgrade)


def downgrade(args):
    # A downgrade step's info names the revision it undoes as up_revision_id
    # (RevisionStep.info), so pace_revisions paces it as it paces an upgrade.
    return migrate(args, command.downgrade)


def migrate(args, run):
    cfg = config(args.config)
    pace = Pace()
    tracer = None if args.no_trace else Tracer(pace)
    if tracer is not None:
        trace_statements(tracer)
    trace_transactions(tracer, pace)
    pace_revisions(tracer, pace)
    if args.commit_each:
        commit_each_revision()
    emit("ready", started=STARTED, at=time.time())
    try:
        run(cfg, args.target)
    except Stopped:
        return 130
    except Exception as e:
        orig = getattr(e, "orig", None)
        diag = getattr(orig, "diag", None)
        emit(
            "failed",
            message=str(orig or e).strip(),
            sqlstate=getattr(orig, "pgcode", None) or getattr(diag, "sqlstate", None),
            statement=getattr(e, "statement", None),
            traceback="".join(traceback.format_exc().splitlines(True)[-25:]),
            clock=pace.clock(),
        )
        return 2
    emit("done", clock=pace.clock())
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
    parser.add_argument("action", choices=["check", "discover", "upgrade", "downgrade", "offline"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--target")
    parser.add_argument("--revision")
    parser.add_argument("--revisions")
    parser.add_argument("--version-table")
    parser.add_argument("--version-table-schema")
    parser.add_argument("--no-trace", action="store_true")
    parser.add_argument("--commit-each", action="store_true")
    args = parser.parse_args()
    actions = {"check": check, "discover": discover, "upgrade": upgrade, "downgrade": downgrade, "offline": offline}
    return actions[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
