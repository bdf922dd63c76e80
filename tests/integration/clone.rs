//! The clone backend (`postgres.backend: clone`) against a server in a
//! container the test starts (testcontainers, support/containers.rs),
//! standing for a clone engine reached over the network: `create` is a
//! script that makes a database from a template holding the restored test
//! dump (`CREATE DATABASE clone_<random> TEMPLATE prod_template`, as a
//! storage-level clone would hold production's data) and prints its URL,
//! with a password so redaction is tested, and `id=clone_<random>`;
//! `destroy` drops it and appends the id to `destroyed.log`, so each test
//! counts the destroys.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use nix::sys::signal::Signal;
use rehearse::error::ErrorKind;
use rehearse::kinds::BackendKind;
use rehearse::report::{MigrationStatus, RunStatus, Stage};

use crate::support::{
    docker_lock, pg_bin_dir, run_and_signal_with, tiny_demo_dump, RunOutput, Sandbox, ServerContainer,
};

/// The clone role's password: it must never show in any output.
const PASSWORD: &str = "Cl0neS3cretZq7";

/// A server with `prod_template` (the tiny demo restored) and the role the clones are reached as.
struct Engine {
    server: ServerContainer,
}

impl Engine {
    fn start() -> Engine {
        let server = ServerContainer::start();
        let psql = |sql: &str| psql(&server, "postgres", &["-c", sql]);
        psql(&format!("CREATE ROLE app_clone LOGIN SUPERUSER PASSWORD '{PASSWORD}'"));
        psql("CREATE DATABASE prod_template");
        let out = std::process::Command::new(format!("{}/pg_restore", pg_bin_dir()))
            .args(["--no-owner", "--no-privileges", "--role=app_clone", "-d", "prod_template"])
            .arg(tiny_demo_dump())
            .envs(server.conn.libpq_env("prod_template", "test"))
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));
        Engine { server }
    }

    /// Databases on the server whose name starts with `clone_`.
    fn clones(&self) -> Vec<String> {
        let (dbs, ..) = self.server.state();
        dbs.into_iter().filter(|d| d.starts_with("clone_")).collect()
    }

    /// Databases on the server (to see that nothing else was left).
    fn databases(&self) -> Vec<String> {
        self.server.state().0
    }

    /// Writes `create.sh`, `destroy.sh`, the scenario (plus `extra`) and
    /// `migrations` into a fresh sandbox.
    fn sandbox(&self, migrations: &[(&str, &str)], extra: &str) -> (Sandbox, PathBuf) {
        self.sandbox_with(migrations, "", "", extra)
    }

    /// Like `sandbox`, with `clone_keys` added to `postgres.clone` and
    /// `create_tail` run after `create.sh` printed the URL and id.
    fn sandbox_with(
        &self,
        migrations: &[(&str, &str)],
        clone_keys: &str,
        create_tail: &str,
        extra: &str,
    ) -> (Sandbox, PathBuf) {
        let sandbox = Sandbox::new();
        sandbox.migrations(migrations);
        let c = &self.server.conn;
        let env = format!(
            "export PGHOST='{}' PGPORT={} PGUSER='{}' PGPASSWORD='{}' PGDATABASE=postgres\nPSQL='{}/psql -X -q -v ON_ERROR_STOP=1'\n",
            c.host,
            c.port,
            c.user,
            c.password.expose(),
            pg_bin_dir()
        );
        let make = format!(
            "name=clone_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \\n')\n\
             echo \"making $name for $REHEARSE_CLONE_NAME\" >&2\n\
             $PSQL -c \"CREATE DATABASE $name TEMPLATE prod_template OWNER app_clone\" >&2\n\
             echo \"postgres://app_clone:{PASSWORD}@127.0.0.1:{}/$name\"\n\
             echo \"id=$name\"\n",
            c.port
        );
        script(&sandbox, "create.sh", &format!("#!/bin/sh\nset -e\n{env}{make}{create_tail}"));
        script(
            &sandbox,
            "destroy.sh",
            &format!(
                "#!/bin/sh\nset -e\n{env}\
                 [ \"$1\" = \"$REHEARSE_CLONE_ID\" ] && [ -n \"$REHEARSE_CLONE_URL\" ] || exit 9\n\
                 $PSQL -c \"DROP DATABASE IF EXISTS $1 WITH (FORCE)\"\n\
                 echo \"$1\" >> destroyed.log\n"
            ),
        );
        let scenario = sandbox.write(
            "scenario.yaml",
            &format!(
                "name: test\npostgres:\n  backend: clone\n  clone:\n    create: ./create.sh\n    destroy: ./destroy.sh {{id}}\n    timeout: 2m\n{clone_keys}\
                 migrations:\n  tool: sql\n  dir: migrations\n  table: rehearse_schema_migrations\nreport:\n  formats: [table, markdown, json]\n{extra}"
            ),
        );
        (sandbox, scenario)
    }
}

