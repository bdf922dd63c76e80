//! TLS to the servers the user names, with libpq's sslmode semantics: real
//! servers started by the test with `ssl = on`, a CA and certificates made
//! with `openssl`, and a pg_hba.conf with `hostssl` lines only, so a
//! connection that gets in was encrypted (the test shows a plain one is
//! refused). The server certificate names `localhost` only, so
//! `verify-full` to 127.0.0.1 must be refused, saying why. Also: a role
//! that logs in with a client certificate (`cert`), and `password_command`
//! run before each connection (a migration changes the password mid-run);
//! `~/.pgpass`; and a url standby observed over `verify-full`.

use rehearse::kinds::BackendKind;
use rehearse::sys::db::{ConnInfo, Secret};
use rehearse::sys::tls::{Tls, TlsParams};

use std::path::PathBuf;

use nix::sys::signal::Signal;

use crate::support::{run_and_signal_with, tiny_demo_dump, Certs, HotStandby, OwnedServer, RunOutput, Sandbox};

const PASSWORD: &str = "tls-s3cret-pw";

const HBA: &str = "hostssl all certuser 127.0.0.1/32 cert
hostssl all certuser ::1/128 cert
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl all all ::1/128 scram-sha-256";

/// A server accepting TLS connections only: role `app` (a superuser, for
/// the url backend) with PASSWORD, role `certuser` with a client certificate.
fn tls_server() -> (OwnedServer, Certs) {
    let server = OwnedServer::start();
    let certs = Certs::make();
    certs.client("certuser");
    server.sql(
        "postgres",
        &format!(
            "CREATE ROLE app LOGIN SUPERUSER PASSWORD '{PASSWORD}';
             CREATE ROLE certuser LOGIN IN ROLE pg_read_all_stats;
             CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
        ),
    );
    server.enable_tls(&certs, HBA);
    (server, certs)
}

/// `postgres://app:PASSWORD@HOST:PORT/postgres?QUERY`.
fn url(server: &OwnedServer, host: &str, query: &str) -> String {
    format!("postgres://app:{PASSWORD}@{host}:{}/postgres?{query}", server.conn.port)
}

fn verify_full(certs: &Certs) -> String {
    format!("sslmode=verify-full&sslrootcert={}", certs.path_str("ca.crt"))
}

/// `rehearse COMMAND --url URL` (with `--out` for stats and queries).
fn connect_with(sandbox: &Sandbox, command: &str, url: &str, env: &[(&str, &str)]) -> RunOutput {
    let out_file = sandbox.path().join(format!("{command}.json")).display().to_string();
    let mut args = vec![command, "--url", url];
    if command != "calibrate" {
        args.extend(["--out", out_file.as_str()]);
    }
    let out = sandbox.rehearse_env(&args, env);
    assert!(!out.stderr.contains(PASSWORD) && !out.stdout.contains(PASSWORD), "password shown:\n{}", out.stderr);
    out
}

fn first_line(out: &RunOutput) -> &str {
    out.stderr.lines().find(|l| l.starts_with("error:")).unwrap_or(&out.stderr)
}

#[test]
fn stats_queries_and_calibrate_connect_with_require_and_verify_full_and_not_without_tls() {
    let (server, certs) = tls_server();
    let sandbox = Sandbox::new();
    for query in ["sslmode=require".to_string(), verify_full(&certs)] {
        for command in ["stats", "queries"] {
            connect_with(&sandbox, command, &url(&server, "localhost", &query), &[]).assert_code(0);
        }
    }
    connect_with(&sandbox, "calibrate", &url(&server, "localhost", &verify_full(&certs)), &[]).assert_code(0);

    // libpq's environment variables, when the URL says nothing.
    let root = certs.path_str("ca.crt");
    let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", root.as_str())];
    connect_with(&sandbox, "stats", &url(&server, "localhost", "connect_timeout=10"), &env).assert_code(0);

    // The same server refuses a connection without TLS: the ones above were encrypted.
    let plain = connect_with(&sandbox, "stats", &url(&server, "localhost", "sslmode=disable"), &[]);
    plain.assert_code(4);
    for expected in ["without encryption (sslmode=disable)", "hostssl", "sslmode=require"] {
        assert!(first_line(&plain).contains(expected), "expected {expected:?} in:\n{}", plain.stderr);
    }
}

