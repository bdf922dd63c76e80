//! `rehearse calibrate`: the ratio it prints for `estimate.speed`, and that
//! the server it is pointed at is left exactly as it was.

use crate::support::{OwnedServer, Sandbox};

/// The `estimate.speed: X` line's X.
fn speed_of(stdout: &str) -> f64 {
    let line =
        stdout.lines().find(|l| l.starts_with("estimate.speed: ")).unwrap_or_else(|| panic!("no speed in:\n{stdout}"));
    line["estimate.speed: ".len()..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn calibrate_compares_this_machine_with_a_server_and_changes_nothing_there() {
    let server = OwnedServer::start();
    let before = server.state();
    let sandbox = Sandbox::new();

    let out = sandbox.rehearse(&["calibrate", "--url", &server.url()]);
    out.assert_code(0);
    assert!(out.stdout.contains("this machine: ") && out.stdout.contains("the other server: "), "{}", out.stdout);
    // Both servers run on this machine from the same binaries: the ratio is
    // about 1. The band is wide because the machine is shared; what it
    // catches is a ratio turned upside down or off by a unit (×1000).
    let speed = speed_of(&out.stdout);
    assert!((0.2..=5.0).contains(&speed), "two servers on one machine, speed {speed}:\n{}", out.stdout);
    let password = server.conn.password.expose().to_string();
    assert!(!out.stdout.contains(&password) && !out.stderr.contains(&password), "the password is shown");

    assert_eq!(server.state(), before, "the compared server changed");
    sandbox.assert_no_leaks();
}

#[test]
fn calibrate_without_a_url_measures_this_machine_and_says_what_to_do_next() {
    let sandbox = Sandbox::new();
    let out = sandbox.rehearse(&["calibrate"]);
    out.assert_code(0);
    assert!(out.stdout.contains("this machine: ") && out.stdout.contains("Pass --url"), "{}", out.stdout);
    assert!(!out.stdout.contains("estimate.speed: "), "no ratio without a second server: {}", out.stdout);
    sandbox.assert_no_leaks();
}

#[test]
fn calibrate_errors_name_the_server_and_the_fix_without_the_password() {
    let sandbox = Sandbox::new();
    sandbox.rehearse_bad_input(
        &["calibrate", "--url", "postgres://app:hunter2@db:notaport/app"],
        &["not a PostgreSQL connection string"],
    );

    let out = sandbox.rehearse(&["calibrate", "--url", "postgres://app:hunter2@127.0.0.1:1/app"]);
    out.assert_code(4);
    assert!(
        out.stderr.contains("cannot connect to --url (host=127.0.0.1 port=1 user=app dbname=app): nothing accepts"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hunter2") && !out.stdout.contains("hunter2"), "{}", out.stderr);

    // A round that cannot finish inside --timeout is cancelled by the server.
    let out = sandbox.rehearse(&["calibrate", "--timeout", "1ms"]);
    out.assert_code(4);
    assert!(out.stderr.contains("ran past --timeout 1ms"), "{}", out.stderr);
    sandbox.assert_no_leaks();
}
