//! Safety on the local backend: the password never leaks, the server is
//! reachable from this machine only, and a dump only pg_restore can judge
//! gets pg_restore's answer. (Signals: signals.rs; bad scenarios: plan_errors.rs.)

use std::os::unix::fs::PermissionsExt;

use rehearse::error::ErrorKind;

use crate::support::{dumps, Sandbox};

#[test]
fn password_never_appears_and_the_server_is_private() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "CREATE TABLE public.kept (id int);")]);
    let scenario = sandbox.scenario(&dumps().path("custom"), "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--keep"]);
    out.assert_code(0);
    // --keep leaves the cluster and says how to reach it without the password.
    let tmp = sandbox.path().join("tmp");
    let cluster = std::fs::read_dir(&tmp).unwrap().flatten().next().expect("the kept cluster dir").path();
    let pgpass = std::fs::read_to_string(cluster.join("pgpass")).unwrap();
    let password = pgpass.trim().rsplit(':').next().unwrap().to_string();
    assert_eq!(password.len(), 32);
    assert!(out.stderr.contains("PGPASSFILE="), "{}", out.stderr);
    let mut outputs = vec![out.stdout.clone(), out.stderr.clone()];
    for entry in std::fs::read_dir(&out.reports).unwrap().flatten() {
        outputs.push(std::fs::read_to_string(entry.path()).unwrap());
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is readable by others ({mode:o})", entry.path().display());
    }
    for text in &outputs {
        assert!(!text.contains(&password), "the password leaked");
    }
    assert_eq!(std::fs::metadata(&cluster).unwrap().permissions().mode() & 0o777, 0o700);

    // The kept server listens on loopback and a private socket only.
    let conf = std::fs::read_to_string(cluster.join("data/rehearse.conf")).unwrap();
    assert!(conf.contains("listen_addresses = '127.0.0.1'") && conf.contains("unix_socket_permissions = 0700"));
    let port: u16 = conf.lines().find_map(|l| l.strip_prefix("port = ")).unwrap().parse().unwrap();
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap()
        + &std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    let hex = format!(":{port:04X} ");
    let sockets: Vec<&str> = listening
        .lines()
        .filter(|l| {
            l.split_whitespace().nth(1).is_some_and(|a| a.ends_with(&hex[..hex.len() - 1]))
                && l.split_whitespace().nth(3) == Some("0A")
        })
        .collect();
    assert!(!sockets.is_empty(), "the kept server listens on {port}");
    for s in sockets {
        let local = s.split_whitespace().nth(1).unwrap();
        assert!(local.starts_with("0100007F:"), "listening on {local}, not only 127.0.0.1");
    }
    // Stop it the way the printed instructions say.
    let stop = out.stderr.lines().find(|l| l.contains("stop && rm -rf")).expect("stop instructions");
    let status = std::process::Command::new("sh").args(["-c", stop.trim()]).status().unwrap();
    assert!(status.success());
    sandbox.assert_no_leaks();
}

#[test]
fn a_dump_from_a_newer_pg_dump_names_the_versions() {
    let s = Sandbox::new();
    s.migrations(&[("0001_a.sql", "SELECT 1;")]);
    // The custom format's header: "PGDMP", then the archive version (major,
    // minor, revision). 1.99 is newer than any pg_restore knows.
    let mut bytes = std::fs::read(dumps().path("custom")).unwrap();
    bytes[6] = 99;
    std::fs::write(s.path().join("future.dump"), &bytes).unwrap();
    let p = s.write("s.yaml", "dump: future.dump\nmigrations: {tool: sql, dir: migrations}\n");
    let out = s.rehearse_bad_input(&["run", p.to_str().unwrap()], &["unsupported version (1.99", "pg_restore 15"]);
    out.assert_stopped_by(ErrorKind::DumpUnsupported);
    assert_eq!(out.report().stopped_at_stage.map(|st| st.as_str()), Some("restore"), "pg_restore is the judge");
}