#[test]
fn verify_full_refuses_a_certificate_for_another_host_and_verify_ca_does_not() {
    let (server, certs) = tls_server();
    let sandbox = Sandbox::new();
    let by_address = url(&server, "127.0.0.1", &verify_full(&certs));
    let refused = connect_with(&sandbox, "stats", &by_address, &[]);
    refused.assert_code(4);
    for expected in ["its certificate does not name the host 127.0.0.1", "sslmode=verify-full", "verify-ca"] {
        assert!(first_line(&refused).contains(expected), "expected {expected:?} in:\n{}", refused.stderr);
    }
    let chain_only = format!("sslmode=verify-ca&sslrootcert={}", certs.path_str("ca.crt"));
    connect_with(&sandbox, "stats", &url(&server, "127.0.0.1", &chain_only), &[]).assert_code(0);

    // Another CA's root: the chain is not trusted.
    let other = Certs::make();
    let other_root = format!("sslmode=verify-ca&sslrootcert={}", other.path_str("ca.crt"));
    let untrusted = connect_with(&sandbox, "stats", &url(&server, "localhost", &other_root), &[]);
    untrusted.assert_code(4);
    assert!(first_line(&untrusted).contains("not signed by a certificate in sslrootcert"), "{}", untrusted.stderr);

    // An unreadable sslrootcert: exit 4 naming the key, before connecting.
    let missing = connect_with(&sandbox, "stats", &url(&server, "localhost", "sslrootcert=/nonexistent/ca.crt"), &[]);
    missing.assert_code(4);
    assert!(first_line(&missing).contains("sslrootcert: cannot read /nonexistent/ca.crt"), "{}", missing.stderr);
}

#[test]
fn a_client_certificate_role_connects_with_sslcert_and_sslkey() {
    let (server, certs) = tls_server();
    let sandbox = Sandbox::new();
    let base = format!("postgres://certuser@localhost:{}/postgres?{}", server.conn.port, verify_full(&certs));
    let with_cert =
        format!("{base}&sslcert={}&sslkey={}", certs.path_str("certuser.crt"), certs.path_str("certuser.key"));
    let out = connect_with(&sandbox, "stats", &with_cert, &[]);
    out.assert_code(0);
    let without = connect_with(&sandbox, "stats", &base, &[("HOME", sandbox.path().to_str().unwrap())]);
    without.assert_code(4);
    assert!(first_line(&without).contains("certuser"), "{}", without.stderr);
}

/// `password_command`: the url backend's connections each run it. The
/// command prints the password kept in role app's settings; migration 0001
/// changes the password and that setting together, so every connection
/// after it (the next migration's, the drop of the database) gets in only
/// if the command ran again.
#[test]
fn the_url_backend_runs_password_command_before_each_connection_over_verify_full() {
    let (server, certs) = tls_server();
    let sandbox = Sandbox::new();
    server.sql("postgres", &format!("ALTER ROLE app SET rehearse_test.pw = '{PASSWORD}'"));
    let calls = sandbox.path().join("calls");
    let command = format!(
        "echo call >> {calls}; PGPASSWORD='{super_pw}' {psql} -h {socket} -p {port} -U {user} -d postgres -Atc \
         \"SELECT split_part(c, '=', 2) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole, \
         unnest(s.setconfig) c WHERE r.rolname = 'app' AND c LIKE 'rehearse_test.pw=%'\"",
        calls = calls.display(),
        super_pw = server.conn.password.expose(),
        psql = server.bin_dir().join("psql").display(),
        socket = server.conn.host,
        port = server.conn.port,
        user = server.conn.user,
    );
    sandbox.migrations(&[
        (
            "0001_password.sql",
            "ALTER ROLE app PASSWORD 'second-pw'; ALTER ROLE app SET rehearse_test.pw = 'second-pw';\n",
        ),
        ("0002_add.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n"),
    ]);
    let no_password = format!("postgres://app@localhost:{}/postgres?{}", server.conn.port, verify_full(&certs));
    let postgres = format!("backend: url\n  url: '{no_password}'\n  password_command: {}", yaml_quoted(&command));
    let scenario = sandbox.scenario_on(&postgres, tiny_demo_dump(), "");
    let run = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    run.assert_code(0);
    assert_eq!(run.report().postgres.backend, BackendKind::Url);
    for text in [&run.stdout, &run.stderr, &std::fs::read_to_string(sandbox.reports().join("report.json")).unwrap()] {
        // (The migration's own text, "second-pw" included, is in the report, as every migration's is.)
        assert!(!text.contains(PASSWORD) && !text.contains("pg_db_role_setting"), "the command or its output shown");
    }
    let ran = std::fs::read_to_string(&calls).unwrap().lines().count();
    assert!(ran > 3, "the password command ran {ran} times");

    // The test's own reading: the password is the migration's now, and only it gets in.
    let login = |password: &str| {
        let tls = Tls::from_params(TlsParams { sslmode: Some("require".into()), ..TlsParams::default() }).unwrap();
        let conn =
            ConnInfo { tls, password: Secret::from_string(password.into()), ..server.role("app", "", "postgres") };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(rehearse::sys::db::connect(&conn, "postgres", "test")).is_ok()
    };
    assert!(login("second-pw") && !login(PASSWORD));
}

