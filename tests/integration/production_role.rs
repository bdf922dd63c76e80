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

use crate::support::{
    assert_no_containers, docker_backend, docker_lock, failed_migration, pg_bin_dir, production_with_role,
    tiny_demo_dump, venv_python, RunOutput, Sandbox, REPO,
};

/// Production: `migrator` may create in public but is no superuser; its
/// sessions time out at 2 s; the server runs one parallel maintenance worker.
const PRODUCTION_SQL: &str = "
CREATE TABLE public.accounts (id int PRIMARY KEY);
INSERT INTO public.accounts SELECT generate_series(1, 100);
CREATE ROLE migrator LOGIN PASSWORD 'migrator-pw' CREATEDB;
GRANT CREATE ON SCHEMA public TO migrator;
GRANT pg_read_all_stats TO migrator;
ALTER ROLE migrator SET statement_timeout = '2s';
CREATE SCHEMA app AUTHORIZATION migrator;
ALTER ROLE migrator SET search_path = app, public;
ALTER ROLE migrator IN DATABASE postgres SET rehearse_test.site = 'prod';
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
    // search_path is a list (two schemas), not the one schema named "app, public".
    let seen = "DO $$ BEGIN RAISE EXCEPTION 'seen % % % % [%]', current_user, current_setting('statement_timeout'), \
                current_setting('max_parallel_maintenance_workers'), \
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
                array_to_string(current_schemas(false), ','); END $$;";
    let out = run(&sandbox, seen, true);
    let report = out.report();
    let (_, message) = failed_migration(&report);
    assert!(message.contains("seen migrator 2s 1 f [app,public]"), "{message}");
    assert!(role.settings.iter().any(|s| s.name == "search_path" && s.value == "app, public"), "{role:?}");
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

/// Fails unless its session is production's role with the setting production
/// gives it in its database only (`ALTER ROLE ... IN DATABASE`).
const AS_PRODUCTION: &str = "DO $$ BEGIN IF current_user <> 'migrator' OR \
    current_setting('rehearse_test.site', true) IS DISTINCT FROM 'prod' THEN RAISE EXCEPTION \
    'not as production: % %', current_user, current_setting('rehearse_test.site', true); END IF; END $$;\n";

