//! A server the user named that refuses rehearse's connection: its
//! pg_hba.conf admits TLS connections only (`hostssl`), and the server has
//! no TLS (ssl = off), so libpq's default `sslmode=prefer` connects without
//! (tls.rs has servers with TLS on). Every command that connects to such a server (`run`
//! on the url and clone backends, `cleanup --url`, `stats`, `queries`,
//! `calibrate --url`) says why in the same words, in its first line, and
//! exits 4.

use std::os::unix::fs::PermissionsExt;

use rehearse::error::ErrorKind;

use crate::support::{tiny_demo_dump, OwnedServer, RunOutput, Sandbox};

/// The `error:` line of a command that could not connect: (what it named
/// the server, the connection shown, why and what to do).
fn refusal(out: &RunOutput) -> (String, String, String) {
    out.assert_code(4);
    let line = out.stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{}", out.stderr));
    let rest = line.strip_prefix("error: cannot connect to ").unwrap_or_else(|| panic!("{line}"));
    let (what, rest) = rest.split_once(" (host=").unwrap_or_else(|| panic!("{line}"));
    let (conn, why) = rest.split_once("): ").unwrap_or_else(|| panic!("{line}"));
    (what.to_string(), format!("host={conn}"), why.to_string())
}

/// A clone backend whose `create` prints `url` (a clone on the refusing server).
fn clone_scenario(sandbox: &Sandbox, url: &str) -> String {
    for (name, text) in
        [("create.sh", format!("#!/bin/sh\necho '{url}'\necho id=c1\n")), ("destroy.sh", "#!/bin/sh\n".into())]
    {
        let path = sandbox.write(name, &text);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let scenario = sandbox.write(
        "clone.yaml",
        "name: test\npostgres:\n  backend: clone\n  clone:\n    create: ./create.sh\n    destroy: ./destroy.sh {id}\n\
         migrations:\n  tool: sql\n  dir: migrations\n",
    );
    scenario.to_str().unwrap().to_string()
}

#[test]
fn every_command_says_in_one_wording_that_a_tls_only_server_refused_it() {
    let server = OwnedServer::start();
    server.refuse_tcp("hostssl all all 127.0.0.1/32 scram-sha-256");
    let url = server.url();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let url_scenario = sandbox.scenario_on("backend: url", tiny_demo_dump(), "");
    let clone = clone_scenario(&sandbox, &url);
    let commands: [(&[&str], &str); 6] = [
        (&["stats", "--url", &url], "--url"),
        (&["queries", "--url", &url], "--url"),
        (&["calibrate", "--url", &url], "--url"),
        (&["cleanup", "--url", &url], "--url"),
        (&["run", url_scenario.to_str().unwrap(), "--url", &url], "postgres.url"),
        (&["run", &clone], "the clone postgres.clone.create made"),
    ];
    let conn = format!("host=127.0.0.1 port={} user={} dbname=postgres", server.conn.port, server.conn.user);
    let mut reasons = Vec::new();
    for (args, named) in commands {
        let out = sandbox.rehearse(args);
        if args[0] == "run" {
            out.assert_stopped_by(ErrorKind::ConnectionFailed);
        }
        let (what, shown, why) = refusal(&out);
        assert_eq!((what.as_str(), shown.as_str()), (named, conn.as_str()), "rehearse {}", args[0]);
        assert!(!out.stderr.contains(server.conn.password.expose()), "{}", out.stderr);
        reasons.push((args[0], why));
    }
    let why = &reasons[0].1;
    assert!(
        why.contains("pg_hba.conf has no line for role")
            && why.contains("without encryption")
            && why.contains("sslmode=prefer")
            && why.contains("connect with sslmode=require"),
        "the cause is in the first line: {why}"
    );
    for (command, other) in &reasons {
        assert_eq!(other, why, "rehearse {command} words the refusal as the others do");
    }

    // A `reject` line is named as such.
    server.refuse_tcp("host all all 127.0.0.1/32 reject");
    let (_, _, why) = refusal(&sandbox.rehearse(&["stats", "--url", &url]));
    assert!(why.starts_with("its pg_hba.conf rejects role") && why.contains("(a `reject` line)"), "{why}");
    sandbox.assert_no_leaks();
}