/// A password command that fails, or prints nothing: exit 4 naming the flag, never its output.
#[test]
fn a_failing_password_command_is_exit_4_naming_the_flag() {
    let (server, certs) = tls_server();
    let sandbox = Sandbox::new();
    let no_password = format!("postgres://app@localhost:{}/postgres?{}", server.conn.port, verify_full(&certs));
    for (command, why) in [("echo leaked-output; exit 7", "failed"), ("true", "printed nothing")] {
        let out = sandbox.rehearse(&["stats", "--url", &no_password, "--password-command", command]);
        out.assert_code(4);
        assert!(
            first_line(&out).contains(&format!("--password-command: the password command {why}")),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("leaked-output") && !out.stderr.contains("echo"), "{}", out.stderr);
    }
    let ok = sandbox.rehearse(&["stats", "--url", &no_password, "--password-command", &format!("echo {PASSWORD}")]);
    ok.assert_code(0);
    assert!(!ok.stderr.contains(PASSWORD));
}

fn yaml_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `~/.pgpass` (here `PGPASSFILE`): used when the URL has no password, and
/// ignored, with libpq's warning, when others may read it.
#[test]
fn the_password_file_is_read_when_the_url_has_none_unless_others_may_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let (server, certs) = tls_server();
    let sandbox = Sandbox::new();
    let file = sandbox.path().join("pgpass");
    let port = server.conn.port;
    std::fs::write(&file, format!("# comment\nlocalhost:{port}:other:app:wrong\nlocalhost:{port}:*:app:{PASSWORD}\n"))
        .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let no_password = format!("postgres://app@localhost:{port}/postgres?{}", verify_full(&certs));
    let env = [("PGPASSFILE", file.to_str().unwrap())];
    let out = sandbox.rehearse_env(&["stats", "--url", &no_password, "--out", "s.json"], &env);
    out.assert_code(0);
    assert!(!out.stderr.contains(PASSWORD), "{}", out.stderr);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sandbox.rehearse_env(&["stats", "--url", &no_password, "--out", "s.json"], &env);
    out.assert_code(4);
    assert!(out.stderr.contains("has group or world access"), "{}", out.stderr);
    assert!(!out.stderr.contains(PASSWORD), "{}", out.stderr);
}

/// `observe.standby_url` over TLS: a standby of the TLS primary (its copy
/// of the certificates and the hostssl-only pg_hba.conf), observed with
/// `verify-full`, its password from `observe.standby_password_command`.
#[test]
fn a_url_standby_is_observed_over_verify_full() {
    let (primary, certs) = tls_server();
    let standby = HotStandby::of(&primary);
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_add.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n")]);
    let standby_port = standby.conn(&primary.conn).port;
    let standby_url = format!("postgres://app@localhost:{standby_port}/postgres?{}", verify_full(&certs));
    let observe = format!(
        "observe:\n  standby_url: '{standby_url}'\n  standby_password_command: {}\n",
        yaml_quoted(&format!("echo {PASSWORD}"))
    );
    let postgres = format!("backend: url\n  url: '{}'", url(&primary, "localhost", &verify_full(&certs)));
    let scenario = sandbox.scenario_on(&postgres, tiny_demo_dump(), &observe);
    let run = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    run.assert_code(0);
    let report = run.report();
    let observed = report.standby.as_ref().unwrap_or_else(|| panic!("no standby in the report:\n{}", run.stderr));
    assert_eq!(observed.source, BackendKind::Url);
    assert!(observed.server.contains(&format!("port={standby_port}")), "{}", observed.server);
    assert!(!run.stderr.contains(PASSWORD));
}