fn psql(server: &ServerContainer, db: &str, args: &[&str]) {
    let out = std::process::Command::new(format!("{}/psql", pg_bin_dir()))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .envs(server.conn.libpq_env(db, "test"))
        .output()
        .unwrap();
    assert!(out.status.success(), "psql {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn script(sandbox: &Sandbox, name: &str, text: &str) {
    let path = sandbox.write(name, text);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// The ids `destroy.sh` was run for, in order.
fn destroyed(sandbox: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sandbox.path().join("destroyed.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The password shows nowhere a run wrote.
fn assert_no_password(out: &RunOutput) {
    let mut places = vec![("stdout", out.stdout.clone()), ("stderr", out.stderr.clone())];
    for file in ["report.json", "report.md"] {
        if let Ok(text) = std::fs::read_to_string(out.reports.join(file)) {
            places.push((file, text));
        }
    }
    for (place, text) in places {
        assert!(!text.contains(PASSWORD), "the clone's password is in {place}:\n{text}");
    }
}

/// Destroy ran once, for the clone the run made, which is gone; nothing else is left.
fn assert_destroyed_once(engine: &Engine, sandbox: &Sandbox, out: &RunOutput) {
    let ids = destroyed(sandbox);
    assert_eq!(ids.len(), 1, "destroy runs exactly once: {ids:?}\nstderr:\n{}", out.stderr);
    assert!(ids[0].starts_with("clone_"), "{ids:?}");
    assert_eq!(engine.clones(), Vec::<String>::new(), "the clone is gone");
    assert_no_password(out);
    sandbox.assert_no_leaks();
}

#[test]
fn the_release_is_rehearsed_on_the_clone_without_a_restore_and_the_clone_destroyed_once() {
    let engine = Engine::start();
    let before = engine.databases();
    let migrations = [
        ("0001_add.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n"),
        ("0002_index.sql", "CREATE INDEX orders_state_idx ON public.orders (state);\n"),
    ];
    // A race needs a copy of the clone's database: made on its server, dropped before destroy.
    let extra = "race:\n  replicas: 2\n  command: \"true\"\n";
    let (sandbox, scenario) = engine.sandbox_with(&migrations, "    lazy_load: true\n", "", extra);
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);

    let report = out.report();
    assert_eq!(report.postgres.backend, BackendKind::Clone);
    let stages: Vec<Stage> = report.stages.iter().map(|s| s.stage).collect();
    assert!(stages.contains(&Stage::Provision), "{stages:?}");
    assert!(!stages.contains(&Stage::Restore) && !stages.contains(&Stage::Analyze), "nothing restored: {stages:?}");
    assert!(report.migrations.iter().all(|m| m.status == MigrationStatus::Applied), "{:?}", report.migrations);
    assert_eq!(report.migrations.len(), 2);
    let source = report.dump.clone.as_ref().expect("dump.clone says where the data came from");
    assert_eq!(source.create, "./create.sh");
    assert_eq!(Some(destroyed(&sandbox)[0].clone()), source.id, "destroy got the id create printed");
    assert!(report.dump.tables.iter().any(|t| t.name == "public.orders"), "{:?}", report.dump.tables);
    let limitations = report.observation.limitations.join("\n");
    assert!(limitations.contains("clone made by postgres.clone.create (`./create.sh`)"), "{limitations}");
    assert!(limitations.contains("postgres.clone.lazy_load"), "{limitations}");
    assert!(report.race.is_some(), "the race ran on a copy of the clone");
    let md = out.markdown();
    assert!(md.contains("on a clone made by `create` (`./create.sh`)"), "{md}");
    assert!(out.stderr.contains("provision: clone (postgres.clone.create: `./create.sh`)"), "{}", out.stderr);
    assert!(out.stderr.contains("cleanup: dropping rehearse's 1 database(s) on the clone"), "{}", out.stderr);
    assert!(md.contains("What this rehearsal did not control"), "{md}");

    assert_destroyed_once(&engine, &sandbox, &out);
    assert_eq!(engine.databases(), before, "the race's copy was dropped too");
}

/// Drift on a clone: the history is built in a second database on the
/// clone's server, which is dropped before destroy. This history starts
/// from a table it does not create, so it cannot be built from empty:
/// reported, the rehearsal stands.
#[test]
fn drift_on_a_clone_builds_in_a_database_of_its_own_that_is_dropped_before_destroy() {
    let engine = Engine::start();
    let before = engine.databases();
    let migrations = [("0001_add.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n")];
    let (sandbox, scenario) = engine.sandbox_with(&migrations, "", "", "drift: true\n");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let drift = out.report().drift.expect("a drift report");
    let error = drift.error.as_deref().expect("the history does not build from empty");
    assert!(error.contains("0001_add") && error.contains("orders"), "{error}");
    assert!(drift.database.ends_with("_drift"), "{}", drift.database);
    assert_destroyed_once(&engine, &sandbox, &out);
    assert_eq!(engine.databases(), before, "the drift database was dropped too");
}

#[test]
fn a_failed_migration_still_destroys_the_clone_once() {
    let engine = Engine::start();
    let (sandbox, scenario) = engine.sandbox(&[("0001_bad.sql", "SELECT 1/0;\n")], "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(2);
    assert_eq!(out.report().migrations[0].status, MigrationStatus::Failed);
    assert_destroyed_once(&engine, &sandbox, &out);
}

#[test]
fn sigint_during_a_migration_destroys_the_clone_once() {
    let engine = Engine::start();
    let migrations = [("0001_quick.sql", "SELECT 1;"), ("0002_slow.sql", "SELECT pg_sleep(60);")];
    let (sandbox, scenario) = engine.sandbox(&migrations, "");
    let cmd = sandbox.command(&["run", scenario.to_str().unwrap()]);
    let out = run_and_signal_with(cmd, &sandbox, "migration 2/2", Signal::SIGINT);
    out.assert_code(130);
    assert_eq!(out.report().status, RunStatus::Interrupted);
    assert_destroyed_once(&engine, &sandbox, &out);
}

#[test]
fn after_sigkill_rehearse_cleanup_destroys_the_clone_from_its_marker() {
    // `rehearse cleanup` looks at containers too: not while another test's one is about.
    let _docker = docker_lock();
    let engine = Engine::start();
    let migrations = [("0001_slow.sql", "SELECT pg_sleep(60);")];
    let (sandbox, scenario) = engine.sandbox(&migrations, "");
    let cmd = sandbox.command(&["run", scenario.to_str().unwrap()]);
    let out = run_and_signal_with(cmd, &sandbox, "migration 1/1", Signal::SIGKILL);
    assert_eq!(out.code, -1, "killed by SIGKILL");
    assert_eq!(engine.clones().len(), 1, "SIGKILL leaves the clone behind");
    assert!(destroyed(&sandbox).is_empty());
    let markers: Vec<PathBuf> =
        std::fs::read_dir(sandbox.path().join("tmp")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(markers.len(), 1, "and its marker: {markers:?}");
    let mode = std::fs::metadata(&markers[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the marker holds the URL's password: private to its owner");
    assert!(markers[0].file_name().unwrap().to_string_lossy().starts_with("rehearse-clone-"), "{markers:?}");

    let cleaned = sandbox.rehearse(&["cleanup"]);
    cleaned.assert_code(0);
    let id = destroyed(&sandbox).first().cloned().expect("cleanup ran destroy");
    assert!(cleaned.stdout.contains(&format!("removed clone {id}")), "{}", cleaned.stdout);
    assert_destroyed_once(&engine, &sandbox, &cleaned);
    let again = sandbox.rehearse(&["cleanup"]);
    assert!(again.stdout.contains("nothing to clean up"), "{}", again.stdout);
    assert_eq!(destroyed(&sandbox).len(), 1);
}

#[test]
fn a_create_that_printed_its_url_and_then_failed_is_exit_4_and_what_it_made_is_destroyed() {
    let engine = Engine::start();
    let tail = "echo 'quota check failed after the clone was made' >&2\nexit 5\n";
    let (sandbox, scenario) = engine.sandbox_with(&[("0001.sql", "SELECT 1;")], "", tail, "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_stopped_by(ErrorKind::ServerStartFailed);
    assert!(out.stderr.contains("quota check failed after the clone was made"), "{}", out.stderr);
    assert!(out.stderr.contains("postgres.clone.destroy was run for the clone it printed"), "{}", out.stderr);
    assert_destroyed_once(&engine, &sandbox, &out);
}

#[test]
fn a_create_that_fails_or_prints_no_url_is_exit_4_with_its_stderr_and_nothing_to_destroy() {
    // No server needed: neither create makes anything.
    let engine_free = |body: &str| {
        let (sandbox, out) = run_with_create(body);
        out.assert_stopped_by(ErrorKind::ServerStartFailed);
        assert!(destroyed(&sandbox).is_empty(), "nothing was made, so nothing is destroyed");
        sandbox.assert_no_leaks();
        out
    };
    let failed = engine_free("echo 'snapshot prod-nightly not found' >&2\nexit 3\n");
    assert!(failed.stderr.contains("snapshot prod-nightly not found"), "its stderr: {}", failed.stderr);

    let silent = engine_free("echo 'clone ready' >&2\n");
    assert!(silent.stderr.contains("printed no connection URL on stdout"), "{}", silent.stderr);
    assert!(silent.stderr.contains("clone ready"), "{}", silent.stderr);
}

/// A run whose `create.sh` is `body` (no engine behind it) and whose
/// `destroy.sh` only logs the id it was given.
fn run_with_create(body: &str) -> (Sandbox, RunOutput) {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001.sql", "SELECT 1;")]);
    script(&sandbox, "create.sh", &format!("#!/bin/sh\n{body}"));
    script(&sandbox, "destroy.sh", "#!/bin/sh\necho \"$1\" >> destroyed.log\n");
    let scenario = sandbox.write(
        "scenario.yaml",
        "postgres:\n  backend: clone\n  clone: { create: ./create.sh, destroy: \"./destroy.sh {id}\" }\n\
         migrations: { tool: sql, dir: migrations }\n",
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    (sandbox, out)
}

/// A clone URL with a TLS setting rehearse does not support is refused
/// (exit 3), not connected to with the setting dropped; one whose root
/// certificate cannot be read is exit 4 naming the key; the clone is
/// destroyed either way.
#[test]
fn a_clone_url_with_unusable_tls_settings_is_refused_and_the_clone_destroyed_once() {
    let cases = [
        (
            "sslmode=require&sslcrl=/etc/ssl/crl.pem",
            Some(ErrorKind::TlsRequested),
            "sslcrl is a TLS setting rehearse does not support",
        ),
        (
            "sslnegotiation=direct",
            Some(ErrorKind::TlsRequested),
            "sslnegotiation=direct asks for a connection rehearse cannot make",
        ),
        ("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", None, "sslrootcert: cannot read /nonexistent/ca.pem"),
    ];
    for (query, kind, refused) in cases {
        let url = format!("postgres://app_clone:{PASSWORD}@127.0.0.1:1/clone_1?{query}");
        let (sandbox, out) = run_with_create(&format!("echo '{url}'\necho id=clone_1\n"));
        match kind {
            Some(kind) => _ = out.assert_stopped_by(kind),
            None => _ = out.assert_code(4),
        };
        for expected in ["the URL postgres.clone.create (`./create.sh`) printed", refused] {
            assert!(out.stderr.contains(expected), "expected {expected:?} in:\n{}", out.stderr);
        }
        assert_no_password(&out);
        assert_eq!(destroyed(&sandbox), ["clone_1"], "what create made is destroyed, once");
        sandbox.assert_no_leaks();
    }
}

#[test]
fn contradictory_clone_scenarios_are_bad_input_before_anything_runs() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001.sql", "SELECT 1;")]);
    let clone = "  clone: { create: ./create.sh, destroy: ./destroy.sh }\n";
    let cases: [(String, &[&str], &[&str]); 5] = [
        (
            "postgres:\n  backend: clone\n".into(),
            &[],
            &["`backend: clone` needs the commands", "postgres.clone.create"],
        ),
        (
            format!("dump: {}\npostgres:\n  backend: clone\n{clone}", tiny_demo_dump().display()),
            &[],
            &["postgres.backend is clone", "remove `dump:`"],
        ),
        (
            format!("postgres:\n  backend: local\n{clone}"),
            &[],
            &["postgres.clone names the commands of the clone backend"],
        ),
        (format!("postgres:\n  backend: clone\n{clone}"), &["--url", "postgres://u@h/db"], &["--url names a server"]),
        (
            format!("postgres:\n  backend: clone\n{clone}observe:\n  standby: true\n"),
            &[],
            &["not available on the clone backend"],
        ),
    ];
    for (postgres, flags, expected) in cases {
        let scenario =
            sandbox.write("scenario.yaml", &format!("{postgres}migrations: {{ tool: sql, dir: migrations }}\n"));
        let mut args = vec!["run", scenario.to_str().unwrap()];
        args.extend(flags);
        sandbox.rehearse_bad_input(&args, expected).assert_nothing_ran();
    }
}