/// Every place a migration runs besides the rehearsal runs it as
/// production's role, with its login settings in that database: the race's
/// copy (each replica prints who it is), the abort's copy (the migration
/// fails at once unless it is the role, so the cancel and the re-run prove
/// it), the rollback release, and the drift build from empty. Each is a
/// database of its own, where `IN DATABASE` settings must be set again.
#[test]
fn the_race_the_abort_the_rollback_and_the_drift_build_run_as_production_s_role() {
    let sandbox = Sandbox::new();
    let (_production, _) = production_with_role(&sandbox, PRODUCTION_SQL, "migrator");
    sandbox.migrations(&[("0001_release.sql", &format!("{AS_PRODUCTION}SELECT pg_sleep(1.5);\n"))]);
    std::fs::create_dir_all(sandbox.path().join("rollback")).unwrap();
    sandbox.write("rollback/0002_undo.sql", AS_PRODUCTION);
    let race = sandbox.write(
        "race.sh",
        &format!(
            "{}/psql -X -At \"$DATABASE_URL\" -c \"SELECT 'seen ' || current_user || ' ' || \
             current_setting('rehearse_test.site', true)\"\n",
            pg_bin_dir()
        ),
    );
    let scenario = sandbox.write(
        "scenario.yaml",
        &format!(
            "name: test\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  tool: sql\n  dir: migrations\n  \
             table: rehearse_schema_migrations\nproduction:\n  stats: prod-stats.json\n  as_role: true\n\
             race:\n  replicas: 2\n  command: sh {}\nabort:\n  migrations: longest\n  at: 50%\n\
             rollback:\n  migrations:\n    tool: sql\n    dir: rollback\ndrift: true\n",
            sandbox.path().join("prod.dump").display(),
            race.display()
        ),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    let report = out.report();
    let status = |m: &rehearse::report::MigrationReport| (m.status, m.error.as_ref().map(|e| e.message.clone()));
    assert_eq!(status(&report.migrations[0]), (MigrationStatus::Applied, None), "{}", out.stderr);
    let race = report.race.as_ref().expect("a race");
    assert_eq!(race.copies.len(), 2, "{race:?}");
    for copy in &race.copies {
        assert!(copy.output.contains("seen migrator prod"), "race copy {}: {:?}", copy.copy, copy.output);
    }
    let abort = report.abort.first().expect("an abort");
    assert_eq!(abort.error, None, "{abort:?}");
    assert!(abort.cancelled_at_ms.is_some() && abort.rerun_ok, "{abort:?}");
    let rollback = report.rollback.as_ref().expect("a rollback");
    assert_eq!(status(&rollback.migrations[0]), (MigrationStatus::Applied, None), "{rollback:?}");
    let drift = report.drift.as_ref().expect("a drift check");
    assert_eq!((drift.error.as_deref(), drift.role.as_deref()), (None, Some("migrator")), "{drift:?}");
}

/// The docker backend runs the migrations as production's role too: the
/// role is made in the container's server and rehearse logs in as it.
#[test]
fn on_the_docker_backend_the_migrations_run_as_production_s_role() {
    let _docker = docker_lock();
    let sandbox = Sandbox::new();
    let (_production, _) = production_with_role(&sandbox, PRODUCTION_SQL, "migrator");
    sandbox.migrations(&[("0001_release.sql", AS_PRODUCTION)]);
    let extra = "production:\n  stats: prod-stats.json\n  as_role: true\n";
    let scenario = sandbox.scenario_on(&docker_backend(), &sandbox.path().join("prod.dump"), extra);
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    let report = out.report();
    assert_eq!(report.postgres.backend, rehearse::kinds::BackendKind::Docker);
    let m = report.migrations.first().unwrap_or_else(|| panic!("no migration: {}", out.stderr));
    assert_eq!((m.status, m.error.as_ref().map(|e| &e.message)), (MigrationStatus::Applied, None));
    assert_eq!(report.production.and_then(|p| p.role).as_deref(), Some("migrator"));
    sandbox.assert_no_leaks();
    assert_no_containers();
}

/// An Alembic project and a command tool (psql given DATABASE_URL) log in
/// as production's role: their migration fails unless its session is the
/// role with its `IN DATABASE` setting (production's search_path, `app,
/// public`, applies to them too).
#[test]
fn alembic_and_command_migrations_run_as_production_s_role() {
    let sandbox = Sandbox::new();
    let (_production, _) = production_with_role(&sandbox, PRODUCTION_SQL, "migrator");
    // No % in it: SQLAlchemy's psycopg2 dialect reads % as a parameter marker.
    let check = "DO $$ BEGIN IF current_user <> 'migrator' OR current_setting('rehearse_test.site', true) \
                 IS DISTINCT FROM 'prod' THEN RAISE EXCEPTION USING MESSAGE = 'not as production: ' || current_user; \
                 END IF; END $$";
    std::fs::create_dir_all(sandbox.path().join("alembic/versions")).unwrap();
    sandbox.write(
        "alembic/alembic.ini",
        "[alembic]\nscript_location = %(here)s\nsqlalchemy.url = postgresql://nobody@localhost/not-used\n",
    );
    sandbox.write(
        "alembic/env.py",
        &format!(
            "import sys\nsys.path.insert(0, '{REPO}/tests/fixtures/alembic_common')\n\
             from fixture_env import run_migrations\nrun_migrations()\n"
        ),
    );
    sandbox.write(
        "alembic/versions/a1_as_production.py",
        &format!(
            "from alembic import op\nrevision = 'a1_as_production'\ndown_revision = None\nbranch_labels = None\n\
             depends_on = None\n\ndef upgrade():\n    op.execute(\"\"\"{check}\"\"\")\n\ndef downgrade():\n    pass\n"
        ),
    );
    sandbox.write(
        "apply.sh",
        &format!(
            "{}/psql -X -q -v ON_ERROR_STOP=1 \"$DATABASE_URL\" -c \"{}\"\n",
            pg_bin_dir(),
            check.replace('$', "\\$")
        ),
    );
    let sources = [
        format!("tool: alembic\n  dir: alembic\n  target: head\n  python: {}", venv_python()),
        format!("tool: command\n  revisions: [one]\n  apply: sh {}", sandbox.path().join("apply.sh").display()),
    ];
    for source in sources {
        let scenario = sandbox.write(
            "scenario.yaml",
            &format!(
                "name: test\ndump: {}\npostgres:\n  backend: local\nmigrations:\n  {source}\n\
                 production:\n  stats: prod-stats.json\n  as_role: true\n",
                sandbox.path().join("prod.dump").display()
            ),
        );
        let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
        let report = out.report();
        let m = report.migrations.first().unwrap_or_else(|| panic!("{source}: no migration: {}", out.stderr));
        assert_eq!((m.status, m.error.as_ref().map(|e| &e.message)), (MigrationStatus::Applied, None), "{source}");
    }
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