/// A migration tool that reads only `DATABASE_URL` (PGSSL* and the other
/// PG* variables unset, as a driver that ignores them) reaches a server
/// that takes only TLS with a client certificate: on the host's network
/// through the URL's sslmode, sslrootcert, sslcert and sslkey; in its
/// network namespace (the default) through the relay, which speaks TLS to
/// the server with them. The migration says what its session saw
/// (pg_stat_ssl, read by the server), so the test reads it back from the
/// failure it raises.
#[test]
fn a_command_tool_given_only_database_url_reaches_a_tls_only_server() {
    let (server, certs) = tls_server();
    server.sql("postgres", "ALTER ROLE certuser SUPERUSER");
    let psql = server.bin_dir().join("psql");
    for network in ["isolated", "host"] {
        let sandbox = Sandbox::new();
        let apply = sandbox.write(
            "apply.sh",
            &format!(
                "env -u PGSSLMODE -u PGSSLROOTCERT -u PGSSLCERT -u PGSSLKEY -u PGHOST -u PGPORT -u PGUSER \
                 -u PGDATABASE {psql} -X -q -v ON_ERROR_STOP=1 \"$DATABASE_URL\" -c \"DO \\$\\$ BEGIN RAISE \
                 EXCEPTION 'reached as % ssl=%', current_user, (SELECT ssl FROM pg_stat_ssl WHERE pid = \
                 pg_backend_pid()); END \\$\\$\"\n",
                psql = psql.display()
            ),
        );
        let url = format!(
            "postgres://certuser@localhost:{}/postgres?{}&sslcert={}&sslkey={}",
            server.conn.port,
            verify_full(&certs),
            certs.path_str("certuser.crt"),
            certs.path_str("certuser.key")
        );
        let scenario = sandbox.write(
            "scenario.yaml",
            &format!(
                "name: test\ndump: {}\npostgres:\n  backend: url\n  url: '{url}'\nmigrations:\n  tool: command\n  \
                 revisions: [one]\n  apply: sh {}\n  network: {network}\n",
                tiny_demo_dump().display(),
                apply.display()
            ),
        );
        // No ~/.postgresql/postgresql.crt for libpq to fall back on.
        let out =
            sandbox.rehearse_env(&["run", scenario.to_str().unwrap()], &[("HOME", sandbox.path().to_str().unwrap())]);
        let report = out.report();
        let m = report.migrations.first().unwrap_or_else(|| panic!("{network}: no migration: {}", out.stderr));
        let message = m.error.as_ref().map(|e| e.message.clone()).unwrap_or_default();
        assert!(message.contains("reached as certuser ssl=t"), "{network}: {message}\n{}", out.stderr);
    }
}

/// A clone engine on the TLS server, as the clone tests' scripts: `create`
/// makes a database there (the test's table in it) and prints its URL
/// (`verify-full` and the CA; with the password unless `password_command`
/// is given, then `postgres.clone.password_command` prints it) and its id;
/// `destroy` drops it and appends the id to destroyed.log.
fn clone_sandbox(server: &OwnedServer, certs: &Certs, password_command: bool, extra: &str) -> (Sandbox, PathBuf) {
    let sandbox = Sandbox::new();
    let psql = format!(
        "PGPASSWORD='{}' {} -X -q -v ON_ERROR_STOP=1 -h {} -p {} -U {} -d postgres",
        server.conn.password.expose(),
        server.bin_dir().join("psql").display(),
        server.conn.host,
        server.conn.port,
        server.conn.user
    );
    let auth = if password_command { "app".to_string() } else { format!("app:{PASSWORD}") };
    sandbox.write(
        "create.sh",
        &format!(
            "set -e\nname=clone_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \\n')\n\
             {psql} -c \"CREATE DATABASE $name OWNER app\" >&2\n\
             {psql} -d $name -c 'CREATE TABLE public.accounts (id int PRIMARY KEY)' >&2\n\
             echo \"postgres://{auth}@localhost:{}/$name?{}\"\necho \"id=$name\"\n",
            server.conn.port,
            verify_full(certs)
        ),
    );
    sandbox.write(
        "destroy.sh",
        &format!("set -e\n{psql} -c \"DROP DATABASE IF EXISTS $1 WITH (FORCE)\"\necho \"$1\" >> destroyed.log\n"),
    );
    let keys = match password_command {
        true => format!("    password_command: echo {PASSWORD}\n"),
        false => String::new(),
    };
    let scenario = sandbox.write(
        "scenario.yaml",
        &format!(
            "name: test\npostgres:\n  backend: clone\n  clone:\n    create: sh create.sh\n    destroy: sh destroy.sh {{id}}\n\
             {keys}migrations:\n  tool: sql\n  dir: migrations\n{extra}"
        ),
    );
    (sandbox, scenario)
}

