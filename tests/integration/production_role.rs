//! `production:` against real servers: a production (a server of the
//! test's own) whose migration role `migrator` is no superuser, with
//! `statement_timeout = 2s` at role level and a non-default server setting;
//! `rehearse stats --role migrator` records them; a rehearsal with
//! `production: { stats, as_role: true, settings: true }` then fails a
//! migration that needs a superuser with 42501 and a 3 s statement with
//! 57014, both of which pass without `production:`. The copy's own session
//! says which role and settings it ran with (read by the migration itself,
//! not from rehearse's report); bad input is exit 3.

use rehearse::report::{MigrationStatus, SettingOrigin};

use crate::support::{failed_migration, production_with_role, tiny_demo_dump, RunOutput, Sandbox};

/// Production: `migrator` may create in public but is no superuser; its
/// sessions time out at 2 s; the server runs one parallel maintenance worker.
const PRODUCTION_SQL: &str = "
CREATE TABLE public.accounts (id int PRIMARY KEY);
INSERT INTO public.accounts SELECT generate_series(1, 100);
CREATE ROLE migrator LOGIN PASSWORD 'migrator-pw' CREATEDB;
GRANT CREATE ON SCHEMA public TO migrator;
GRANT pg_read_all_stats TO migrator;
ALTER ROLE migrator SET statement_timeout = '2s';
ALTER SYSTEM SET max_parallel_maintenance_workers = 1;
SELECT pg_reload_conf();
";

fn run(sandbox: &Sandbox, migration: &str, production: bool) -> RunOutput {
    sandbox.migrations(&[("0001_release.sql", migration)]);
    let extra = match production {
        true => "production:\n  stats: prod-stats.json\n  as_role: true\n  settings: true\n",
        false => "",
    };
    let scenario = sandbox.scenario(&sandbox.path().join("prod.dump"), extra);
    sandbox.rehearse(&["run", scenario.to_str().unwrap()])
}

#[test]
fn production_s_role_and_settings_change_the_verdict() {
    let sandbox = Sandbox::new();
    let (_production, stats) = production_with_role(&sandbox, PRODUCTION_SQL, "migrator");
    let role = stats.role.as_ref().expect("--role recorded");
    assert_eq!(role.name, "migrator");
    assert!(!role.superuser && role.createdb && !role.createrole, "{role:?}");
    assert_eq!(role.member_of, vec!["pg_read_all_stats".to_string()]);
    assert!(role.settings.iter().any(|s| s.name == "statement_timeout" && s.value == "2s"), "{role:?}");
    assert_eq!(stats.server_settings.get("max_parallel_maintenance_workers").map(String::as_str), Some("1"));
    assert!(stats.server_settings.contains_key("data_checksums"), "{:?}", stats.server_settings);

    // What the migration's own session runs as, said by the copy itself.
    let seen = "DO $$ BEGIN RAISE EXCEPTION 'seen % % % %', current_user, current_setting('statement_timeout'), \
                current_setting('max_parallel_maintenance_workers'), \
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user); END $$;";
    let out = run(&sandbox, seen, true);
    let report = out.report();
    let (_, message) = failed_migration(&report);
    assert!(message.contains("seen migrator 2s 1 f"), "{message}");
    let p = report.production.as_ref().expect("report.production");
    assert_eq!(p.role.as_deref(), Some("migrator"));
    assert!(p.applied.iter().any(|s| s.name == "statement_timeout" && s.from == SettingOrigin::Role), "{p:?}");
    assert!(p.applied.iter().any(|s| s.name == "max_parallel_maintenance_workers" && s.from == SettingOrigin::Server));
    assert!(p.not_applied.iter().any(|n| n.what.starts_with("data_checksums")), "{p:?}");
    assert!(out.markdown().contains("production's role `migrator`"));

    // The program reads what it is given: one that exits first (`true`) can
    // fail the COPY with "Broken pipe" as a superuser too.
    let superuser_only = "COPY (SELECT 1) TO PROGRAM 'cat > /dev/null';";
    assert_eq!(failed_migration(&run(&sandbox, superuser_only, true).report()).0, "42501");
    let plain = run(&sandbox, superuser_only, false).report();
    assert_eq!(plain.migrations[0].status, MigrationStatus::Applied, "{:?}", plain.migrations[0].error);

    let three_seconds = "SELECT pg_sleep(3);";
    assert_eq!(failed_migration(&run(&sandbox, three_seconds, true).report()).0, "57014");
    assert_eq!(run(&sandbox, three_seconds, false).report().migrations[0].status, MigrationStatus::Applied);
}

#[test]
fn a_stats_file_without_a_role_or_not_a_stats_file_is_bad_input() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "SELECT 1;")]);
    sandbox.write("prod-stats.json", "{\"not\": \"stats\"}");
    let extra = "production:\n  stats: prod-stats.json\n  as_role: true\n";
    let scenario = sandbox.scenario(tiny_demo_dump(), extra);
    sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], &["production.stats", "rehearse stats"]);
    let old = r#"{"schema": "rehearse.stats/v1", "taken_at": "2026-01-01T00:00:00Z", "server_version": "15.1",
        "database": "app", "settings": {}, "relations": [{"relation": "public.t", "kind": "table", "table": null,
        "rows": 1, "pages": 1, "bytes": 8192, "total_bytes": 8192}]}"#;
    sandbox.write("prod-stats.json", old);
    sandbox.rehearse_bad_input(&["run", scenario.to_str().unwrap()], &["production.as_role", "--role"]);
}
