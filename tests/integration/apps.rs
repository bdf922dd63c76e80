//! Several apps' migration trees on one database, each with its own history
//! table, and an Alembic project run with `-c` from its package's parent:
//! real Alembic from PyPI, real Postgres.

use rehearse::error::ErrorKind;
use rehearse::pg::LockMode;
use rehearse::report::{MigrationStatus, RunStatus};

use crate::support::{dumps, junit_cases, venv_python, Sandbox, REPO};

/// The shop's tree (the dump is at r2) up to r6, then the billing package's.
fn two_apps(sandbox: &Sandbox, billing_extra: &str, extra: &str) -> std::path::PathBuf {
    let python = venv_python();
    let migrations = format!(
        "migrations:\n  - name: shop\n    tool: alembic\n    dir: {REPO}/tests/fixtures/alembic_dburl\n    target: r6_index_state\n    python: {python}\n  - name: billing\n    tool: alembic\n    dir: {REPO}/scenarios/billing-pkg\n    config: billing/migrations/alembic.ini\n    python: {python}\n{billing_extra}{extra}"
    );
    scenario(sandbox, &migrations)
}

/// A scenario on the test dump, local backend, with these `migrations:` (and later) lines.
fn scenario(sandbox: &Sandbox, rest: &str) -> std::path::PathBuf {
    let dump = dumps().path("custom");
    sandbox.write("apps.yaml", &format!("name: apps\ndump: {}\npostgres:\n  backend: local\n{rest}", dump.display()))
}

#[test]
fn two_apps_apply_in_the_listed_order_each_with_its_own_history_grouped_in_the_report() {
    let sandbox = Sandbox::new();
    let extra = "budgets:\n  overrides:\n    billing/b2_orders_invoice_ref: {max_runtime: 1h}\n    r3a_orders_state: {max_runtime: 2h}\nreport:\n  formats: [markdown, json, junit]\n";
    let scenario = two_apps(&sandbox, "    version_table: billing_alembic_version\n", extra);
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    assert_eq!(report.status, RunStatus::Passed);
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 7, "{ids:?}");
    assert!(ids[..5].iter().all(|id| id.starts_with("shop/r")), "the shop's first, as listed: {ids:?}");
    assert_eq!(&ids[5..], ["billing/b1_invoices", "billing/b2_orders_invoice_ref"]);
    for m in &report.migrations {
        assert_eq!(m.status, MigrationStatus::Applied, "{}: {:?}", m.id, m.error);
        assert_eq!(m.app.as_deref(), Some(m.id.split('/').next().unwrap()));
        // One Alembic process per app, as each app's deploy runs it: its start-up comes with its first revision.
        let first_of_its_app = report.migrations.iter().find(|o| o.app == m.app).unwrap().id == m.id;
        assert_eq!(m.startup_ms.is_some(), first_of_its_app, "{}: start-up once per app's process", m.id);
        for s in &m.statements {
            assert!(!s.query.contains("alembic_version"), "{}: bookkeeping is not a statement: {}", m.id, s.query);
        }
    }
    let histories: Vec<(Option<&str>, Option<&str>, usize)> =
        report.sources.iter().map(|s| (s.app.as_deref(), s.history.as_deref(), s.pending)).collect();
    assert_eq!(
        histories,
        [(Some("shop"), Some("alembic_version"), 5), (Some("billing"), Some("billing_alembic_version"), 2)]
    );
    let b2 = &report.migrations[6];
    assert!(
        b2.locks.iter().any(|l| l.relation == "public.orders" && l.mode == LockMode::AccessExclusiveLock),
        "billing's migration locks the shop's table: {:?}",
        b2.locks
    );
    // One override by app/revision, one by the bare revision: both found their migration.
    assert!(report.budgets.unused_overrides.is_empty(), "{:?}", report.budgets.unused_overrides);

    let cases = junit_cases(&out.junit());
    let groups: Vec<(&str, &str)> = cases.iter().map(|c| (c.classname.as_str(), c.name.as_str())).collect();
    let group = |name: &str| groups.iter().find(|(_, n)| *n == name).map(|(c, _)| *c);
    assert_eq!(
        group("billing/b2_orders_invoice_ref"),
        Some("rehearse.apps.billing"),
        "a JUnit group per app: {groups:?}"
    );
    assert_eq!(group("shop/r3a_orders_state"), Some("rehearse.apps.shop"));

    let md = out.markdown();
    let shop = md.find("### App `shop`").expect("a section per app");
    let billing = md.find("### App `billing`").expect("a section per app");
    assert!(shop < billing);
    let billing_section = &md[billing..];
    assert!(billing_section.contains("history in `billing_alembic_version`: 2 pending"), "{billing_section}");
    assert!(
        billing_section.contains("`public.orders` AccessExclusiveLock")
            && billing_section.contains("also written or altered by app shop"),
        "billing's section shows it altered the shop's table:\n{billing_section}"
    );
    assert!(md[shop..billing].contains("`shop/r3a_orders_state`"));
}

