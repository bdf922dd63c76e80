//! Until rehearse supports TLS, a connection string that asks for it
//! (`sslmode=require`, `verify-full`, an `sslrootcert`, `PGSSLMODE=require`)
//! is refused with exit 3 at every place a URL is taken, before anything
//! runs, rather than connected to without TLS; `sslmode=prefer`, `allow`
//! and `disable` still connect to a real server. (A clone's URL: clone.rs.)

use rehearse::kinds::BackendKind;

use crate::support::{docker_lock, tiny_demo_dump, OwnedServer, RunOutput, Sandbox};

const PASSWORD: &str = "tls-s3cret-pw";

/// Where nothing listens: before the refusal, each of these connected there (exit 4).
fn asking_for_tls() -> [(String, &'static str); 3] {
    let url = |query: &str| format!("postgres://app:{PASSWORD}@127.0.0.1:1/app?{query}");
    [
        (url("sslmode=require"), "sslmode=require asks for an encrypted connection"),
        (url("connect_timeout=5&sslmode=verify-full"), "sslmode=verify-full asks for an encrypted connection"),
        (url("sslmode=prefer&sslrootcert=/etc/ssl/ca.pem"), "sslrootcert is a setting of TLS connections"),
    ]
}

/// Exit 3 saying what was refused, where, and what to do instead; no password, nothing left.
fn assert_refused(sandbox: &Sandbox, out: &RunOutput, input: &str, refused: &str) {
    out.assert_code(3);
    for expected in [input, refused, "rehearse does not support TLS yet", "sslmode=prefer", "local tunnel"] {
        assert!(out.stderr.contains(expected), "expected {expected:?} in:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains(PASSWORD) && !out.stdout.contains(PASSWORD), "password shown:\n{}", out.stderr);
    assert!(!sandbox.reports().exists(), "nothing ran, so no report:\n{}", out.stderr);
    sandbox.assert_no_leaks();
}

#[test]
fn every_command_taking_a_url_refuses_one_that_asks_for_tls() {
    // `cleanup` looks at every container when it is not refused at once.
    let _docker = docker_lock();
    for (url, refused) in asking_for_tls() {
        for command in ["stats", "queries", "calibrate", "cleanup"] {
            let sandbox = Sandbox::new();
            let out = sandbox.rehearse(&[command, "--url", &url]);
            assert_refused(&sandbox, &out, "--url", refused);
        }
    }
}

#[test]
fn pgsslmode_asking_for_tls_is_refused_too() {
    let sandbox = Sandbox::new();
    let url = format!("postgres://app:{PASSWORD}@127.0.0.1:1/app");
    let out = sandbox.rehearse_env(&["stats", "--url", &url], &[("PGSSLMODE", "require")]);
    assert_refused(&sandbox, &out, "--url", "PGSSLMODE=require asks for an encrypted connection");
}

#[test]
fn a_scenario_url_asking_for_tls_is_refused_before_anything_runs() {
    let plain = format!("postgres://app:{PASSWORD}@127.0.0.1:1/app?sslmode=disable");
    for (url, refused) in asking_for_tls() {
        let sandbox = Sandbox::new();
        sandbox.migrations(&[("0001.sql", "SELECT 1;")]);
        let scenario = sandbox.scenario_on("backend: url", tiny_demo_dump(), "");
        let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--url", &url]);
        assert_refused(&sandbox, &out, "--url", refused);

        let scenario = sandbox.scenario_on(&format!("backend: url\n  url: '{url}'"), tiny_demo_dump(), "");
        let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
        assert_refused(&sandbox, &out, "postgres.url", refused);

        let standby = format!("observe:\n  standby_url: '{url}'\n");
        let scenario = sandbox.scenario_on(&format!("backend: url\n  url: '{plain}'"), tiny_demo_dump(), &standby);
        let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
        assert_refused(&sandbox, &out, "observe.standby_url", refused);
    }
}

/// `postgres://...:PORT/postgres?QUERY` on `server`.
fn with_query(server: &OwnedServer, query: &str) -> String {
    format!("{}?{query}", server.url())
}

#[test]
fn plain_sslmodes_still_connect_to_a_real_server() {
    let server = OwnedServer::start();
    let sandbox = Sandbox::new();
    let stats = sandbox.rehearse(&["stats", "--url", &with_query(&server, "sslmode=prefer"), "--out", "s.json"]);
    stats.assert_code(0);
    assert!(sandbox.path().join("s.json").exists());

    let query = "host=127.0.0.1 port={} user={} password='{}' dbname=postgres sslmode=allow";
    let keywords = query
        .replacen("{}", &server.conn.port.to_string(), 1)
        .replacen("{}", &server.conn.user, 1)
        .replacen("{}", server.conn.password.expose(), 1);
    sandbox.rehearse(&["stats", "--url", &keywords, "--out", "k.json"]).assert_code(0);

    sandbox.migrations(&[("0001_add.sql", "ALTER TABLE public.orders ADD COLUMN state text;\n")]);
    let url = with_query(&server, "sslmode=disable&gssencmode=disable");
    let scenario = sandbox.scenario_on(&format!("backend: url\n  url: '{url}'"), tiny_demo_dump(), "");
    let run = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    run.assert_code(0);
    assert_eq!(run.report().postgres.backend, BackendKind::Url);
    sandbox.assert_no_leaks();
}
