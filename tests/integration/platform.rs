//! `postgres.platform` against real servers: with `platform: rds`, a
//! migration creating an extension this machine's PostgreSQL has but RDS
//! does not offer (`file_fdw`, `adminpack`) fails naming RDS and the
//! extension, while the same scenario without the platform passes; an
//! offered, trusted extension (`hstore`) is created by production's
//! non-superuser role as on RDS; `rds_superuser` exists on the copy with
//! the documented attributes and memberships, read back by the migration's
//! own session from pg_roles, and the migration role is no superuser.
//! Bad input (an unknown platform, no list for the major, a superuser
//! migration role) is exit 3.

use rehearse::report::{MigrationStatus, Report};

use crate::support::{failed_migration, production_with_role, tiny_demo_dump, RunOutput, Sandbox};

/// Production on "RDS": `migrator` is the master user (CREATEDB CREATEROLE,
/// no superuser) and a member of `rds_superuser`, as RDS makes them.
const PRODUCTION_SQL: &str = "
CREATE TABLE public.accounts (id int PRIMARY KEY);
INSERT INTO public.accounts SELECT generate_series(1, 10);
CREATE ROLE rds_superuser NOLOGIN;
CREATE ROLE migrator LOGIN PASSWORD 'migrator-pw' CREATEDB CREATEROLE;
GRANT rds_superuser TO migrator;
GRANT CREATE ON SCHEMA public TO migrator;
ALTER TABLE public.accounts OWNER TO migrator;
";

/// One migration, on `prod.dump`, with `platform` (or none) and, with `as_role`, as production's role.
fn run(sandbox: &Sandbox, migration: &str, platform: Option<&str>, as_role: bool) -> RunOutput {
    sandbox.migrations(&[("0001_release.sql", migration)]);
    let postgres = match platform {
        Some(p) => format!("backend: local\n  platform: {p}"),
        None => "backend: local".to_string(),
    };
    let extra = match as_role {
        true => "production:\n  stats: prod-stats.json\n  as_role: true\n",
        false => "",
    };
    let scenario = sandbox.scenario_on(&postgres, &sandbox.path().join("prod.dump"), extra);
    sandbox.rehearse(&["run", scenario.to_str().unwrap()])
}

fn applied(report: &Report) {
    let m = report.migrations.first().unwrap_or_else(|| panic!("no migration: {:?} {:?}", report.status, report.error));
    assert_eq!(m.status, MigrationStatus::Applied, "{:?}", m.error);
}

#[test]
fn an_extension_rds_does_not_offer_fails_naming_rds_and_passes_without_the_platform() {
    let sandbox = Sandbox::new();
    let _production = production_with_role(&sandbox, PRODUCTION_SQL, "migrator");

    // As the copy's superuser (no production.as_role): only the allowlist changes the verdict.
    let out = run(&sandbox, "CREATE EXTENSION file_fdw;", Some("rds"), false);
    let report = out.report();
    let (sqlstate, message) = failed_migration(&report);
    assert_eq!(sqlstate, "0A000");
    assert!(
        message.contains("extension \"file_fdw\" is not offered by Amazon RDS for PostgreSQL 15")
            && message.contains("data/platforms/rds.yaml"),
        "{message}"
    );
    let p = report.platform.as_ref().expect("report.platform");
    assert_eq!(p.platform.as_str(), "rds");
    assert_eq!(p.major, 15);
    let allowlist = p.extensions.as_ref().expect("the allowlist was enforced");
    assert!(allowlist.offered > 50 && allowlist.source.starts_with("https://docs.aws.amazon.com/"), "{allowlist:?}");
    assert!(p.limitations.iter().any(|l| l.contains("no production.as_role")), "{:?}", p.limitations);
    assert!(out.markdown().contains("Platform `rds` (Amazon RDS for PostgreSQL 15)"));
    applied(&run(&sandbox, "CREATE EXTENSION file_fdw;", None, false).report());

    // Not offered and not even installed here: the platform's refusal, not "could not open extension control file".
    let (sqlstate, message) =
        failed_migration(&run(&sandbox, "CREATE EXTENSION pg_cron_fake;", Some("rds"), false).report());
    assert_eq!(sqlstate, "0A000");
    assert!(message.contains("extension \"pg_cron_fake\" is not offered by Amazon RDS"), "{message}");

    // Offered and trusted: created.
    applied(&run(&sandbox, "CREATE EXTENSION hstore;", Some("rds"), false).report());
}