#[test]
fn an_alembic_project_run_with_dash_c_from_its_packages_parent() {
    let sandbox = Sandbox::new();
    let scenario = scenario(
        &sandbox,
        &format!(
            "migrations:\n  tool: alembic\n  dir: {REPO}/scenarios/billing-pkg\n  config: billing/migrations/alembic.ini\n  python: {}\n",
            venv_python()
        ),
    );
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    let ids: Vec<&str> = report.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["b1_invoices", "b2_orders_invoice_ref"], "found through the ini's script_location");
    for m in &report.migrations {
        assert_eq!(m.status, MigrationStatus::Applied, "{}: {:?}", m.id, m.error);
        assert!(m.app.is_none());
    }
    assert!(report.migrations[0].startup_ms.is_some() && report.migrations[1].startup_ms.is_none(), "one process");
    let create = &report.migrations[0].statements;
    assert!(create.iter().any(|s| s.query.starts_with("CREATE TABLE billing_invoices")), "traced: {create:?}");
    assert_eq!(report.sources[0].history.as_deref(), Some("billing_alembic_version"), "as env.py configures it");
}

#[test]
fn two_apps_whose_env_py_name_their_own_version_tables_need_not_restate_them() {
    let sandbox = Sandbox::new();
    // Neither says its version table in the scenario: billing's env.py passes
    // billing_alembic_version to context.configure, shop's uses alembic_version.
    let scenario = two_apps(&sandbox, "", "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_code(0);
    let report = out.report();
    let histories: Vec<_> = report.sources.iter().map(|s| s.history.clone().unwrap_or_default()).collect();
    assert_eq!(histories, ["alembic_version", "billing_alembic_version"]);
    sandbox.assert_no_leaks();
}

#[test]
fn two_apps_really_sharing_alembic_version_are_refused_before_anything_applies() {
    let sandbox = Sandbox::new();
    let python = venv_python();
    // Both env.py files use Alembic's default table: the second reads the
    // first's revision (r2_orders_note_index, which its own tree lacks).
    let path = scenario(
        &sandbox,
        &format!(
            "migrations:\n  - name: shop\n    tool: alembic\n    dir: {REPO}/tests/fixtures/alembic_dburl\n    target: r6_index_state\n    python: {python}\n  - name: other\n    tool: alembic\n    dir: {REPO}/tests/fixtures/alembic_other\n    python: {python}\n"
        ),
    );
    let out = sandbox.rehearse(&["run", path.to_str().unwrap()]);
    out.assert_stopped_by(ErrorKind::MigrationsInvalid);
    assert!(
        out.stderr.contains("apps shop and other both record their history in public.alembic_version"),
        "{}",
        out.stderr
    );
    let report = out.report();
    assert!(report.migrations.iter().all(|m| m.status != MigrationStatus::Applied), "nothing applied");
    sandbox.assert_no_leaks();
}

#[test]
fn a_list_of_sources_needs_names_a_config_that_exists_no_race_and_keys_of_its_tool() {
    let sandbox = Sandbox::new();
    let unnamed = scenario(
        &sandbox,
        "migrations:\n  - tool: sql\n    dir: .\n    table: a.history\n  - name: b\n    tool: sql\n    dir: .\n    table: b.history\n",
    );
    sandbox.rehearse_bad_input(&["run", unnamed.to_str().unwrap()], &["migrations[0] has no name"]);
    let missing = scenario(
        &sandbox,
        &format!("migrations:\n  tool: alembic\n  dir: {REPO}/scenarios/billing-pkg\n  config: pkg/alembic.ini\n"),
    );
    sandbox
        .rehearse_bad_input(&["run", missing.to_str().unwrap()], &["migrations.config pkg/alembic.ini is not a file"]);
}

#[test]
fn a_version_table_env_py_does_not_use_is_bad_input_naming_the_one_it_does() {
    let sandbox = Sandbox::new();
    let scenario = two_apps(&sandbox, "    version_table: invoices_version\n", "");
    let out = sandbox.rehearse(&["run", scenario.to_str().unwrap()]);
    out.assert_stopped_by(ErrorKind::MigrationsInvalid);
    assert!(
        out.stderr.contains("app billing") && out.stderr.contains("records revisions in billing_alembic_version"),
        "{}",
        out.stderr
    );
    sandbox.assert_no_leaks();
}