/// The databases on `server` whose name starts with `clone_`.
fn clones(server: &OwnedServer) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(rehearse::sys::db::connect(&server.conn, "postgres", "test")).unwrap();
    let rows =
        rt.block_on(client.query("SELECT datname FROM pg_database WHERE datname LIKE 'clone\\_%' ORDER BY 1", &[]));
    rows.unwrap().iter().map(|r| r.get(0)).collect()
}

fn destroyed(sandbox: &Sandbox) -> Vec<String> {
    let log = std::fs::read_to_string(sandbox.path().join("destroyed.log")).unwrap_or_default();
    log.lines().map(String::from).collect()
}

/// The clone backend on a server that takes only TLS: every connection
/// rehearse makes to the clone (`verify-full`, the CA from the URL `create`
/// printed), the abort's copy on its server included, gets in only
/// encrypted, and `destroy` runs once.
#[test]
fn the_clone_backend_reaches_a_tls_only_clone_over_verify_full() {
    let (server, certs) = tls_server();
    let (sandbox, scenario) = clone_sandbox(&server, &certs, false, "abort:\n  migrations: longest\n  at: 50%\n");
    sandbox
        .migrations(&[("0001_add.sql", "SELECT pg_sleep(1);\nALTER TABLE public.accounts ADD COLUMN state text;\n")]);
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.postgres.backend, BackendKind::Clone);
    assert_eq!(report.migrations[0].status, rehearse::report::MigrationStatus::Applied);
    assert_eq!(report.abort.first().and_then(|a| a.error.clone()), None, "{:?}", report.abort);
    assert_eq!(destroyed(&sandbox).len(), 1, "destroy ran once\n{}", out.stderr);
    assert_eq!(clones(&server), Vec::<String>::new(), "the clone and the abort's copy are gone");
    for text in [&out.stdout, &out.stderr, &std::fs::read_to_string(sandbox.reports().join("report.json")).unwrap()] {
        assert!(!text.contains(PASSWORD), "the clone's password shown");
    }
}

/// `rehearse cleanup` after a SIGKILL, when `create` printed a URL without
/// a password and `postgres.clone.password_command` gives it: the copy the
/// run made on the clone's server (the abort's, made right after prepare)
/// is dropped with the command's password before `destroy` runs.
#[test]
fn rehearse_cleanup_runs_the_clone_s_password_command_to_drop_its_copies() {
    let (server, certs) = tls_server();
    let (sandbox, scenario) = clone_sandbox(&server, &certs, true, "abort:\n  migrations: longest\n  at: 50%\n");
    sandbox.migrations(&[("0001_slow.sql", "SELECT pg_sleep(60);\n")]);
    let cmd = sandbox.command(&["run", scenario.to_str().unwrap()]);
    let out = run_and_signal_with(cmd, &sandbox, "migration 1/1", Signal::SIGKILL);
    assert_eq!(out.code, -1, "killed by SIGKILL");
    let left = clones(&server);
    assert_eq!(left.len(), 2, "SIGKILL leaves the clone and the abort's copy behind: {left:?}");
    assert!(left.iter().any(|d| d.ends_with("_abort")), "{left:?}");

    let cleaned = sandbox.rehearse(&["cleanup"]);
    cleaned.assert_code(0);
    assert_eq!(destroyed(&sandbox).len(), 1, "cleanup ran destroy once: {}", cleaned.stdout);
    assert_eq!(clones(&server), Vec::<String>::new(), "the copy and the clone are gone: {}", cleaned.stdout);
    assert!(!cleaned.stdout.contains(PASSWORD) && !cleaned.stderr.contains(PASSWORD));
}
