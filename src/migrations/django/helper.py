# rehearse's Django helper: run by rehearse with the project's Python in the
# folder holding manage.py, it asks Django itself (its loader, executor and
# `migrate` command, never `showmigrations` text) and prints JSON lines that
# start with MARK, the same events as the Alembic helper (read in Rust by
# src/migrations/alembic/protocol.rs); anything else on stdout is ignored.
#
#   check                                   Django imports (before anything is provisioned)
#   discover --database ALIAS [--target T]  the pending migrations from Django's planner, in apply order,
#                                           each with what `sqlmigrate` prints for it; conflicts and an
#                                           inconsistent history refused with Django's own message
#   migrate  --database ALIAS [--target T]  `manage.py migrate [T]` in this one process, as production runs
#                                           it: before each migration it says revision_start and waits for
#                                           `go ID` on stdin, after it revision_end; statements traced through
#                                           connection.execute_wrapper(), transactions' ends reported; what
#                                           migrate does after the last migration (post_migrate handlers) is
#                                           timed apart (epilogue, done)
#
# The target is "all" (every app's leaf nodes), "APP" or "APP NAME", as
# `manage.py migrate` takes them. Ids are "app.name".
#
# Where Django connects: settings.DATABASES[ALIAS] gets the throwaway
# database's NAME, HOST, PORT, USER and PASSWORD (REHEARSE_DJANGO_DATABASE,
# JSON; the password is in the environment, never on a command line) before
# any connection opens, its ENGINE and other OPTIONS kept. DATABASE_URL and
# the PG* variables hold the same database, for settings that read them.
# Every connection Django opens, on any alias, is checked against the
# throwaway database's identity (REHEARSE_EXPECTED_IDENTITY, read by rehearse
# with REHEARSE_IDENTITY_SQL) before anything runs on it; a connection that
# is not PostgreSQL, or not that database, stops the process.
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

# manage.py runs as a script: its folder is first on sys.path, and the
# project's packages (the settings module among them) import from there.
sys.path.insert(0, os.getcwd())

# The queries rehearse gives (src/catalog): the session's own relation locks,
# WAL position and lock_timeout; pg_stat_force_next_flush(); the identity.
OWN_LOCKS = os.environ.get("REHEARSE_OWN_LOCKS_SQL", "")
FLUSH_STATS = os.environ.get("REHEARSE_FLUSH_STATS_SQL", "")
IDENTITY_SQL = os.environ.get("REHEARSE_IDENTITY_SQL", "")
EXPECTED_IDENTITY = os.environ.get("REHEARSE_EXPECTED_IDENTITY", "")


def emit(kind, **fields):
    fields["type"] = kind
    OUT.write(MARK + json.dumps(fields, default=str) + "\n")
    OUT.flush()


def setup(args):
    """Imports the settings module, points the alias at the throwaway
    database, sets Django up and guards every connection it opens."""
    if args.settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = args.settings
    try:
        import django
        from django.conf import settings
    except ImportError as e:
        emit("missing", message=str(e), python=sys.executable)
        sys.exit(3)
    databases = settings.DATABASES
    if args.database not in databases:
        emit("bad_target", message="settings.DATABASES has no alias %r (it has %s): set migrations.database to one "
             "of them" % (args.database, ", ".join(sorted(databases)) or "none"), current=[])
        sys.exit(3)
    point_at_copy(databases[args.database])
    guard_connections()
    django.setup()
    from django.db import connections

    connection = connections[args.database]
    if connection.vendor != "postgresql":
        refuse_engine(connection)
    return connection


def point_at_copy(entry):
    """The alias's connection keys become the throwaway database's; a
    PostgreSQL ENGINE (or a subclass, PostGIS) and its other OPTIONS stay.
    An ENGINE that is not PostgreSQL is left as it is, and refused."""
    given = os.environ.get("REHEARSE_DJANGO_DATABASE")
    if not given or "postgres" not in str(entry.get("ENGINE", "")):
        return
    entry.update(json.loads(given))
    options = entry.setdefault("OPTIONS", {})
    # Both name a database of their own (pg_service.conf, a password file).
    for key in ("service", "passfile"):
        options.pop(key, None)


def refuse_engine(connection):
    entry = connection.settings_dict
    emit("wrong_database", dialect=connection.vendor, driver=entry.get("ENGINE"), host=entry.get("HOST") or None,
         port=str(entry.get("PORT")) if entry.get("PORT") else None, database=str(entry.get("NAME") or ""))
    # Not an exception: settings or a migration may catch those and go on.
    os._exit(4)