#[test]
fn production_s_role_on_rds_is_no_superuser_and_meets_rds_s_limits() {
    let sandbox = Sandbox::new();
    let _production = production_with_role(&sandbox, PRODUCTION_SQL, "migrator");

    // What the migration's own session sees of itself and of rds_superuser, from pg_roles.
    let seen = "DO $$ BEGIN RAISE EXCEPTION 'seen % % % % % %', current_user,
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                pg_has_role(current_user, 'rds_superuser', 'MEMBER'),
                (SELECT rolcanlogin OR rolsuper FROM pg_roles WHERE rolname = 'rds_superuser'),
                pg_has_role('rds_superuser', 'pg_signal_backend', 'MEMBER'),
                has_database_privilege('rds_superuser', current_database(), 'CREATE'); END $$;";
    let report = run(&sandbox, seen, Some("rds"), true).report();
    let (_, message) = failed_migration(&report);
    assert!(message.contains("seen migrator f t f t t"), "{message}");
    let p = report.platform.as_ref().expect("report.platform");
    let role = p.pseudo_superuser.as_ref().expect("rds_superuser made");
    assert_eq!(role.name, "rds_superuser");
    // A dump names roles as owners and grantees, not memberships: rehearse made it.
    assert!(role.created, "{role:?}");
    assert!(role.attributes.contains(&"NOSUPERUSER".to_string()) && role.creates_extensions, "{role:?}");
    assert!(report.production.as_ref().unwrap().member_of.contains(&"rds_superuser".to_string()));

    // Untrusted and not offered: refused naming RDS before PostgreSQL's own permission check would say 42501.
    let (sqlstate, message) =
        failed_migration(&run(&sandbox, "CREATE EXTENSION adminpack;", Some("rds"), true).report());
    assert_eq!(sqlstate, "0A000");
    assert!(message.contains("extension \"adminpack\" is not offered by Amazon RDS for PostgreSQL 15"), "{message}");
    let (sqlstate, message) = failed_migration(&run(&sandbox, "CREATE EXTENSION adminpack;", None, true).report());
    assert_eq!(sqlstate, "42501");
    assert!(!message.contains("RDS"), "{message}");

    // Offered and trusted: production's role creates it, as on RDS.
    applied(&run(&sandbox, "CREATE EXTENSION IF NOT EXISTS \"hstore\";", Some("rds"), true).report());

    // Offered, but only a superuser may create it on vanilla PostgreSQL: said so.
    let (sqlstate, message) =
        failed_migration(&run(&sandbox, "CREATE EXTENSION pg_buffercache;", Some("rds"), true).report());
    assert_eq!(sqlstate, "42501");
    assert!(message.contains("is offered by Amazon RDS for PostgreSQL 15 to members of rds_superuser"), "{message}");

    // No superuser: what RDS refuses a non-superuser fails as there.
    let (sqlstate, _) =
        failed_migration(&run(&sandbox, "ALTER SYSTEM SET work_mem = '8MB';", Some("rds"), true).report());
    assert_eq!(sqlstate, "42501");
}

#[test]
fn an_unknown_platform_or_one_without_a_list_for_the_major_is_bad_input() {
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_a.sql", "SELECT 1;")]);
    let scenario = sandbox.scenario_on("backend: local\n  platform: heroku", tiny_demo_dump(), "");
    sandbox.rehearse_bad_input(
        &["run", scenario.to_str().unwrap()],
        &["heroku", "rds", "aurora", "cloudsql", "azure", "self-managed"],
    );
    let scenario = sandbox.scenario_on("backend: local\n  platform: self-managed", tiny_demo_dump(), "");
    sandbox.rehearse(&["run", scenario.to_str().unwrap()]).assert_code(0);
}

/// On PostgreSQL 18 the 18 list applies (named in the message), and a
/// platform without a list for 18 is refused before anything starts.
#[test]
fn on_postgres_18_rds_s_18_list_applies_and_aurora_without_one_is_bad_input() {
    let bin = crate::postgres18::pg18_bin();
    let sandbox = Sandbox::new();
    sandbox.migrations(&[("0001_release.sql", "CREATE EXTENSION file_fdw;")]);
    let scenario = sandbox.scenario_on("backend: local\n  platform: rds", tiny_demo_dump(), "");
    let report = sandbox.rehearse(&["run", scenario.to_str().unwrap(), "--pg-bin", &bin]).report();
    let (sqlstate, message) = failed_migration(&report);
    assert_eq!(sqlstate, "0A000");
    assert!(message.contains("extension \"file_fdw\" is not offered by Amazon RDS for PostgreSQL 18"), "{message}");
    assert_eq!(report.platform.as_ref().map(|p| p.major), Some(18));

    let scenario = sandbox.scenario_on("backend: local\n  platform: aurora", tiny_demo_dump(), "");
    sandbox.rehearse_bad_input(
        &["run", scenario.to_str().unwrap(), "--pg-bin", &bin],
        &["data/platforms/aurora.yaml has no extension list for PostgreSQL 18", "lists for 15"],
    );
}