def guard_connections():
    """Every connection Django opens (any alias: a RunPython that writes
    through another one too) must be the throwaway database: checked on
    Django's connection_created signal, before the connection is used."""
    if not EXPECTED_IDENTITY or not IDENTITY_SQL:
        return
    from django.db.backends.signals import connection_created

    def identify(sender, connection, **kwargs):
        if connection.vendor != "postgresql":
            refuse_engine(connection)
        # Django opens a connection in autocommit: this query is its own transaction.
        cursor = connection.connection.cursor()
        cursor.execute(IDENTITY_SQL)
        found = list(cursor.fetchone())
        cursor.close()
        if found != json.loads(EXPECTED_IDENTITY):
            params = connection.get_connection_params()
            emit("wrong_database", dialect="postgresql", driver=connection.settings_dict.get("ENGINE"),
                 host=params.get("host"), port=None if params.get("port") is None else str(params.get("port")),
                 database=found[0])
            os._exit(4)

    connection_created.connect(identify, weak=False)


# The driver's placeholders (`%s`, `%(name)s`) and its escaped percent sign.
PLACEHOLDERS = re.compile(r"%%|%s|%\(\w+\)s")


def numbered(sql, params):
    """The statement as PostgreSQL's parser reads it, with `$1`, `$2` where
    the driver puts the values: the report never holds a row's values, and
    rehearse's rules can still parse it. Without params the driver
    substitutes nothing, and a `%` is the statement's own."""
    if params is None:
        return sql
    count = [0]

    def number(found):
        if found.group(0) == "%%":
            return "%"
        count[0] += 1
        return "$%d" % count[0]

    return PLACEHOLDERS.sub(number, sql)


def migration_id(key):
    return "%s.%s" % key


def executor_for(connection):
    """Django's executor over the copy's history, refusing what `migrate`
    refuses before it runs anything, with its message: an inconsistent
    history, conflicting leaf nodes."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    try:
        executor.loader.check_consistent_history(connection)
    except Exception as e:
        emit("bad_target", message="%s: %s" % (type(e).__name__, e), current=[])
        sys.exit(3)
    conflicts = executor.loader.detect_conflicts()
    if conflicts:
        names = "; ".join("%s in %s" % (", ".join(n), app) for app, n in conflicts.items())
        emit("bad_target", current=[], message="Conflicting migrations detected; multiple leaf nodes in the "
             "migration graph: (%s).\nTo fix them run 'python manage.py makemigrations --merge'" % names)
        sys.exit(3)
    return executor


def targets_of(executor, target):
    """`manage.py migrate [APP [NAME]]`'s targets, as its handle() works them out."""
    graph = executor.loader.graph
    words = (target or "all").split()
    if words == ["all"]:
        return graph.leaf_nodes()
    app = words[0]
    if app not in executor.loader.migrated_apps:
        raise ValueError("App '%s' does not have migrations." % app)
    if len(words) == 1:
        return [key for key in graph.leaf_nodes() if key[0] == app]
    if words[1] == "zero":
        return [(app, None)]
    migration = executor.loader.get_migration_by_prefix(app, words[1])
    key = (app, migration.name)
    # Partially applied squashed migrations are not in the graph: their last replacement is.
    if key not in graph.nodes and key in executor.loader.replacements:
        key = executor.loader.replacements[key].replaces[-1]
    return [key]


def describe(migration):
    parts = []
    for op in migration.operations:
        try:
            parts.append(op.describe())
        except Exception:
            parts.append(type(op).__name__)
    return "; ".join(parts)


def sqlmigrate(executor, migration):
    """What `manage.py sqlmigrate APP NAME` prints for it, or why it cannot."""
    from django.core.management import call_command

    buf = io.StringIO()
    try:
        call_command("sqlmigrate", migration.app_label, migration.name, database=executor.connection.alias,
                     stdout=buf, no_color=True)
        return buf.getvalue(), None
    except BaseException as e:  # a migration may sys.exit
        return None, "%s: %s" % (type(e).__name__, e)


def discover(args):
    connection = setup(args)
    executor = executor_for(connection)
    try:
        targets = targets_of(executor, args.target)
        plan = executor.migration_plan(targets)
    except Exception as e:
        emit("bad_target", message="%s: %s" % (type(e).__name__, e), current=[])
        return 3
    if any(backwards for _, backwards in plan):
        emit("bad_target", current=[], message="migrating to %s would unapply migrations: rehearse runs forward "
             "migrations (set migrations.target to all, an app, or a later migration)" % args.target)
        return 3
    graph = executor.loader.graph
    pending = []
    for migration, _ in plan:
        key = (migration.app_label, migration.name)
        parents = graph.node_map[key].parents if key in graph.node_map else []
        module = sys.modules.get(type(migration).__module__)
        pending.append({
            "revision": migration_id(key),
            "down": sorted(migration_id((p.key[0], p.key[1])) for p in parents),
            "message": describe(migration),
            "path": getattr(module, "__file__", None),
            "atomic": migration.atomic,
            "replaces": [migration_id(r) for r in migration.replaces],
        })
    emit("discovered", pending=pending)
    for migration, _ in plan:
        sql, error = sqlmigrate(executor, migration)
        emit("offline", revision=migration_id((migration.app_label, migration.name)), sql=sql, error=error)
    return 0


# Statements that may share a batch: data statements, whose consecutive
# runs of one text (Django sends the values apart) take the same locks.
DATA = ("select", "insert", "update", "delete", "with", "values")


class Tracer:
    """Every statement the migrating connection sends, through Django's
    connection.execute_wrapper(), in batches: consecutive data statements of
    one text (a RunPython saving objects one by one) are one batch, any other
    statement is a batch of its own (executemany is one statement of many
    rows). After each batch, and before its transaction ends, OWN_LOCKS runs
    on the same session, in its transaction, so the locks it took are read
    exactly, once a batch rather than once a statement (what keeps tracing
    cheap on a data migration of thousands of statements). Statements of
    Django's introspection (constraint names before a RemoveField, the
    history table's existence) are run untraced: they read the catalogs."""

    def __init__(self, pace, connection):
        self.pace = pace
        self.connection = connection
        self.held = set()
        self.introspecting = 0
        self.last = None
        self.epilogue = False
        # [text, ms, rows, count, began] of the data statements not reported yet.
        self.batch = None

    def __call__(self, execute, sql, params, many, context):
        if self.introspecting or self.epilogue:
            return execute(sql, params, many, context)
        self.last = sql
        shown = numbered(sql, () if many else params)
        data = sql.lstrip()[:6].lower().startswith(DATA)
        if self.batch is not None and (not data or self.batch[0] != shown):
            self.flush()
        began = self.pace.clock()
        try:
            result = execute(sql, params, many, context)
        except Exception:
            self.flush()
            raise
        ms = (self.pace.clock() - began) * 1000.0
        cursor = context.get("cursor")
        rows = max(getattr(cursor, "rowcount", -1) or 0, 0)
        count = len(params) if many and params is not None and hasattr(params, "__len__") else 1
        if not data:
            self.report(shown, ms, rows, count, began)
            return result
        if self.batch is None:
            self.batch = [shown, 0.0, 0, 0, began]
        self.batch[1] += ms
        self.batch[2] += rows
        self.batch[3] += count
        return result

    def flush(self):
        """Reports the pending batch of data statements, if any."""
        if self.batch is not None:
            batch, self.batch = self.batch, None
            self.report(*batch)

    def report(self, sql, ms, rows, count, began):
        new, wal, timeout = [], None, None
        try:
            cursor = self.connection.connection.cursor()
            try:
                cursor.execute(OWN_LOCKS)
                wal, timeout, locks_json = cursor.fetchone()
            finally:
                cursor.close()
            locks = json.loads(locks_json)
        except Exception:
            # An aborted transaction refuses every query: nothing read, nothing changed.
            locks = None
        if locks is not None:
            # Credit a statement with the locks it added to those its session already held.
            new = [lock for lock in locks if (lock[0], lock[3]) not in self.held]
            self.held = {(oid, mode) for oid, _, _, mode in locks}
        emit("statement", sql=sql, ms=ms, rows=rows, count=count, wal=wal, lock_timeout=timeout, locks=new,
             clock=began)

    def untraced_introspection(self):
        """Django's introspection methods run their queries untraced."""
        introspection = self.connection.introspection
        tracer = self

        def wrap(method):
            def untraced(*a, **kw):
                tracer.introspecting += 1
                try:
                    return method(*a, **kw)
                finally:
                    tracer.introspecting -= 1

            return untraced

        for name in dir(type(introspection)):
            if not name.startswith("_") and callable(getattr(introspection, name, None)):
                setattr(introspection, name, wrap(getattr(introspection, name)))


def trace_transactions(connection, tracer, pace):
    """Reports each transaction's end (Django's atomic blocks end in
    _commit and _rollback): every lock a transaction took is held until then."""

    def ending(original, state):
        def end(*a, **kw):
            if tracer is not None:
                # Read in the transaction: its locks are gone once it ends.
                tracer.flush()
            try:
                return original(*a, **kw)
            finally:
                if tracer is not None:
                    tracer.held = set()
                if not (tracer is not None and tracer.epilogue):
                    emit("transaction", state=state, clock=pace.clock())
                    flush_statistics(connection)

        return end

    connection._commit = ending(connection._commit, "commit")
    connection._rollback = ending(connection._rollback, "rollback")


def flush_statistics(connection):
    """Has the session's statistics (its WAL records in pg_stat_wal) flushed
    now, on its idle connection: a backend flushes them only when idle, at
    most once a second unless forced, and this process lives on between
    migrations. PostgreSQL 15+."""
    if not FLUSH_STATS or connection.connection is None or not connection.get_autocommit():
        return
    try:
        cursor = connection.connection.cursor()
        cursor.execute(FLUSH_STATS)
        cursor.close()
    except Exception:
        pass


def pace_migrations(tracer, pace):
    """Wraps MigrationExecutor.apply_migration (and unapply_migration) so
    that before each migration the helper says revision_start and waits for
    rehearse's "go"; after it (its transaction committed, its deferred SQL
    run) revision_end. When executor.migrate returns, what follows
    (check_replacements is inside it; the models' re-rendering and the
    post_migrate handlers after it) is the epilogue, timed apart."""
    from django.db.migrations.executor import MigrationExecutor

    state = {"left": 0, "epilogue": None}

    def paced(original):
        def step(executor, project_state, migration, *a, **kw):
            revision = migration_id((migration.app_label, migration.name))
            emit("revision_start", revision=revision, at=time.time(), clock=pace.clock())
            pace.wait_for_go(revision)
            result = original(executor, project_state, migration, *a, **kw)
            if tracer is not None:
                tracer.flush()
            state["left"] -= 1
            emit("revision_end", revision=revision, clock=pace.clock(), last=state["left"] <= 0)
            return result

        return step

    original_migrate = MigrationExecutor.migrate

    def migrate(executor, targets, plan=None, *a, **kw):
        state["left"] = len(plan if plan is not None else executor.migration_plan(targets))
        result = original_migrate(executor, targets, plan, *a, **kw)
        if tracer is not None:
            tracer.flush()
            tracer.epilogue = True
        state["epilogue"] = pace.clock()
        emit("epilogue", clock=state["epilogue"])
        return result

    MigrationExecutor.apply_migration = paced(MigrationExecutor.apply_migration)
    MigrationExecutor.unapply_migration = paced(MigrationExecutor.unapply_migration)
    MigrationExecutor.migrate = migrate
    return state


def migrate(args):
    from django.core.management import call_command

    connection = setup(args)
    pace = Pace()
    tracer = None
    if not args.no_trace:
        tracer = Tracer(pace, connection)
        tracer.untraced_introspection()
        connection.execute_wrappers.append(tracer)
    trace_transactions(connection, tracer, pace)
    state = pace_migrations(tracer, pace)
    emit("ready", started=STARTED, at=time.time())
    words = [] if (args.target or "all") == "all" else args.target.split()
    try:
        call_command("migrate", *words, database=args.database, interactive=False, verbosity=0)
    except Stopped:
        return 130
    except Exception as e:
        cause = e.__cause__ or e
        diag = getattr(cause, "diag", None)
        emit("failed", message=str(cause).strip() or type(e).__name__,
             sqlstate=getattr(cause, "pgcode", None) or getattr(diag, "sqlstate", None),
             statement=None if tracer is None else tracer.last,
             traceback="".join(traceback.format_exc().splitlines(True)[-25:]), clock=pace.clock())
        return 2
    epilogue = state["epilogue"]
    emit("done", clock=pace.clock(), epilogue_ms=None if epilogue is None else (pace.clock() - epilogue) * 1000.0)
    return 0


def check(args):
    try:
        import django
    except ImportError as e:
        emit("missing", message=str(e), python=sys.executable)
        return 3
    emit("checked", driver="Django %s" % django.get_version(), said_in=sys.executable)
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["check", "discover", "migrate"])
    parser.add_argument("--database", default="default")
    parser.add_argument("--settings")
    parser.add_argument("--target")
    parser.add_argument("--no-trace", action="store_true")
    args = parser.parse_args()
    return {"check": check, "discover": discover, "migrate": migrate}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
